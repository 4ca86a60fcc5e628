"""Azure OpenAI and Gemini through the gateway, against fake OpenAI servers at their URL layouts: the right paths,
Azure's ``api-key`` header, Gemini's Bearer key and its ``models/``-prefixed model list, streams included."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import anthropic
import openai
import pytest

from tests.fakes import FakeOpenAI, RecordedRequest, Reply
from tests.support.server import SluiceServer, make_settings

REPLY = Reply(text="Served by the family.", prompt_tokens=6, completion_tokens=4)
AZURE_VERSION = "2024-10-21"


@dataclass
class Family:
    gateway: SluiceServer
    azure: FakeOpenAI  # classic deployment routes
    azure_v1: FakeOpenAI
    gemini: FakeOpenAI


@pytest.fixture(scope="module")
def family(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Family]:
    with (
        FakeOpenAI(prefix="/openai/deployments/my-gpt", auth="api-key", api_key="az-key", reply=REPLY) as azure,
        FakeOpenAI(prefix="/openai/v1", auth="api-key", api_key="az-key", reply=REPLY) as azure_v1,
        FakeOpenAI(
            prefix="/v1beta/openai", api_key="gm-key", models=["models/gemini-fake", "models/gemini-embed"], reply=REPLY
        ) as gemini,
    ):
        config = {
            "health": {"interval_seconds": 0},
            "providers": [
                {
                    "name": "az",
                    "kind": "azure",
                    "base_url": azure.url,
                    "api_key": "az-key",
                    "api_version": AZURE_VERSION,
                },
                {"name": "az1", "kind": "azure", "base_url": azure_v1.url, "api_key": "az-key"},
                {
                    "name": "gm",
                    "kind": "gemini",
                    "base_url": gemini.base_url,
                    "api_key": "gm-key",
                    "discover_models": True,
                },
            ],
            "models": [
                {"name": "azure-gpt", "deployments": [{"provider": "az", "model": "my-gpt"}]},
                {"name": "azure-v1", "deployments": [{"provider": "az1", "model": "my-gpt"}]},
            ],
        }
        with SluiceServer(make_settings(Path(tmp_path_factory.mktemp("gw")), config)) as gateway:
            yield Family(gateway, azure, azure_v1, gemini)


@pytest.fixture
def client(family: Family) -> Iterator[openai.OpenAI]:
    for fake in (family.azure, family.azure_v1, family.gemini):
        fake.reset()
    with openai.OpenAI(base_url=family.gateway.url + "/v1", api_key=family.gateway.master_key, max_retries=0) as c:
        yield c


def posted(fake: FakeOpenAI) -> list[RecordedRequest]:
    """What the gateway sent the fake to answer (health checks may list its models meanwhile)."""
    return [r for r in fake.requests if r.method == "POST"]


def ask(client: openai.OpenAI, model: str, stream: bool) -> str:
    messages: list[dict[str, str]] = [{"role": "user", "content": "hi"}]
    if not stream:
        return client.chat.completions.create(model=model, messages=messages).choices[0].message.content or ""  # type: ignore[arg-type]
    chunks = client.chat.completions.create(model=model, messages=messages, stream=True)  # type: ignore[arg-type]
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_azure_classic_routes_carry_the_deployment_and_api_version_with_an_api_key(
    family: Family, client: openai.OpenAI, stream: bool
) -> None:
    assert ask(client, "azure-gpt", stream) == REPLY.text
    [sent] = posted(family.azure)
    assert sent.path == "/openai/deployments/my-gpt/chat/completions"
    assert sent.query == {"api-version": AZURE_VERSION}
    assert sent.headers["api-key"] == "az-key" and "authorization" not in sent.headers
    assert sent.json is not None and sent.json["model"] == "my-gpt"


def test_azure_classic_embeddings_and_a_translated_anthropic_client(family: Family, client: openai.OpenAI) -> None:
    embedded = client.embeddings.create(model="azure-gpt", input=["a", "b"])
    assert len(embedded.data) == 2
    with anthropic.Anthropic(base_url=family.gateway.url, api_key=family.gateway.master_key, max_retries=0) as claude:
        message = claude.messages.create(model="azure-gpt", max_tokens=20, messages=[{"role": "user", "content": "hi"}])
    assert "".join(b.text for b in message.content if b.type == "text") == REPLY.text
    paths = [(r.path, r.query.get("api-version")) for r in posted(family.azure)]
    assert paths == [
        ("/openai/deployments/my-gpt/embeddings", AZURE_VERSION),
        ("/openai/deployments/my-gpt/chat/completions", AZURE_VERSION),
    ]


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_azure_v1_routes_name_the_deployment_in_the_body(family: Family, client: openai.OpenAI, stream: bool) -> None:
    assert ask(client, "azure-v1", stream) == REPLY.text
    [sent] = posted(family.azure_v1)
    assert sent.path == "/openai/v1/chat/completions" and sent.query == {}
    assert sent.headers["api-key"] == "az-key"
    assert sent.json is not None and sent.json["model"] == "my-gpt"


def test_gemini_models_are_discovered_without_their_models_prefix(client: openai.OpenAI) -> None:
    ids = {m.id for m in client.models.list()}
    assert {"gemini-fake", "gemini-embed"} <= ids
    assert not any(i.startswith("models/") for i in ids)


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_gemini_is_called_at_its_openai_path_with_a_bearer_key(
    family: Family, client: openai.OpenAI, stream: bool
) -> None:
    assert ask(client, "gemini-fake", stream) == REPLY.text
    [sent] = posted(family.gemini)
    assert sent.path == "/v1beta/openai/chat/completions"
    assert sent.headers["authorization"] == "Bearer gm-key"
    assert sent.json is not None and sent.json["model"] == "gemini-fake"
    if stream:
        assert sent.json["stream_options"] == {"include_usage": True}

"""Nothing is silently lost in translation: per cell (surface x upstream kind), a field the upstream cannot express
is a 400 in the caller's own error shape naming the field, and nothing reaches the upstream; a provider with
``drop_unsupported: true`` answers without it; an upstream of the caller's own format receives it untouched."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.rig import Rig, every_kind


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    # "mixed" has deployments of two kinds, so even OpenAI clients are translated; the OpenAI one serves first.
    mixed = {
        "name": "mixed",
        "deployments": [{"provider": "oa", "model": "gpt-fake"}, {"provider": "mk", "model": "mock-1", "order": 1}],
    }
    with every_kind(Path(tmp_path_factory.mktemp("gw")), drop=True, models=[mixed]) as rig:
        yield rig


@dataclass(frozen=True)
class Surface:
    path: str
    base: dict[str, Any]
    shape: str  # whose error shape

    def body(self, model: str, field: dict[str, Any], stream: bool) -> dict[str, Any]:
        return {**self.base, "model": model, **field, "stream": stream}


SURFACES = {
    "openai-chat": Surface("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}]}, "openai"),
    "openai-completions": Surface("/v1/completions", {"prompt": "Once upon", "max_tokens": 8}, "openai"),
    "anthropic": Surface(
        "/v1/messages", {"max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]}, "anthropic"
    ),
    "ollama": Surface("/api/chat", {"messages": [{"role": "user", "content": "hi"}]}, "ollama"),
}

# (surface, field as the caller sends it, the name the refusal gives it, where a same-format upstream finds it,
#  the upstream kinds that cannot express it)
CELLS: list[tuple[str, dict[str, Any], str, tuple[str, ...], tuple[str, ...]]] = [
    ("openai-chat", {"logit_bias": {"50256": -100}}, "logit_bias", ("logit_bias",), ("anthropic", "ollama", "mock")),
    ("openai-chat", {"logprobs": True, "top_logprobs": 2}, "logprobs", ("logprobs",), ("anthropic", "ollama", "mock")),
    (
        "openai-chat",
        {"tools": [{"type": "function", "function": {"name": "w", "parameters": {"type": "object"}, "strict": True}}]},
        "tools[0].function.strict",
        ("tools",),
        ("ollama",),
    ),
    ("openai-chat", {"n": 2}, "n", ("n",), ("anthropic", "ollama")),
    ("openai-completions", {"logprobs": 2}, "logprobs", ("logprobs",), ("anthropic", "ollama", "mock")),
    ("openai-completions", {"suffix": " The end."}, "suffix", ("suffix",), ("anthropic", "mock")),
    ("anthropic", {"service_tier": "auto"}, "service_tier", ("service_tier",), ("openai", "ollama", "mock")),
    (
        "anthropic",
        {"tools": [{"name": "w", "input_schema": {"type": "object"}, "strict": True}]},
        "tools[0].strict",
        ("tools",),
        ("ollama",),
    ),
    (
        "ollama",
        {"options": {"mirostat": 2}},
        "options.mirostat",
        ("options", "mirostat"),
        ("openai", "anthropic", "mock"),
    ),
    ("ollama", {"options": {"min_p": 0.05}}, "options.min_p", ("options", "min_p"), ("openai", "anthropic", "mock")),
]
NATIVE = {"openai-chat": "openai", "openai-completions": "openai", "anthropic": "anthropic", "ollama": "ollama"}


def post(rig: Rig, surface: Surface, body: dict[str, Any]) -> httpx.Response:
    headers = {"x-api-key": rig.gateway.master_key, "anthropic-version": "2023-06-01"}
    with httpx.Client(base_url=rig.gateway.url, headers=headers, timeout=10) as http:
        return http.post(surface.path, json=body)


def named_in_error(resp: httpx.Response, shape: str, param: str) -> bool:
    body = resp.json()
    if shape == "openai":
        return bool(body["error"]["param"] == param and body["error"]["type"] == "invalid_request_error")
    if shape == "anthropic":
        error = body["error"]
        return bool(
            body["type"] == "error" and error["type"] == "invalid_request_error" and f"'{param}'" in error["message"]
        )
    return set(body) == {"error"} and f"'{param}'" in body["error"]


def refusal_cells() -> list[Any]:
    return [
        pytest.param(surface, field, param, kind, id=f"{surface}-{param}-to-{kind}")
        for surface, field, param, _where, kinds in CELLS
        for kind in kinds
    ]


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize(("surface", "field", "param", "kind"), refusal_cells())
def test_a_field_the_upstream_cannot_express_is_refused_naming_it(
    rig: Rig, surface: str, field: dict[str, Any], param: str, kind: str, stream: bool
) -> None:
    spec = SURFACES[surface]
    before = rig.generated(kind)
    resp = post(rig, spec, spec.body(f"up-{kind}", field, stream))
    assert resp.status_code == 400, resp.text
    assert named_in_error(resp, spec.shape, param), resp.text
    assert rig.generated(kind) == before, "a refused request reached the upstream"


@pytest.mark.parametrize(("surface", "field", "param", "kind"), refusal_cells())
def test_drop_unsupported_answers_without_the_field(
    rig: Rig, surface: str, field: dict[str, Any], param: str, kind: str
) -> None:
    spec = SURFACES[surface]
    resp = post(rig, spec, spec.body(f"drop-{kind}", field, False))
    assert resp.status_code == 200, resp.text
    fake = rig.fake(kind)
    if fake is not None:
        sent = fake.requests[-1].json
        assert sent is not None
        flat = {**sent, **(sent.get("options") or {})}
        assert param.split(".")[-1] not in flat, sent
        if param.endswith(".strict"):
            assert all("strict" not in tool.get("function", tool) for tool in sent["tools"]), sent


@pytest.mark.parametrize(
    ("surface", "field", "where"),
    [pytest.param(s, f, w, id=f"{s}-{p}") for s, f, p, w, _ in CELLS if NATIVE[s] != "mock"],
)
def test_an_upstream_of_the_callers_format_receives_the_field_untouched(
    rig: Rig, surface: str, field: dict[str, Any], where: tuple[str, ...]
) -> None:
    spec = SURFACES[surface]
    kind = NATIVE[surface]
    resp = post(rig, spec, spec.body(f"up-{kind}", field, False))
    assert resp.status_code == 200, resp.text
    fake = rig.fake(kind)
    assert fake is not None
    sent: Any = fake.requests[-1].json
    for key in where:
        sent = sent[key]
    expected: Any = field
    for key in where:
        expected = expected[key]
    assert sent == expected


def test_completion_logprobs_come_back_from_an_openai_upstream_when_translated(rig: Rig) -> None:
    """A model mixing upstream kinds is translated; the legacy logprobs number still reaches OpenAI and the
    upstream's logprobs reach the caller."""
    with httpx.Client(base_url=rig.gateway.url, headers={"Authorization": f"Bearer {rig.gateway.master_key}"}) as http:
        resp = http.post("/v1/completions", json={"model": "mixed", "prompt": "x", "max_tokens": 3, "logprobs": 2})
    assert resp.status_code == 200, resp.text
    fake = rig.fake("openai")
    assert fake is not None and fake.requests[-1].json is not None
    assert fake.requests[-1].path == "/v1/completions" and fake.requests[-1].json["logprobs"] == 2
    logprobs = resp.json()["choices"][0]["logprobs"]
    assert logprobs is not None and "".join(logprobs["tokens"]) == fake.reply.text
    assert logprobs["token_logprobs"] == [-0.25] * len(logprobs["tokens"])


def test_ollama_clients_get_logprobs_back_from_an_openai_upstream(rig: Rig) -> None:
    with rig.ollama() as client:
        answer = client.chat(
            model="up-openai", messages=[{"role": "user", "content": "hi"}], logprobs=True, top_logprobs=1, stream=False
        )
    fake = rig.fake("openai")
    assert fake is not None and fake.requests[-1].json is not None
    assert fake.requests[-1].json["logprobs"] is True and fake.requests[-1].json["top_logprobs"] == 1
    assert answer.logprobs is not None
    assert "".join(entry.token for entry in answer.logprobs) == fake.reply.text
    assert all(entry.logprob == -0.25 and entry.top_logprobs for entry in answer.logprobs)

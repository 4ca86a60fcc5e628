"""Same-format upstreams get the caller's request untouched (only the model renamed): Anthropic-only fields, Ollama
``options`` and ``keep_alive``; Anthropic's beta and version headers; and ``think`` end to end."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes import Reply
from tests.support.rig import Rig, every_kind

THOUGHT = Reply(text="Forty-two.", thinking="The user wants the answer; it is well known.", completion_tokens=12)
BETAS = "interleaved-thinking-2025-05-14,prompt-caching-2024-07-31"


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    same_name = {"name": "llama-fake:latest", "deployments": [{"provider": "ol"}]}  # public name = upstream name
    with every_kind(Path(tmp_path_factory.mktemp("gw")), models=[same_name]) as rig:
        yield rig


@pytest.fixture(autouse=True)
def _fresh(rig: Rig) -> None:
    for fake in rig.fakes.values():
        fake.reset()
        fake.reply = Reply()


def anthropic_http(rig: Rig, **headers: str) -> httpx.Client:
    return httpx.Client(base_url=rig.gateway.url, headers={"x-api-key": rig.gateway.master_key, **headers}, timeout=10)


# --- Anthropic ---------------------------------------------------------------------------------------------------

ANTHROPIC_ONLY: dict[str, Any] = {
    "model": "up-anthropic",
    "max_tokens": 2048,
    "system": [{"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral"}}],
    "messages": [
        {"role": "user", "content": [{"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}]},
        {"role": "assistant", "content": [{"type": "text", "text": "Hello."}]},
        {
            "role": "user",
            "content": [{"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "x"}}],
        },
    ],
    "top_k": 5,
    "metadata": {"user_id": "u-123"},
    "service_tier": "standard_only",
    "thinking": {"type": "enabled", "budget_tokens": 1024},
    "tools": [
        {"name": "w", "input_schema": {"type": "object"}, "cache_control": {"type": "ephemeral"}},
        {"type": "web_search_20250305", "name": "web_search", "max_uses": 2},
    ],
    "tool_choice": {"type": "auto", "disable_parallel_tool_use": True},
    "stop_sequences": ["END"],
}


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_anthropic_only_fields_reach_an_anthropic_upstream_untouched(rig: Rig, stream: bool) -> None:
    body = {**ANTHROPIC_ONLY, "stream": stream}
    with anthropic_http(rig, **{"anthropic-version": "2023-06-01"}) as http:
        resp = http.post("/v1/messages", json=body)
    assert resp.status_code == 200, resp.text
    sent = rig.fakes["anthropic"].requests[-1]
    assert sent.json == {**body, "model": "claude-fake"}


def test_anthropic_beta_and_the_callers_version_reach_an_anthropic_upstream(rig: Rig) -> None:
    with rig.anthropic() as client:
        client.messages.create(
            model="up-anthropic",
            max_tokens=10,
            messages=[{"role": "user", "content": "hi"}],
            extra_headers={"anthropic-beta": BETAS, "anthropic-version": "2024-10-22", "x-private": "secret"},
        )
        client.messages.count_tokens(
            model="up-anthropic",
            messages=[{"role": "user", "content": "hi"}],
            extra_headers={"anthropic-beta": BETAS},
        )
    generated, counted = rig.fakes["anthropic"].requests[-2:]
    assert generated.headers["anthropic-beta"] == BETAS and generated.headers["anthropic-version"] == "2024-10-22"
    assert counted.path == "/v1/messages/count_tokens" and counted.headers["anthropic-beta"] == BETAS
    for seen in (generated, counted):
        # Nothing else of the caller's goes upstream: not its other headers, never its Sluice key.
        assert "x-private" not in seen.headers
        assert rig.gateway.master_key not in json.dumps(seen.headers)


def test_without_a_client_version_the_configured_one_is_sent(rig: Rig) -> None:
    with anthropic_http(rig) as http:
        resp = http.post("/v1/messages", json={**ANTHROPIC_ONLY, "stream": False})
    assert resp.status_code == 200, resp.text
    seen = rig.fakes["anthropic"].requests[-1].headers
    assert seen["anthropic-version"] == "2023-06-01" and "anthropic-beta" not in seen


def test_anthropic_headers_do_not_reach_other_upstream_kinds(rig: Rig) -> None:
    with anthropic_http(rig, **{"anthropic-beta": BETAS, "anthropic-version": "2023-06-01"}) as http:
        resp = http.post(
            "/v1/messages",
            json={"model": "up-openai", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]},
        )
    assert resp.status_code == 200, resp.text
    assert not {"anthropic-beta", "anthropic-version"} & set(rig.fakes["openai"].requests[-1].headers)


# --- Ollama -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (
            "/api/chat",
            {
                "messages": [{"role": "user", "content": "hi", "images": ["iVBORw0KGgo="]}],
                "options": {
                    "num_ctx": 8192,
                    "mirostat": 2,
                    "mirostat_tau": 4.5,
                    "min_p": 0.05,
                    "seed": 7,
                    "num_predict": 64,
                },
                "keep_alive": "10m",
                "format": {"type": "object", "properties": {"a": {"type": "string"}}},
                "think": False,
                "stream": False,
            },
        ),
        (
            "/api/generate",
            {
                "prompt": "Once",
                "system": "Be poetic.",
                "template": "{{ .Prompt }}",
                "raw": True,
                "context": [1, 2, 3],
                "options": {"repeat_penalty": 1.1, "num_gpu": 1},
                "keep_alive": -1,
                "suffix": " The end.",
            },
        ),
        ("/api/embed", {"input": ["a"], "options": {"num_thread": 4}, "keep_alive": "1m", "truncate": False}),
    ],
    ids=["chat", "generate", "embed"],
)
def test_ollama_options_and_keep_alive_reach_an_ollama_upstream_untouched(
    rig: Rig, path: str, body: dict[str, Any]
) -> None:
    full = {"model": "up-ollama", **body}
    with rig.gateway.client() as http:
        resp = http.post(path, json=full)
    assert resp.status_code == 200, resp.text
    sent = rig.fakes["ollama"].requests[-1]
    assert sent.path == path and sent.json == {**full, "model": "llama-fake:latest"}


def test_a_body_naming_the_upstream_model_is_forwarded_byte_for_byte(rig: Rig) -> None:
    raw = b'{"model":  "llama-fake:latest",  "prompt": "x", "options": {"num_ctx": 4096}, "stream": false}'
    with rig.gateway.client() as http:
        assert http.post("/api/generate", content=raw).status_code == 200
    assert rig.fakes["ollama"].requests[-1].body == raw


# --- think, end to end --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize(
    ("kind", "think"), [("ollama", True), ("anthropic", True), ("anthropic", "high"), ("openai", True)]
)
def test_think_reaches_the_upstream_in_its_terms_and_the_thinking_comes_back(
    rig: Rig, kind: str, think: bool | str, stream: bool
) -> None:
    fake = rig.fakes[kind]
    fake.reply = THOUGHT
    with rig.ollama() as client:
        request: dict[str, Any] = {
            "model": f"up-{kind}",
            "messages": [{"role": "user", "content": "The answer?"}],
            "think": think,
        }
        parts = list(client.chat(**request, stream=True)) if stream else [client.chat(**request, stream=False)]
    thinking = "".join(p.message.thinking or "" for p in parts)
    content = "".join(p.message.content or "" for p in parts)
    assert thinking == THOUGHT.thinking and content == THOUGHT.text
    sent = fake.requests[-1].json
    assert sent is not None
    if kind == "ollama":
        assert sent["think"] is True  # passed through as sent
    elif kind == "anthropic":
        budget = 16384 if think == "high" else 4096
        assert sent["thinking"] == {"type": "enabled", "budget_tokens": budget}
        assert sent["max_tokens"] > budget
    else:
        assert sent["reasoning_effort"] == "medium"


# --- the answer's model ---------------------------------------------------------------------------------------


def models_in(surface: str, resp: httpx.Response, stream: bool) -> set[str]:
    """Every ``model`` an answer names (each stream chunk, Anthropic's message_start, each Ollama line)."""
    if not stream:
        return {resp.json()["model"]}
    if surface == "ollama":
        return {json.loads(line)["model"] for line in resp.text.splitlines() if line.strip()}
    payloads = [json.loads(line[6:]) for line in resp.text.splitlines() if line.startswith("data: {")]
    if surface == "anthropic":
        return {p["message"]["model"] for p in payloads if p["type"] == "message_start"}
    return {p["model"] for p in payloads}


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("kind", ["openai", "anthropic", "ollama", "mock"])
@pytest.mark.parametrize("surface", ["openai", "anthropic", "ollama"])
def test_every_answer_names_the_model_as_the_upstream_reported_it(
    rig: Rig, surface: str, kind: str, stream: bool
) -> None:
    """One rule, translated or passed through: the upstream's own name (a dated snapshot here), or the deployment's
    model name when the upstream reports none (the mock)."""
    if kind != "mock":
        rig.fakes[kind].reply = Reply(model="snapshot-2025-01-01")
    messages = [{"role": "user", "content": "hi"}]
    path, body = {
        "openai": ("/v1/chat/completions", {"messages": messages, "stream": stream}),
        "anthropic": ("/v1/messages", {"messages": messages, "max_tokens": 20, "stream": stream}),
        "ollama": ("/api/chat", {"messages": messages, "stream": stream}),
    }[surface]
    with anthropic_http(rig, **{"anthropic-version": "2023-06-01"}) as http:
        resp = http.post(path, json={"model": f"up-{kind}", **body})
    assert resp.status_code == 200, resp.text
    assert models_in(surface, resp, stream) == {"mock-1" if kind == "mock" else "snapshot-2025-01-01"}

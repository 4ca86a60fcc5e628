"""OpenAI client → OpenAI-compatible upstream: pass-through with minimal edits, faults, and disconnects.

The upstream is a fake that speaks OpenAI's wire format exactly and records what it received.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.fakes import FakeOpenAI, Fault, Reply, ToolCallSpec
from tests.support.openapi import spec_available, validate
from tests.support.server import SluiceServer, make_settings

UPSTREAM_KEY = "sk-upstream-secret"
REPLY = Reply(text="Hello from the fake upstream.", prompt_tokens=12, completion_tokens=7)


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(api_key=UPSTREAM_KEY) as upstream:
        yield upstream


@pytest.fixture(scope="module")
def gateway(fake: FakeOpenAI, database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SluiceServer]:
    config = {
        "database_url": database_url,
        "providers": [
            {
                "name": "up",
                "kind": "openai",
                "base_url": fake.base_url,
                "api_key": UPSTREAM_KEY,
                "discover_models": True,
                "timeouts": {"connect": 2, "first_byte": 2, "idle": 1, "total": 30},
            }
        ],
        "models": [{"name": "smart", "deployments": [{"provider": "up", "model": "gpt-fake"}]}],
        "routing": {"max_attempts": 1},
        "breaker": {"consecutive_failures": 1000, "minimum_calls": 1000},  # failures on purpose here
        # how each failure is mapped; retries have their own tests
    }
    with SluiceServer(make_settings(Path(tmp_path_factory.mktemp("gw")), config)) as server:
        yield server


@pytest.fixture
def client(gateway: SluiceServer, fake: FakeOpenAI) -> Iterator[openai.OpenAI]:
    fake.reset()
    fake.reply = REPLY
    with openai.OpenAI(base_url=gateway.url + "/v1", api_key=gateway.master_key, max_retries=0, timeout=10) as c:
        yield c


def user(text: str = "Hello") -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


# --- the happy paths ------------------------------------------------------------------------------------------


def test_chat_passes_through_with_only_the_model_renamed(client: openai.OpenAI, fake: FakeOpenAI) -> None:
    resp = client.chat.completions.create(model="smart", messages=user(), temperature=0.3, logit_bias={"1": 2})  # type: ignore[arg-type]
    assert resp.choices[0].message.content == REPLY.text
    assert resp.usage is not None and (resp.usage.prompt_tokens, resp.usage.completion_tokens) == (12, 7)
    sent = fake.requests[-1]
    assert sent.path == "/v1/chat/completions"
    assert sent.json is not None
    assert sent.json["model"] == "gpt-fake"
    assert sent.json["temperature"] == 0.3 and sent.json["logit_bias"] == {"1": 2}
    assert sent.headers["authorization"] == f"Bearer {UPSTREAM_KEY}"  # never the caller's key


def test_untouched_body_is_forwarded_byte_for_byte(gateway: SluiceServer, fake: FakeOpenAI) -> None:
    fake.reset()
    raw = b'{"model":  "gpt-fake",   "messages": [{"role": "user", "content": "x"}]}'
    with gateway.client() as http:
        assert http.post("/v1/chat/completions", content=raw).status_code == 200
    assert fake.requests[-1].body == raw


def test_stream_asks_upstream_for_usage_but_hides_it_when_not_requested(
    client: openai.OpenAI, fake: FakeOpenAI
) -> None:
    chunks = list(client.chat.completions.create(model="smart", messages=user(), stream=True))  # type: ignore[arg-type]
    assert fake.requests[-1].json is not None
    assert fake.requests[-1].json["stream_options"] == {"include_usage": True}
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == REPLY.text
    assert all(c.choices for c in chunks), "the usage-only chunk the client did not ask for was forwarded"


def test_stream_with_include_usage_gets_the_upstreams_usage(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model="smart",
            messages=user(),
            stream=True,
            stream_options={"include_usage": True},  # type: ignore[arg-type]
        )
    )
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 7


def test_streamed_tool_calls_pass_through(client: openai.OpenAI, fake: FakeOpenAI) -> None:
    fake.reply = Reply(text="", tool_calls=[ToolCallSpec("call_1", "lookup", {"q": "sluice"})], finish="tool_calls")
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
    chunks = list(client.chat.completions.create(model="smart", messages=user(), tools=tools, stream=True))  # type: ignore[arg-type]
    deltas = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert deltas[0].id == "call_1" and deltas[0].function and deltas[0].function.name == "lookup"
    assert json.loads("".join(d.function.arguments or "" for d in deltas if d.function)) == {"q": "sluice"}


def test_one_byte_fragments_are_reassembled(client: openai.OpenAI, fake: FakeOpenAI) -> None:
    fake.enqueue(Fault("fragments"))
    chunks = list(client.chat.completions.create(model="smart", messages=user(), stream=True))  # type: ignore[arg-type]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == REPLY.text


def test_embeddings_pass_through(client: openai.OpenAI, fake: FakeOpenAI) -> None:
    floats = client.embeddings.create(model="smart", input=["a", "b"], encoding_format="float")
    b64 = client.embeddings.create(model="smart", input=["a", "b"])
    assert len(floats.data) == 2 and floats.data[0].embedding == pytest.approx(b64.data[0].embedding, rel=1e-6)
    assert fake.requests[-1].json is not None and fake.requests[-1].json["model"] == "gpt-fake"


def test_discovered_models_are_listed_with_configured_ones(client: openai.OpenAI) -> None:
    ids = {m.id for m in client.models.list()}
    assert {"smart", "gpt-fake", "gpt-fake-mini", "mock-1"} <= ids


def test_discovered_model_is_served_under_its_own_name(client: openai.OpenAI, fake: FakeOpenAI) -> None:
    client.chat.completions.create(model="gpt-fake-mini", messages=user())  # type: ignore[arg-type]
    assert fake.requests[-1].json is not None and fake.requests[-1].json["model"] == "gpt-fake-mini"


@pytest.mark.skipif(not spec_available(), reason="../shared/specs/openai-openapi.yaml is absent")
def test_passed_through_responses_match_openai_schemas(gateway: SluiceServer, fake: FakeOpenAI) -> None:
    fake.reply = REPLY
    with gateway.client() as http:
        body = {"model": "smart", "messages": user()}
        validate("CreateChatCompletionResponse", http.post("/v1/chat/completions", json=body).json())
        text = http.post("/v1/chat/completions", json={**body, "stream": True}).text
        payloads = [ln[6:] for ln in text.splitlines() if ln.startswith("data: ")]
        assert payloads[-1] == "[DONE]"
        for payload in payloads[:-1]:
            validate("CreateChatCompletionStreamResponse", json.loads(payload))


# --- upstream errors before the first byte ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "expected", "error"),
    [
        (400, 400, openai.BadRequestError),
        (401, 502, openai.APIStatusError),
        (404, 404, openai.NotFoundError),
        (429, 429, openai.RateLimitError),
        (500, 502, openai.APIStatusError),
        (503, 502, openai.APIStatusError),
    ],
)
def test_upstream_status_errors_reach_the_client_mapped(
    client: openai.OpenAI, fake: FakeOpenAI, status: int, expected: int, error: type[Exception]
) -> None:
    fake.enqueue(Fault("status", status=status, retry_after=7 if status == 429 else None, message="upstream says no"))
    with pytest.raises(error) as caught:
        client.chat.completions.create(model="smart", messages=user())  # type: ignore[arg-type]
    assert caught.value.status_code == expected  # type: ignore[attr-defined]
    if status == 429:
        assert caught.value.response.headers["retry-after"] == "7"  # type: ignore[attr-defined]
    if status in (400, 404):
        assert "upstream says no" in str(caught.value)
    if status == 401:
        assert UPSTREAM_KEY not in caught.value.response.text  # type: ignore[attr-defined]


def test_refused_connection_is_502(client: openai.OpenAI, fake: FakeOpenAI) -> None:
    fake.enqueue(Fault("refuse"))
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="smart", messages=user())  # type: ignore[arg-type]
    assert caught.value.status_code == 502


def test_hanging_upstream_is_504_at_the_deadline_and_the_connection_is_closed(
    client: openai.OpenAI, fake: FakeOpenAI
) -> None:
    fake.enqueue(Fault("hang", seconds=30))
    started = time.monotonic()
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="smart", messages=user())  # type: ignore[arg-type]
    assert caught.value.status_code == 504
    assert time.monotonic() - started < 5
    assert fake.wait_for(lambda: len(fake.disconnects) == 1, timeout=2)


# --- failures after the first byte ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fault",
    [
        Fault("reset_mid_stream", after_chunks=2),
        Fault("bad_json", after_chunks=2),
        Fault("no_terminator"),
        Fault("in_band_error", after_chunks=2),
        Fault("stall", after_chunks=2, seconds=3),
    ],
    ids=lambda f: f.kind,
)
def test_mid_stream_failure_ends_with_an_error_event_not_a_clean_stop(
    client: openai.OpenAI, fake: FakeOpenAI, fault: Fault
) -> None:
    fake.enqueue(fault)
    received = ""
    with pytest.raises(openai.APIError):
        for chunk in client.chat.completions.create(model="smart", messages=user(), stream=True):  # type: ignore[arg-type]
            if chunk.choices:
                received += chunk.choices[0].delta.content or ""
    assert REPLY.text.startswith(received)
    if fault.kind != "no_terminator":
        assert received != REPLY.text


# --- client disconnects ---------------------------------------------------------------------------------------


def test_client_leaving_mid_stream_closes_the_upstream_within_a_second(gateway: SluiceServer, fake: FakeOpenAI) -> None:
    fake.reset()
    fake.enqueue(Fault("endless", interval=0.01))
    body = {"model": "smart", "messages": user(), "stream": True}
    with (
        httpx.Client(base_url=gateway.url, timeout=5) as http,
        http.stream(
            "POST", "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {gateway.master_key}"}
        ) as resp,
    ):
        lines = resp.iter_lines()
        for _ in range(5):
            next(lines)
    left_at = time.monotonic()
    assert fake.wait_for(lambda: len(fake.disconnects) == 1, timeout=3)
    assert fake.disconnects[0].disconnected_at is not None
    assert fake.disconnects[0].disconnected_at - left_at < 1.0
    assert fake.wait_for(lambda: fake.in_flight == 0, timeout=1)


def test_client_leaving_before_a_non_streamed_answer_closes_the_upstream(
    gateway: SluiceServer, fake: FakeOpenAI
) -> None:
    fake.reset()
    fake.enqueue(Fault("hang", seconds=30))
    body = json.dumps({"model": "smart", "messages": user()}).encode()
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {gateway.master_key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as sock:
        sock.sendall(head + body)
        assert fake.wait_for(lambda: fake.attempts == 1, timeout=3)
    left_at = time.monotonic()
    # The upstream would also see the gateway go at its first-byte deadline (2 s after the request): a close seen
    # well before that is the client's leaving passed on. The wait is longer, so a slow machine fails on the
    # bound below with the measured delay, not on a bare timeout.
    seen = fake.wait_for(lambda: len(fake.disconnects) >= 1, timeout=10)
    assert seen, f"the upstream never saw the gateway go (attempts={fake.attempts}, in_flight={fake.in_flight})"
    assert len(fake.disconnects) == 1
    disconnected_at = fake.disconnects[0].disconnected_at
    assert disconnected_at is not None
    assert disconnected_at - left_at < 1.5, f"closed {disconnected_at - left_at:.2f} s after the client left"

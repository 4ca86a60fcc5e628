"""Every upstream fault, on every client surface, streamed and not, end to end (SECURITY.md cases 23-29, 35).

Each surface has two models: one whose upstream speaks the surface's own format (pass-through) and one whose
upstream speaks another (translated). Each has one capacity-1 deployment on a fake upstream and a fallback model
(``on: [upstream_error, timeout]``) on a second fake of the same kind. Every case checks what the client got
(status and the surface's error shape, or for a stream that had started the surface's error event and never a
clean stop), how many attempts each fake counted, which deployment served, that the request was billed exactly
once (what was relayed before a failure mid-stream, marked estimated where the upstream's own usage never came),
and that the slot and every upstream connection were given back: nothing in flight, and neither fake holds a
connection open.

The fakes close their connection after every answer (``keep_alive = False``), so a connection that stays open is
one the gateway still holds; hangs and stalls last far longer than the bounded wait for that, so a leak fails.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import httpx
import pytest
from sqlalchemy import select

from sluice.store.models import UsageRecord
from tests.fakes import FakeAnthropic, FakeOllama, FakeOpenAI, FakeUpstream, Fault
from tests.support.server import MASTER_KEY, SluiceServer, make_settings

Surface = Literal["openai", "anthropic", "ollama"]
Route = Literal["same", "translated"]
SURFACES: tuple[Surface, ...] = ("openai", "anthropic", "ollama")
FAKES = {"openai": FakeOpenAI, "anthropic": FakeAnthropic, "ollama": FakeOllama}
UPSTREAM: dict[Route, dict[Surface, Surface]] = {  # the upstream format behind each surface's model
    "same": {"openai": "openai", "anthropic": "anthropic", "ollama": "ollama"},
    "translated": {"openai": "anthropic", "anthropic": "ollama", "ollama": "openai"},
}
HEADERS = {"authorization": f"Bearer {MASTER_KEY}", "anthropic-version": "2023-06-01"}
TIMEOUTS = {"connect": 1, "first_byte": 0.5, "idle": 0.5, "total": 10}
CAP = 4096  # max_response_bytes: an endless answer is cut off here
RETRY_AFTER = 0.3
LONG = 10.0  # hangs and stalls: far past every deadline and every bounded wait below
REPLY = "Hello from the fake upstream."

Fakes = dict[tuple[Route, Surface], tuple[FakeUpstream, FakeUpstream]]  # (primary, backup)


@pytest.fixture(scope="module")
def fakes() -> Iterator[Fakes]:
    started: list[FakeUpstream] = []
    try:
        pairs: Fakes = {}
        for route, upstreams in UPSTREAM.items():
            for surface, kind in upstreams.items():
                pair = (FAKES[kind]().start(), FAKES[kind]().start())
                started.extend(pair)
                for fake in pair:
                    fake.keep_alive = False
                pairs[route, surface] = pair
        yield pairs
    finally:
        for fake in started:
            fake.stop()


def _base_url(fake: FakeUpstream) -> str:
    return fake.base_url if isinstance(fake, FakeOpenAI) else fake.url


@pytest.fixture(scope="module")
def gateway(fakes: Fakes, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SluiceServer]:
    providers, models = [], []
    for (route, surface), (primary, backup) in fakes.items():
        name = f"{route}-{surface}"
        for provider, fake in ((name, primary), (f"{name}-b", backup)):
            providers.append(
                {
                    "name": provider,
                    "kind": UPSTREAM[route][surface],
                    "base_url": _base_url(fake),
                    "timeouts": TIMEOUTS,
                    "max_connections": 1,  # a connection never given back would stall every later case
                    "max_response_bytes": CAP,
                }
            )
        models.append(
            {
                "name": name,
                "fallbacks": [{"model": f"{name}-b", "on": ["upstream_error", "timeout"]}],
                "deployments": [{"provider": name, "model": "fake-model", "capacity": 1}],
            }
        )
        models.append({"name": f"{name}-b", "deployments": [{"provider": f"{name}-b", "model": "fake-model"}]})
    config = {
        "providers": providers,
        "models": models,
        "routing": {"max_attempts": 3, "backoff_base": 0.01, "backoff_max": 0.02, "respect_retry_after_up_to": 2},
        "breaker": {"consecutive_failures": 1000, "minimum_calls": 1000},  # circuits stay closed throughout
        "health": {"interval_seconds": 0},
    }
    with SluiceServer(make_settings(Path(tmp_path_factory.mktemp("gw")), config)) as server:
        yield server


@pytest.fixture(autouse=True)
def clean(fakes: Fakes) -> None:
    for pair in fakes.values():
        for fake in pair:
            fake.reset()


# --- what each fault should come to ---------------------------------------------------------------------------

Outcome = Literal["served", "error", "stream_error"]


@dataclass(frozen=True)
class Expect:
    outcome: Outcome
    attempts: tuple[int, int]  # (primary, backup) as the fakes count them
    status: int = 200  # the HTTP status the client sees
    by: Literal["primary", "backup"] | None = None  # who served the answer
    estimated: frozenset[Surface] = frozenset()  # upstream formats whose usage never came: Sluice estimates it
    marker: str | None = None  # in the error message


FALLBACK = Expect("served", (1, 1), by="backup")
EVERYWHERE = frozenset(SURFACES)


@dataclass(frozen=True)
class Case:
    name: str
    fault: Fault
    streamed: Expect
    whole: Expect  # not streamed: nothing reaches the client before the whole answer, so every fault falls back


CASES = [
    Case("refuse", Fault("refuse"), FALLBACK, FALLBACK),
    Case("hang", Fault("hang", seconds=LONG), FALLBACK, FALLBACK),
    Case("5xx", Fault("status", status=503), FALLBACK, FALLBACK),
    Case(
        "429",  # not a listed fallback kind: the same deployment again, after its Retry-After
        Fault("status", status=429, retry_after=RETRY_AFTER),
        Expect("served", (2, 0), by="primary"),
        Expect("served", (2, 0), by="primary"),
    ),
    Case(
        "reset",
        Fault("reset_mid_stream", after_chunks=1),
        Expect("stream_error", (1, 0), estimated=EVERYWHERE),
        FALLBACK,
    ),
    Case(
        "fragments", Fault("fragments"), Expect("served", (1, 0), by="primary"), Expect("served", (1, 0), by="primary")
    ),
    Case(
        "bad_json",
        Fault("bad_json", after_chunks=1),
        Expect("stream_error", (1, 0), estimated=EVERYWHERE, marker="JSON"),
        FALLBACK,
    ),
    Case(
        "no_terminator",
        Fault("no_terminator"),
        # Anthropic's message_delta (sent) carries the usage; OpenAI's usage chunk and Ollama's done line are cut
        Expect("stream_error", (1, 0), estimated=frozenset({"openai", "ollama"}), marker="ended"),
        FALLBACK,
    ),
    Case(
        "in_band_error",
        Fault("in_band_error", after_chunks=1, message="the model fell over"),
        Expect("stream_error", (1, 0), estimated=EVERYWHERE),
        FALLBACK,
    ),
    Case(
        "stall",
        Fault("stall", after_chunks=1, seconds=LONG),
        Expect("stream_error", (1, 0), estimated=EVERYWHERE, marker="nothing for 0.5 s"),
        FALLBACK,
    ),
    Case(
        "endless",
        Fault("endless", interval=0.0001),
        Expect("stream_error", (1, 0), estimated=EVERYWHERE, marker="exceeded"),
        FALLBACK,
    ),
]

_ids = itertools.count()


# --- the client side --------------------------------------------------------------------------------------------


def _body(model: str, surface: Surface, stream: bool) -> tuple[str, dict[str, Any]]:
    messages = [{"role": "user", "content": "hi"}]
    if surface == "openai":
        return "/v1/chat/completions", {"model": model, "messages": messages, "stream": stream}
    if surface == "anthropic":
        return "/v1/messages", {"model": model, "max_tokens": 50, "messages": messages, "stream": stream}
    return "/api/chat", {"model": model, "messages": messages, "stream": stream}


def _events(surface: Surface, raw: bytes) -> list[tuple[str | None, Any]]:
    """The stream as (event name, parsed data) pairs; OpenAI's [DONE] as ("done", None)."""
    text = raw.decode()
    if surface == "ollama":
        return [(None, json.loads(line)) for line in text.splitlines() if line.strip()]
    events: list[tuple[str | None, Any]] = []
    for block in text.split("\n\n"):
        name, data = None, []
        for line in block.splitlines():
            if line.startswith("event:"):
                name = line.removeprefix("event:").strip()
            elif line.startswith("data:"):
                data.append(line.removeprefix("data:").strip())
        if data == ["[DONE]"]:
            events.append(("done", None))
        elif data:
            events.append((name, json.loads("\n".join(data))))
    return events


def _error_text(surface: Surface, payload: Any) -> str | None:
    """The error message a payload carries in the surface's shape (None when it is not an error)."""
    if surface == "anthropic":
        return str(payload["error"]["message"]) if payload.get("type") == "error" else None
    error = payload.get("error") if isinstance(payload, dict) else None
    if error is None:
        return None
    return str(error["message"]) if surface == "openai" else str(error)


def _text(surface: Surface, events: list[tuple[str | None, Any]]) -> str:
    parts = []
    for _, data in events:
        if not isinstance(data, dict):
            continue
        if surface == "openai":
            parts += [c["delta"].get("content") or "" for c in data.get("choices", [])]
        elif surface == "anthropic":
            parts.append((data.get("delta") or {}).get("text", "") if data.get("type") == "content_block_delta" else "")
        else:
            parts.append((data.get("message") or {}).get("content", ""))
    return "".join(parts)


def _whole_text(surface: Surface, payload: dict[str, Any]) -> str:
    if surface == "openai":
        return str(payload["choices"][0]["message"]["content"])
    if surface == "anthropic":
        return "".join(block["text"] for block in payload["content"] if block["type"] == "text")
    return str(payload["message"]["content"])


def _clean_end(surface: Surface, events: list[tuple[str | None, Any]]) -> bool:
    if surface == "openai":
        return ("done", None) in events
    if surface == "anthropic":
        return any(isinstance(d, dict) and d.get("type") == "message_stop" for _, d in events)
    return any(isinstance(d, dict) and d.get("done") is True for _, d in events)


def _check_answer(surface: Surface, stream: bool, resp: httpx.Response, expect: Expect) -> None:
    assert resp.status_code == expect.status, resp.text
    if not stream:
        payload = resp.json()
        message = _error_text(surface, payload)
        if expect.outcome == "served":
            assert message is None and _whole_text(surface, payload) == REPLY
        else:
            assert message is not None and (expect.marker is None or expect.marker in message), payload
        return
    events = _events(surface, resp.content)
    errors = [text for _, data in events if (text := _error_text(surface, data)) is not None]
    if expect.outcome == "served":
        assert errors == [] and _clean_end(surface, events) and _text(surface, events) == REPLY
        return
    assert len(errors) == 1 and not _clean_end(surface, events), events  # an error event, never a clean stop
    assert _error_text(surface, events[-1][1]) is not None  # and it is the last thing sent
    assert expect.marker is None or expect.marker in errors[0], errors


# --- the gateway's side -------------------------------------------------------------------------------------------


def _record(gateway: SluiceServer, request_id: str) -> UsageRecord:
    async def fetch() -> list[UsageRecord]:
        while await gateway.services.accounting.shipper.ship_once():
            pass
        async with gateway.services.db.session() as session:
            query = select(UsageRecord).where(UsageRecord.request_id == request_id)
            return list((await session.execute(query)).scalars())

    [record] = gateway.call(fetch())  # exactly one: billed once, whatever happened
    return record


def _released(gateway: SluiceServer, fakes: tuple[FakeUpstream, FakeUpstream]) -> None:
    def idle() -> bool:
        with gateway.client() as http:
            queues = http.get("/admin/v1/queues").json()["deployments"]
        return all(d["in_flight"] == 0 for d in queues)

    assert fakes[0].wait_for(idle, timeout=3), "a scheduler slot was not given back"
    for fake in fakes:
        assert fake.wait_for(lambda f=fake: f.in_flight == 0 and f.open_connections == 0, timeout=3), (
            "an upstream connection was not given back"
        )
    states = gateway.services.gateway.router.states()
    assert all(state.in_flight == 0 for state in states.values())


# --- the matrix ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "whole"])
@pytest.mark.parametrize("route", ["same", "translated"])
@pytest.mark.parametrize("surface", SURFACES)
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_fault(gateway: SluiceServer, fakes: Fakes, case: Case, surface: Surface, route: Route, stream: bool) -> None:
    primary, backup = fakes[route, surface]
    model = f"{route}-{surface}"
    expect = case.streamed if stream else case.whole
    primary.enqueue(case.fault)
    request_id = f"fault-{case.name}-{model}-{stream}-{next(_ids)}"
    path, body = _body(model, surface, stream)
    resp = httpx.post(gateway.url + path, json=body, headers={**HEADERS, "X-Request-ID": request_id}, timeout=30)

    _check_answer(surface, stream, resp, expect)
    assert (primary.attempts, backup.attempts) == expect.attempts
    if case.fault.kind == "status" and case.fault.status == 429:
        first, second = (r.received_at for r in primary.requests if r.path in primary.generation_paths)
        assert second - first >= RETRY_AFTER  # the upstream's Retry-After was honoured

    record = _record(gateway, request_id)
    assert record.deployment is not None
    if expect.by is not None:
        served_by = model if expect.by == "primary" else f"{model}-b"
        assert record.deployment.startswith(f"{served_by}#"), record.deployment
        assert resp.headers["x-sluice-deployment"] == record.deployment
        assert record.status == 200 and not record.estimated and record.completion_tokens > 0
    else:
        assert record.deployment.startswith(f"{model}#")
        assert record.status >= 500  # the failure, although the stream itself had started with 200
        assert record.completion_tokens > 0  # what was relayed is billed ...
        assert record.estimated is (UPSTREAM[route][surface] in expect.estimated)  # ... when the upstream never said
    _released(gateway, (primary, backup))

"""OpenTelemetry traces through a real OTLP/HTTP endpoint: spans, GenAI attributes, traceparent in and out."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.fakes import FakeOpenAI, Reply
from tests.support.server import MASTER_KEY, SluiceServer, make_settings

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"


class Collector:
    """A minimal OTLP/HTTP trace receiver: keeps every exported span."""

    def __init__(self) -> None:
        self.spans: list[Any] = []
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                for resource in request.resource_spans:
                    for scope in resource.scope_spans:
                        collector.spans.extend(scope.spans)
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1/traces"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def collector() -> Iterator[Collector]:
    running = Collector()
    yield running
    running.close()


def attributes(span: Any) -> dict[str, Any]:
    out = {}
    for kv in span.attributes:
        value = kv.value
        out[kv.key] = value.string_value or value.int_value or value.bool_value
    return out


SNAPSHOT = "gpt-4o-mini-2024-07-18"  # what the upstream says answered, as OpenAI answers a dated snapshot


def test_request_spans_with_gen_ai_attributes_and_propagation(tmp_path: Path, collector: Collector) -> None:
    with FakeOpenAI(reply=Reply(model=SNAPSHOT)) as upstream:
        config = {
            "observability": {"otlp_endpoint": collector.url, "service_name": "sluice-test"},
            "providers": [{"name": "up", "kind": "openai", "base_url": upstream.url + "/v1", "api_key": "k"}],
            "models": [{"name": "m", "deployments": [{"provider": "up", "model": "gpt-4o-mini", "capacity": 4}]}],
        }
        with SluiceServer(make_settings(tmp_path, config)) as server:
            response = httpx.post(
                f"{server.url}/v1/chat/completions",
                headers={"authorization": f"Bearer {MASTER_KEY}", "traceparent": f"00-{TRACE_ID}-{CALLER_SPAN}-01"},
                json={"model": "m", "messages": [{"role": "user", "content": "hi"}]},
                timeout=30,
            )
            assert response.status_code == 200
        # Stopping the server shuts the tracer provider down, which flushes the batch.
    spans = wait_for_spans(collector, 9)
    by_name = {span.name: span for span in spans}
    root = by_name["openai chat"]
    assert root.trace_id.hex() == TRACE_ID and root.parent_span_id.hex() == CALLER_SPAN
    assert attributes(root)["http.response.status_code"] == 200
    assert attributes(root)["gen_ai.request.model"] == "m"
    assert attributes(root)["gen_ai.response.model"] == SNAPSHOT
    client = by_name["chat gpt-4o-mini"]
    assert client.parent_span_id == root.span_id
    attrs = attributes(client)
    assert attrs["gen_ai.system"] == "openai" and attrs["gen_ai.request.model"] == "gpt-4o-mini"
    assert attrs["gen_ai.response.model"] == SNAPSHOT
    assert attrs["gen_ai.usage.input_tokens"] > 0 and attrs["gen_ai.usage.output_tokens"] > 0
    sent = next(r for r in upstream.requests if r.path.endswith("/chat/completions"))
    assert sent.headers["traceparent"] == f"00-{TRACE_ID}-{client.span_id.hex()}-01"
    # One child span per stage, in pipeline order, each within the request's span.
    stages = [span for span in spans if span.name.startswith("sluice.") and span.name != "sluice.schedule"]
    assert [span.name for span in sorted(stages, key=lambda s: s.start_time_unix_nano)] == [
        "sluice.identify",
        "sluice.decode",
        "sluice.route",
        "sluice.admit",
        "sluice.call",
        "sluice.encode",
        "sluice.settle",
    ]
    for earlier, later in pairwise(sorted(stages, key=lambda s: s.start_time_unix_nano)):
        assert earlier.end_time_unix_nano <= later.start_time_unix_nano
    for span in stages:
        assert span.parent_span_id == root.span_id and span.trace_id == root.trace_id
        assert root.start_time_unix_nano <= span.start_time_unix_nano <= span.end_time_unix_nano
        assert span.end_time_unix_nano <= root.end_time_unix_nano
    # The deployment has a capacity, so the attempt went through the scheduler first.
    schedule = by_name["sluice.schedule"]
    assert schedule.parent_span_id == root.span_id
    assert attributes(schedule)["sluice.deployment"] == "m#0:up/gpt-4o-mini"
    assert schedule.end_time_unix_nano <= client.start_time_unix_nano
    call = by_name["sluice.call"]
    assert call.start_time_unix_nano <= schedule.start_time_unix_nano
    assert client.start_time_unix_nano <= call.end_time_unix_nano


def test_a_translated_stream_reports_the_model_its_upstream_named(tmp_path: Path, collector: Collector) -> None:
    with FakeOpenAI(reply=Reply(model=SNAPSHOT)) as upstream:
        config = {
            "observability": {"otlp_endpoint": collector.url},
            "providers": [{"name": "up", "kind": "openai", "base_url": upstream.url + "/v1", "api_key": "k"}],
            "models": [{"name": "m", "deployments": [{"provider": "up", "model": "gpt-4o-mini"}]}],
        }
        with SluiceServer(make_settings(tmp_path, config)) as server:
            body = {"model": "m", "max_tokens": 20, "stream": True, "messages": [{"role": "user", "content": "hi"}]}
            response = httpx.post(f"{server.url}/v1/messages", headers={"x-api-key": MASTER_KEY}, json=body, timeout=30)
            assert response.status_code == 200 and "message_stop" in response.text
    by_name = {span.name: span for span in wait_for_spans(collector, 2)}
    assert attributes(by_name["chat gpt-4o-mini"])["gen_ai.response.model"] == SNAPSHOT
    assert attributes(by_name["anthropic messages"])["gen_ai.response.model"] == SNAPSHOT
    assert "sluice.schedule" not in by_name  # no capacity, no scheduling


def wait_for_spans(collector: Collector, count: int) -> list[Any]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(collector.spans) < count:
        time.sleep(0.05)
    return list(collector.spans)


def test_no_traceparent_is_sent_when_tracing_is_off(tmp_path: Path) -> None:
    with FakeOpenAI() as upstream:
        config = {
            "providers": [{"name": "up", "kind": "openai", "base_url": upstream.url + "/v1", "api_key": "k"}],
            "models": [{"name": "m", "deployments": [{"provider": "up", "model": "gpt-4o-mini"}]}],
        }
        with SluiceServer(make_settings(tmp_path, config)) as server:
            httpx.post(
                f"{server.url}/v1/chat/completions",
                headers={"authorization": f"Bearer {MASTER_KEY}", "traceparent": f"00-{TRACE_ID}-{CALLER_SPAN}-01"},
                json={"model": "m", "messages": [{"role": "user", "content": "hi"}]},
                timeout=30,
            )
        sent = next(r for r in upstream.requests if r.path.endswith("/chat/completions"))
        assert "traceparent" not in sent.headers

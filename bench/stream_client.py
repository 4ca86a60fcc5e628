"""Time to first chunk: N sequential streamed requests, timed from sending to the first complete SSE event."""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass
from typing import Any

from bench import payloads
from bench.http_client import HttpConnection, HttpProtocolError
from bench.procs import BenchError


@dataclass
class StreamResult:
    requests: int
    errors: int
    ttft_p50_ms: float
    ttft_p99_ms: float
    total_p50_ms: float  # to the end of the stream ([DONE] and the chunked terminator)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (no interpolation: p99 of 200 samples is the 198th smallest)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def measure_ttft(port: int, key: str | None, requests: int, warmup: int = 10) -> StreamResult:
    body = payloads.chat_request(stream=True)
    headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    firsts: list[float] = []
    totals: list[float] = []
    errors = 0
    with HttpConnection(port) as conn:
        for i in range(warmup + requests):
            try:
                reply = conn.post("/v1/chat/completions", body, headers)
            except (OSError, HttpProtocolError):
                errors += 1
                continue
            complete = reply.body.rstrip().endswith(b"data: [DONE]")
            if reply.status != 200 or reply.first_event_at is None or not complete:
                errors += 1
                if errors > max(5, requests // 10):
                    raise BenchError(f"streams on port {port} keep failing: HTTP {reply.status} {reply.body[:300]!r}")
                continue
            if i >= warmup:
                firsts.append((reply.first_event_at - reply.sent_at) * 1000)
                totals.append((reply.done_at - reply.sent_at) * 1000)
    if not firsts:
        raise BenchError(f"no stream on port {port} succeeded")
    return StreamResult(
        requests=len(firsts),
        errors=errors,
        ttft_p50_ms=statistics.median(firsts),
        ttft_p99_ms=percentile(firsts, 99),
        total_p50_ms=statistics.median(totals),
    )

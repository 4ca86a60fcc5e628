"""From measurements to figures: medians over rounds, ratios to direct and floor, the targets, and Markdown.

:func:`document` turns a run into the JSON document that is saved; :func:`markdown` renders that document, so a
saved result can be rendered again later (``python -m bench --render results/<file>.json``).
"""

from __future__ import annotations

import statistics
from datetime import UTC, datetime
from typing import Any

from bench.runner import LOAD_SCENARIOS, Measured, Options, RunResult

# (what, how it is computed, goal text, test) — the PRODUCT and issue targets checked for every Sluice variant.
ADDED_P50_MAX_MS = 1.0
FLOOR_RATIO_ISSUE = 0.5
FLOOR_RATIO_PRODUCT = 0.8
TTFT_ADDED_MAX_MS = 1.0
IDLE_RSS_MAX_MB = 150.0
STARTUP_MAX_S = 3.0
BASELINE_TOLERANCE = 0.10
TOP = max(LOAD_SCENARIOS.values())


def _median(values: list[float]) -> float:
    return float(statistics.median(values))


def _median_or_none(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return _median(known) if known else None


def _target_json(m: Measured) -> dict[str, Any]:
    t = m.target
    load = {
        str(conc): {
            "rps": _median([r.rps for r in rounds]),
            "p50_ms": _median([r.p50_ms for r in rounds]),
            "p99_ms": _median([r.p99_ms for r in rounds]),
            "errors": sum(r.errors for r in rounds),
            "cpu_us": _median_or_none([r.cpu_us_per_request for r in rounds]),
            "rounds": [r.to_json() for r in rounds],
        }
        for conc, rounds in sorted(m.load.items())
    }
    stream = None
    if m.streams:
        stream = {
            "ttft_p50_ms": _median([s.ttft_p50_ms for s in m.streams]),
            "ttft_p99_ms": _median([s.ttft_p99_ms for s in m.streams]),
            "total_p50_ms": _median([s.total_p50_ms for s in m.streams]),
            "errors": sum(s.errors for s in m.streams),
            "rounds": [s.to_json() for s in m.streams],
        }
    return {
        "name": t.name,
        "kind": t.kind,
        "description": t.description,
        "baseline": t.baseline,
        "tolerance": t.tolerance,
        "load": load,
        "stream": stream,
        "rss_idle_mb": t.rss_idle_mb,
        "rss_after_c64_mb": m.rss_after_mb,
        "startup_s": t.startup_s,
    }


def _get(target: dict[str, Any] | None, *path: str) -> float | None:
    node: Any = target
    for part in path:
        if not isinstance(node, dict) or node.get(part) is None:
            return None
        node = node[part]
    return float(node)


def _derive(targets: list[dict[str, Any]]) -> dict[str, dict[str, float | None]]:
    by_name = {t["name"]: t for t in targets}
    direct, floor = by_name.get("direct"), by_name.get("floor")
    out: dict[str, dict[str, float | None]] = {}
    for t in targets:
        if t["name"] == "direct":
            continue
        p50, p50_direct = _get(t, "load", "1", "p50_ms"), _get(direct, "load", "1", "p50_ms")
        rps, rps_floor = _get(t, "load", str(TOP), "rps"), _get(floor, "load", str(TOP), "rps")
        ttft, ttft_direct = _get(t, "stream", "ttft_p50_ms"), _get(direct, "stream", "ttft_p50_ms")
        base = by_name.get(t["baseline"]) if t["baseline"] else None
        rps_base = _get(base, "load", str(TOP), "rps")
        cpu, cpu_base = _get(t, "load", str(TOP), "cpu_us"), _get(base, "load", str(TOP), "cpu_us")
        cpu_floor = _get(floor, "load", str(TOP), "cpu_us")
        out[t["name"]] = {
            "added_p50_c1_ms": p50 - p50_direct if p50 is not None and p50_direct is not None else None,
            "c64_vs_floor": rps / rps_floor if rps is not None and rps_floor else None,
            "ttft_added_ms": ttft - ttft_direct if ttft is not None and ttft_direct is not None else None,
            "c64_vs_baseline": rps / rps_base if rps is not None and rps_base else None,
            "cpu_us_c64": cpu,
            "cpu_capacity_vs_floor": cpu_floor / cpu if cpu and cpu_floor is not None else None,
            # Capacity against the baseline from CPU per request (1/CPU is the throughput of a saturated core).
            "cpu_capacity_vs_baseline": cpu_base / cpu if cpu and cpu_base is not None else None,
        }
    return out


def _check(target: str, what: str, value: float | None, goal: str, ok: bool | None, fmt: str) -> dict[str, Any]:
    return {
        "target": target,
        "check": what,
        "measured": None if value is None else format(value, fmt),
        "goal": goal,
        "pass": None if value is None else ok,
    }


def _checks(targets: list[dict[str, Any]], derived: dict[str, dict[str, float | None]]) -> list[dict[str, Any]]:
    checks = []
    for t in targets:
        if t["kind"] != "sluice":
            continue
        name, d = t["name"], derived[t["name"]]
        added, ratio, ttft = d["added_p50_c1_ms"], d["c64_vs_floor"], d["ttft_added_ms"]
        rss, startup, vs_base = t["rss_idle_mb"], t["startup_s"], d["c64_vs_baseline"]
        checks += [
            _check(
                name, "added p50 at c=1 (ms)", added, f"< {ADDED_P50_MAX_MS:g}", _lt(added, ADDED_P50_MAX_MS), ".3f"
            ),
            _check(
                name,
                f"c={TOP} throughput / floor",
                ratio,
                f">= {FLOOR_RATIO_ISSUE:.0%} (issue)",
                _ge(ratio, FLOOR_RATIO_ISSUE),
                ".2f",
            ),
            _check(
                name,
                f"c={TOP} throughput / floor",
                ratio,
                f">= {FLOOR_RATIO_PRODUCT:.0%} (PRODUCT)",
                _ge(ratio, FLOOR_RATIO_PRODUCT),
                ".2f",
            ),
            _check(
                name,
                "stream first chunk added (ms)",
                ttft,
                f"< {TTFT_ADDED_MAX_MS:g}",
                _lt(ttft, TTFT_ADDED_MAX_MS),
                ".3f",
            ),
            _check(
                name,
                f"c={TOP} capacity (CPU per request) / floor",
                d["cpu_capacity_vs_floor"],
                f">= {FLOOR_RATIO_ISSUE:.0%} (issue)",
                _ge(d["cpu_capacity_vs_floor"], FLOOR_RATIO_ISSUE),
                ".2f",
            ),
            _check(name, "idle RSS (MB)", rss, f"< {IDLE_RSS_MAX_MB:g}", _lt(rss, IDLE_RSS_MAX_MB), ".0f"),
            _check(
                name,
                "start-up to first answer (s)",
                startup,
                f"< {STARTUP_MAX_S:g}",
                _lt(startup, STARTUP_MAX_S),
                ".2f",
            ),
        ]
        if t["baseline"]:
            capacity = d["cpu_capacity_vs_baseline"]
            least = 1 - t.get("tolerance", BASELINE_TOLERANCE)  # results saved before tolerances were per target
            checks += [
                _check(
                    name,
                    f"c={TOP} throughput / {t['baseline']}",
                    vs_base,
                    f">= {least:.2f}",
                    _ge(vs_base, least),
                    ".2f",
                ),
                _check(
                    name,
                    f"c={TOP} capacity (CPU per request) / {t['baseline']}",
                    capacity,
                    f">= {least:.2f}",
                    _ge(capacity, least),
                    ".2f",
                ),
            ]
    return checks


def _lt(value: float | None, limit: float) -> bool | None:
    return None if value is None else value < limit


def _ge(value: float | None, limit: float) -> bool | None:
    return None if value is None else value >= limit


def document(result: RunResult, options: Options, machine: dict[str, Any]) -> dict[str, Any]:
    targets = [_target_json(m) for m in result.measured]
    derived = _derive(targets)
    return {
        "date": datetime.fromtimestamp(result.started, UTC).isoformat(timespec="seconds"),
        "wall_s": round(result.finished - result.started, 1),
        "machine": machine,
        "pinning": result.pinning.describe(),
        "upstream": result.upstream_server,
        "sluice_source": result.sluice_source,
        "loadavg_before": result.loadavg_before,
        "loadavg_after": result.loadavg_after,
        "options": {
            "duration_s": options.duration,
            "warmup_s": options.warmup,
            "stream_requests": options.stream_requests,
            "repeat": options.repeat,
            "scenarios": list(options.scenarios),
            "frame_gap_ms": options.frame_gap_ms,
        },
        "targets": targets,
        "derived": derived,
        "checks": _checks(targets, derived),
    }

"""The saved JSON document rendered as Markdown tables, ready to paste into docs/benchmarks.md."""

from __future__ import annotations

from typing import Any

NONE = "n/a"


def _num(value: Any, fmt: str) -> str:
    return NONE if value is None else format(value, fmt)


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _load_rows(doc: dict[str, Any], levels: list[str]) -> list[list[str]]:
    rows = []
    for t in doc["targets"]:
        row = [f"**{t['name']}**"]
        for level in levels:
            point = t["load"].get(level)
            if point is None:
                row += [NONE, NONE]
                continue
            errors = f" ({point['errors']} err)" if point["errors"] else ""
            row += [f"{point['rps']:,.0f}{errors}", f"{point['p50_ms']:.3f} / {point['p99_ms']:.3f}"]
        rows.append(row)
    return rows


def _process_rows(doc: dict[str, Any]) -> list[list[str]]:
    rows = []
    for t in doc["targets"]:
        s = t["stream"] or {}
        rows.append(
            [
                f"**{t['name']}**",
                _num(s.get("ttft_p50_ms"), ".3f"),
                _num(s.get("ttft_p99_ms"), ".3f"),
                _num(s.get("total_p50_ms"), ".2f"),
                _num(t["rss_idle_mb"], ".0f"),
                _num(t["rss_after_c64_mb"], ".0f"),
                _num(t["startup_s"], ".2f"),
            ]
        )
    return rows


def _ratio_rows(doc: dict[str, Any], top: str) -> list[list[str]]:
    rows = []
    by_name = {t["name"]: t for t in doc["targets"]}
    for name, d in doc["derived"].items():
        t = by_name[name]
        base = f"{_num(d['c64_vs_baseline'], '.2f')} of {t['baseline']}" if t["baseline"] else NONE
        capacity = f"{_num(d.get('cpu_capacity_vs_baseline'), '.2f')} of {t['baseline']}" if t["baseline"] else NONE
        rows.append(
            [
                f"**{name}**",
                _num(d["added_p50_c1_ms"], "+.3f"),
                _num(d["c64_vs_floor"], ".2f"),
                _num(d["ttft_added_ms"], "+.3f"),
                _num(t["rss_idle_mb"], ".0f"),
                _num(t["startup_s"], ".2f"),
                _num(d.get("cpu_us_c64"), ".0f"),
                base,
                capacity,
            ]
        )
    return rows


def _verdict(ok: bool | None) -> str:
    return "not measured" if ok is None else ("**pass**" if ok else "**FAIL**")


def markdown(doc: dict[str, Any]) -> str:
    levels = sorted(doc["targets"][0]["load"], key=int) if doc["targets"] else []
    top = levels[-1] if levels else "64"
    m = doc["machine"]
    opts = doc["options"]
    source = doc.get("sluice_source", "working tree")
    if source == "working tree":
        code = f"working tree at {m['commit']}{' with uncommitted changes' if m['worktree_dirty'] else ''}"
    else:
        code = f"commit {source}"
    out = [
        f"- Run: {doc['date']}, {doc['wall_s']:g} s; Sluice code: {code}.",
        f"- Machine: {m['cpu']}, {m['cpus_usable']} CPUs, {m['ram_gib']} GiB; Python {m['python']}; {m['wrk']};"
        f" load average before/after {doc['loadavg_before'].split(' ')[0]} / {doc['loadavg_after'].split(' ')[0]}.",
        f"- Pinning: {doc['pinning']}. Non-stream upstream: {doc['upstream']}; stream upstream: Python mock.",
        f"- {opts['duration_s']:g} s per load point after {opts['warmup_s']:g} s of warm-up;"
        f" {opts['stream_requests']} streams per target; {opts['repeat']} round(s), medians over rounds.",
        "",
        "Non-stream chat completions (wrk, closed loop): requests/s and latency p50 / p99 in ms.",
        "",
    ]
    head = ["target"]
    for level in levels:
        head += [f"c={level} req/s", f"c={level} p50 / p99 ms"]
    out += _table(head, _load_rows(doc, levels))
    out += [
        "",
        "Streams (sequential, c=1): time to the first SSE event and to the end of the stream; process figures.",
        "",
    ]
    head = [
        "target",
        "first event p50 ms",
        "first event p99 ms",
        "whole stream p50 ms",
        "idle RSS MB",
        f"RSS after last c={top} MB",
        "start-up s",
    ]
    out += _table(head, _process_rows(doc))
    out += ["", "Derived (against direct and floor from this same run):", ""]
    head = [
        "target",
        "added p50 at c=1 ms",
        f"c={top} req/s ÷ floor",
        "first event added ms",
        "idle RSS MB",
        "start-up s",
        f"CPU µs/request at c={top}",
        f"c={top} req/s vs baseline",
        "capacity (CPU) vs baseline",
    ]
    out += _table(head, _ratio_rows(doc, top))
    if doc["checks"]:
        out += ["", "Targets:", ""]
        rows = [[c["target"], c["check"], c["measured"] or NONE, c["goal"], _verdict(c["pass"])] for c in doc["checks"]]
        out += _table(["target", "figure", "measured", "goal", "verdict"], rows)
    return "\n".join(out) + "\n"

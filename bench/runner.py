"""One benchmark run: start everything, measure every target point by point, stop everything.

Targets are measured interleaved (every target at c=1, then every target at c=16, ...), and with ``--repeat``
in alternating order, so that drift on a shared machine falls on all targets alike rather than on whichever
happened to run last.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench import payloads
from bench.procs import Pinning, Processes
from bench.source import SluiceSource, extract, working_tree
from bench.stream_client import StreamResult, measure_ttft
from bench.targets import Target, UpstreamPorts, direct, floor, start_sluice, start_upstreams
from bench.variants import Variant
from bench.wrk import LoadResult, run_wrk, write_script

LOAD_SCENARIOS = {"c1": 1, "c16": 16, "c64": 64}
STREAM_SCENARIO = "stream"
ALL_SCENARIOS = [*LOAD_SCENARIOS, STREAM_SCENARIO]


@dataclass(frozen=True)
class Options:
    duration: float = 10.0  # seconds per measured load point
    warmup: float = 2.0  # seconds of load before each measured point (fills connection pools and caches)
    stream_requests: int = 200
    repeat: int = 1
    scenarios: tuple[str, ...] = tuple(ALL_SCENARIOS)
    references: tuple[str, ...] = ("direct", "floor")
    variants: tuple[Variant, ...] = ()
    pin: bool = True
    use_nginx: bool = True
    frame_gap_ms: float = 1.0
    threads: int = 0  # wrk threads; 0 = one per load-generator CPU
    ref: str | None = None  # measure Sluice at this git revision instead of the working tree


@dataclass
class Measured:
    target: Target
    load: dict[int, list[LoadResult]] = field(default_factory=dict)
    streams: list[StreamResult] = field(default_factory=list)
    rss_after_mb: float | None = None


@dataclass
class RunResult:
    started: float
    finished: float
    pinning: Pinning
    upstream_server: str
    measured: list[Measured]
    loadavg_before: str
    loadavg_after: str
    sluice_source: str


Log = Callable[[str], None]


def run(options: Options, log: Log) -> RunResult:
    pins = Pinning.plan(options.pin)
    if pins.enabled:
        # This process runs the stream client and wrk's parent: keep it off the proxy's CPU.
        os.sched_setaffinity(0, pins.load)
    log(f"pinning: {pins.describe()}")
    started = time.time()
    loadavg_before = _loadavg()
    with tempfile.TemporaryDirectory(prefix="sluice-bench-") as tmp:
        procs = Processes(Path(tmp))
        try:
            source = extract(options.ref, Path(tmp) / "source") if options.ref else working_tree()
            log(f"Sluice code: {source.label}")
            up = start_upstreams(procs, pins, options.use_nginx, options.frame_gap_ms)
            log(f"upstreams: {up.chat_server} on :{up.chat} (non-stream), Python mock on :{up.stream} (stream)")
            targets = _start_targets(procs, pins, up, source, options, log)
            measured = [Measured(t) for t in targets]
            _measure(measured, options, pins, Path(tmp), log)
        finally:
            procs.stop_all()
    return RunResult(started, time.time(), pins, up.chat_server, measured, loadavg_before, _loadavg(), source.label)


def _start_targets(
    procs: Processes, pins: Pinning, up: UpstreamPorts, source: SluiceSource, options: Options, log: Log
) -> list[Target]:
    targets: list[Target] = []
    if "direct" in options.references:
        targets.append(direct(up))
    if "floor" in options.references:
        targets.append(floor(procs, pins, up))
    for variant in options.variants:
        target = start_sluice(procs, pins, up, variant, source)
        log(f"{variant.name}: first answer {target.startup_s:.2f} s after spawn, idle RSS {target.rss_idle_mb:.0f} MB")
        targets.append(target)
    return targets


def _measure(measured: list[Measured], options: Options, pins: Pinning, tmp: Path, log: Log) -> None:
    scripts: dict[str | None, Path] = {}
    for round_no in range(options.repeat):
        order = measured if round_no % 2 == 0 else list(reversed(measured))
        for scenario in options.scenarios:
            for m in order:
                if scenario == STREAM_SCENARIO:
                    _quiesce(measured, log)
                    stream = measure_ttft(m.target.stream_port, m.target.key, options.stream_requests)
                    m.streams.append(stream)
                    log(f"[{round_no + 1}] {m.target.name:<14} stream: first event p50 {stream.ttft_p50_ms:.3f} ms")
                    continue
                key = m.target.key
                if key not in scripts:
                    scripts[key] = write_script(tmp / f"load-{len(scripts)}.lua", payloads.chat_request(), key)
                _quiesce(measured, log)
                _load_point(m, LOAD_SCENARIOS[scenario], scripts[key], options, pins, f"[{round_no + 1}]", log)


# Every proxy under test shares one pinned CPU, and Sluice keeps working after a load point ends (its usage
# shipper moves the spooled records to the database). A point measured while another target still works would
# be charged for that target's work, so each point starts once all of them are idle (or after a bounded wait).
QUIET_WINDOW = 0.5  # seconds over which idleness is judged (CPU time is counted in 10 ms ticks)
QUIET_SHARE = 0.15  # of one CPU, summed over every proxy process (an idle Sluice uses about 0.005)
QUIET_TIMEOUT = 30.0


def _quiesce(measured: list[Measured], log: Log) -> None:
    children = [m.target.process for m in measured if m.target.process is not None]
    deadline = time.monotonic() + QUIET_TIMEOUT
    while time.monotonic() < deadline:
        before = sum(c.cpu_seconds() for c in children)
        time.sleep(QUIET_WINDOW)
        if sum(c.cpu_seconds() for c in children) - before <= QUIET_SHARE * QUIET_WINDOW:
            return
    log(f"the proxies were still busy {QUIET_TIMEOUT:g} s after the last point; measuring anyway")


def _load_point(m: Measured, conc: int, script: Path, options: Options, pins: Pinning, tag: str, log: Log) -> None:
    threads = options.threads or max(1, len(pins.load))
    if options.warmup > 0:
        run_wrk(m.target.port, script, conc, options.warmup, threads, pins.load)
    process = m.target.process
    cpu_before = process.cpu_seconds() if process is not None else 0.0
    result = run_wrk(m.target.port, script, conc, options.duration, threads, pins.load)
    if process is not None and result.requests:
        result.cpu_us_per_request = (process.cpu_seconds() - cpu_before) * 1e6 / result.requests
    m.load.setdefault(conc, []).append(result)
    rss = ""
    if m.target.process is not None:
        result.rss_after_mb = m.target.process.rss_mb()
        rss = f"  RSS {result.rss_after_mb:.0f} MB"
        if conc == max(LOAD_SCENARIOS.values()):
            m.rss_after_mb = result.rss_after_mb
    log(
        f"{tag} {m.target.name:<14} c={conc:<3} {result.rps:9.0f} req/s  "
        f"p50 {result.p50_ms:.3f} ms  p99 {result.p99_ms:.3f} ms  errors {result.errors}{rss}"
    )


def _loadavg() -> str:
    try:
        return Path("/proc/loadavg").read_text(encoding="ascii").strip()
    except OSError:
        return "unknown"

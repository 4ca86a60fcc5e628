"""Command line of ``python -m bench``: parse options, run, save the JSON, print the Markdown tables."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path

from bench import machine
from bench.markdown import markdown
from bench.procs import REPO_ROOT, BenchError
from bench.report import document
from bench.runner import ALL_SCENARIOS, Options, run
from bench.variants import VARIANTS, find
from bench.wrk import wrk_binary

REFERENCES = ("direct", "floor")
RESULTS = REPO_ROOT / "bench" / "results"


def _parser() -> argparse.ArgumentParser:
    names = [*REFERENCES, *(v.name for v in VARIANTS)]
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description="Measure direct, a minimal pass-through floor and Sluice variants side by side in one run.",
    )
    p.add_argument("--quick", action="store_true", help="short points for development (3 s, 1 s warm-up, 50 streams)")
    p.add_argument("--duration", type=float, help="seconds per measured load point (default 10)")
    p.add_argument("--warmup", type=float, help="seconds of load before each point (default 2)")
    p.add_argument("--stream-requests", type=int, help="sequential streams per target (default 200)")
    p.add_argument("--repeat", type=int, default=1, help="rounds, alternating target order; medians reported")
    p.add_argument("--scenarios", default=",".join(ALL_SCENARIOS), help=f"any of {','.join(ALL_SCENARIOS)}")
    p.add_argument("--targets", default=",".join(names), help=f"any of {','.join(names)}")
    p.add_argument("--json", type=Path, help="where to save results (default bench/results/<timestamp>.json)")
    p.add_argument("--no-pin", action="store_true", help="do not pin processes to CPUs")
    p.add_argument("--python-upstream", action="store_true", help="use the Python mock for non-stream answers too")
    p.add_argument("--frame-gap-ms", type=float, default=1.0, help="upstream delay between stream frames")
    p.add_argument("--ref", metavar="REV", help="measure Sluice at this git revision (default: the working tree)")
    p.add_argument("--render", type=Path, metavar="JSON", help="print the Markdown for a saved result and exit")
    p.add_argument("--list", action="store_true", help="list the Sluice variants and exit")
    return p


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _options(args: argparse.Namespace) -> Options:
    scenarios = _split(args.scenarios)
    unknown = [s for s in scenarios if s not in ALL_SCENARIOS]
    if unknown:
        raise BenchError(f"unknown scenario(s): {', '.join(unknown)} (known: {', '.join(ALL_SCENARIOS)})")
    targets = _split(args.targets)
    try:
        variants = find([t for t in targets if t not in REFERENCES])
    except KeyError as exc:
        raise BenchError(str(exc.args[0])) from None
    quick = args.quick
    return Options(
        duration=args.duration if args.duration is not None else (3.0 if quick else 10.0),
        warmup=args.warmup if args.warmup is not None else (1.0 if quick else 2.0),
        stream_requests=args.stream_requests or (50 if quick else 200),
        repeat=max(1, args.repeat),
        scenarios=tuple(scenarios),
        references=tuple(t for t in REFERENCES if t in targets),
        variants=tuple(variants),
        pin=not args.no_pin,
        use_nginx=not args.python_upstream,
        frame_gap_ms=args.frame_gap_ms,
        ref=args.ref,
    )


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _stop_on_signal(signum: int, _frame: object) -> None:
    # Turn SIGTERM/SIGHUP into an exception so the runner's `finally` stops every child it started.
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _stop_on_signal)
    if args.list:
        for variant in VARIANTS:
            print(f"{variant.name:<16} key={variant.key:<8} {variant.description}")
        return 0
    if args.render:
        print(markdown(json.loads(args.render.read_text(encoding="utf-8"))), end="")
        return 0
    try:
        options = _options(args)
        wrk_binary()
        host = machine.describe()  # before the run pins this process to the load generator's CPUs
        result = run(options, _log)
    except BenchError as exc:
        _log(f"benchmark failed: {exc}")
        return 1
    doc = document(result, options, host)
    path = args.json or RESULTS / time.strftime("%Y%m%d-%H%M%S.json", time.gmtime(result.started))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    _log(f"results saved to {path}")
    print(markdown(doc), end="")
    return 0

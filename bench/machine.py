"""What the figures were measured on: CPU, cores, memory, software versions and the gateway's commit."""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from bench.procs import REPO_ROOT


def _first(path: str, pattern: str) -> str | None:
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    match = re.search(pattern, text, re.MULTILINE)
    return match.group(1).strip() if match else None


def _output(argv: list[str]) -> str | None:
    if shutil.which(argv[0]) is None:
        return None
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False, cwd=REPO_ROOT)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = (done.stdout or done.stderr).strip()
    return text.splitlines()[0] if text else None


def describe() -> dict[str, Any]:
    mem_kb = _first("/proc/meminfo", r"^MemTotal:\s+(\d+)")
    dirty = _output(["git", "status", "--porcelain", "--untracked-files=no"])
    return {
        "cpu": _first("/proc/cpuinfo", r"^model name\s*:\s*(.+)$") or platform.processor() or "unknown",
        "cpus": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "ram_gib": round(int(mem_kb) / 1024 / 1024, 1) if mem_kb else None,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "wrk": " ".join((_output(["wrk", "--version"]) or "wrk unknown").split()[:2]),
        "nginx": _output(["nginx", "-v"]),
        "commit": _output(["git", "rev-parse", "--short", "HEAD"]),
        "worktree_dirty": bool(dirty),
    }

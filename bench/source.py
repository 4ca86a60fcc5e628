"""Which Sluice code is measured: the working tree (default), or a git revision extracted for the run.

The virtualenv installs Sluice in editable mode, so by default the benchmark measures the working tree as it
is, uncommitted edits included. ``--ref REV`` extracts ``src/sluice`` at that revision into the run's temporary
directory (``git archive``; the repository is only read) and puts it first on ``PYTHONPATH`` for every Sluice
process, so the figures belong to one commit.
"""

from __future__ import annotations

import io
import subprocess
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

from bench.procs import REPO_ROOT, BenchError


@dataclass(frozen=True)
class SluiceSource:
    label: str  # "working tree" or the revision's short hash
    env: dict[str, str] = field(default_factory=dict)


def _git(*args: str) -> bytes:
    done = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, timeout=60, check=False)
    if done.returncode != 0:
        raise BenchError(f"git {' '.join(args)} failed: {done.stderr.decode(errors='replace').strip()}")
    return done.stdout


def working_tree() -> SluiceSource:
    return SluiceSource("working tree")


def extract(ref: str, dest: Path) -> SluiceSource:
    commit = _git("rev-parse", "--short", f"{ref}^{{commit}}").decode().strip()
    archive = _git("archive", "--format=tar", commit, "src/sluice")
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(dest, filter="data")
    return SluiceSource(commit, {"PYTHONPATH": str(dest / "src")})

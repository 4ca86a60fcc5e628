"""Child processes of a benchmark run: free ports, CPU pinning, bounded waits, and certain clean-up.

Every child starts in its own session (so its whole process group can be signalled), writes its output to a
log file in the run's directory (a full pipe would stall it), and is stopped by :meth:`Processes.stop_all`,
which the runner calls from a ``finally``: SIGTERM to the group, then SIGKILL after a grace period.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


class BenchError(RuntimeError):
    """A step of the benchmark failed; the message says which and why."""


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Pinning:
    """Which CPUs the proxy under test, the upstream and the load generator run on (empty: not pinned)."""

    proxy: frozenset[int] = frozenset()
    upstream: frozenset[int] = frozenset()
    load: frozenset[int] = frozenset()

    @classmethod
    def plan(cls, enabled: bool = True) -> Pinning:
        """The proxy alone on the first CPU; the upstream and load on the others (shared when only two)."""
        cpus = sorted(os.sched_getaffinity(0))
        if not enabled or len(cpus) < 2 or shutil.which("taskset") is None:
            return cls()
        if len(cpus) == 2:
            return cls(frozenset(cpus[:1]), frozenset(cpus[1:]), frozenset(cpus[1:]))
        return cls(frozenset(cpus[:1]), frozenset(cpus[1:2]), frozenset(cpus[2:]))

    @property
    def enabled(self) -> bool:
        return bool(self.proxy)

    def describe(self) -> str:
        if not self.enabled:
            return "not pinned"
        return f"proxy on CPU {_cpus(self.proxy)}; upstream on {_cpus(self.upstream)}; load on {_cpus(self.load)}"


def _cpus(cpus: frozenset[int]) -> str:
    return ",".join(str(c) for c in sorted(cpus))


def pinned(argv: Sequence[str], cpus: frozenset[int]) -> list[str]:
    """``argv`` run under ``taskset`` (which execs it, so the pid is the program's own)."""
    return ["taskset", "-c", _cpus(cpus), *argv] if cpus else list(argv)


@dataclass
class Child:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, lines: int = 20) -> str:
        try:
            text = self.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def cpu_seconds(self) -> float:
        """User + system CPU time of the process (all its threads) so far, from /proc/<pid>/stat."""
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text(encoding="ascii").rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_mb(self) -> float:
        """Resident memory from /proc/<pid>/status (VmRSS), in MiB."""
        try:
            status = Path(f"/proc/{self.pid}/status").read_text(encoding="ascii")
        except OSError as exc:
            raise BenchError(f"{self.name}: cannot read its memory ({exc})") from exc
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise BenchError(f"{self.name}: /proc/{self.pid}/status has no VmRSS line")


@dataclass
class Processes:
    """Every process this run started, so that all of them are stopped whatever happens."""

    workdir: Path
    children: list[Child] = field(default_factory=list)

    def start(self, name: str, argv: Sequence[str], env: Mapping[str, str] | None = None) -> Child:
        log = self.workdir / f"{name}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=REPO_ROOT,
                env={**os.environ, **(env or {})},
                start_new_session=True,
            )
        child = Child(name, popen, log)
        self.children.append(child)
        return child

    def stop(self, child: Child, grace: float = 5.0) -> None:
        if child.alive():
            _signal_group(child, signal.SIGTERM)
            try:
                child.popen.wait(grace)
            except subprocess.TimeoutExpired:
                _signal_group(child, signal.SIGKILL)
                child.popen.wait(grace)
        # Anything the child left in its group (it should have none) goes too.
        _signal_group(child, signal.SIGKILL)
        if child in self.children:
            self.children.remove(child)

    def stop_all(self) -> None:
        for child in reversed(list(self.children)):
            self.stop(child)


def _signal_group(child: Child, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.pid, sig)


def wait_until(what: str, ready: Callable[[], bool], timeout: float, child: Child | None = None) -> float:
    """Poll ``ready`` until it holds; return the seconds it took, or fail naming ``what`` and the child's log."""
    started = time.perf_counter()
    deadline = started + timeout
    while True:
        if child is not None and not child.alive():
            raise BenchError(f"{what}: the process exited with code {child.popen.returncode}\n{child.tail()}")
        if ready():
            return time.perf_counter() - started
        if time.perf_counter() > deadline:
            extra = f"\n{child.tail()}" if child is not None else ""
            raise BenchError(f"{what} within {timeout:g} s{extra}")
        time.sleep(0.005)


def port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0

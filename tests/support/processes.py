"""Real `sluice serve` processes, and private Redis / PostgreSQL instances for tests that take a service down.

Outage tests never stop the shared services: they start their own instance on a free port in a temporary
directory (``redis-server --port N``; ``initdb`` + ``pg_ctl``) and stop it themselves.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.support.server import JWT_SECRET, MASTER_KEY, free_port

START_TIMEOUT = 90.0  # a deadline, not a wait: a loaded machine, measured by coverage, starts slowly
STOP_TIMEOUT = 45.0


def clean_env(**extra: str) -> dict[str, str]:
    prefixes = ("SLUICE_", "OPENAI_", "ANTHROPIC_", "OLLAMA_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    env.update(extra)
    return env


class SluiceProcess:
    """`python -m sluice serve` with a YAML config, on a free port, in its own process group."""

    def __init__(
        self,
        directory: Path,
        config: dict[str, Any],
        name: str = "sluice",
        args: tuple[str, ...] = (),
        start_timeout: float = START_TIMEOUT,
        env: dict[str, str] | None = None,
    ) -> None:
        self.args = args
        self.start_timeout = start_timeout  # several workers import everything each, at once
        self.env = env or {}  # SLUICE_* variables for the process (the test's own never leak in)
        self.directory = directory
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config_path = directory / f"{name}.yaml"
        self.log_path = directory / f"{name}.log"
        tree = {"master_key": MASTER_KEY, "logging": {"level": "warning", "access_log": False}, **config}
        # Sign-ups per address are bounded (auth.signup_attempts); tests sign many users up from one loopback address.
        tree["auth"] = {"jwt_secret": JWT_SECRET, "signup_attempts": 10_000, **tree.get("auth", {})}
        tree.setdefault("ui", False)
        directory.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(yaml.safe_dump(tree), encoding="utf-8")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> SluiceProcess:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sluice",
                "serve",
                "--config",
                str(self.config_path),
                "--port",
                str(self.port),
                *self.args,
            ],
            cwd=self.directory,
            env=clean_env(**self.env),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sluice exited during start-up:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/health/live", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        self.kill()
        raise TimeoutError(f"sluice did not start within {self.start_timeout} s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            try:
                # Longer than uvicorn's own graceful shutdown (30 s) plus the lifespan's: a SIGTERM that does not
                # end the process in that time is a hang worth reporting, not a slow machine.
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)  # never leave a process behind for the next test
                raise TimeoutError(f"sluice did not exit {STOP_TIMEOUT} s after signal {sig}:\n{self.log()}") from None

    def stop(self) -> None:
        self.kill(signal.SIGTERM)


def _postgres_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        pytest.skip(f"PostgreSQL's {name} is not installed")
    return found[-1]


class PrivatePostgres:
    """A throw-away PostgreSQL cluster (initdb) that a test may stop and start at will.

    It lives in its own temporary directory (not the test's tmp_path, whose parents the postgres user cannot
    enter when tests run as root) and is removed by :meth:`destroy`.
    """

    def __init__(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="sluice-pg-"))
        self.data = self.directory / "pgdata"
        self.port = free_port()
        self.url = f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"
        self._run_as: list[str] = []
        if os.geteuid() == 0:
            # PostgreSQL refuses to run as root; run it as the postgres system user.
            if shutil.which("runuser") is None:
                pytest.skip("running PostgreSQL as root needs runuser")
            self._run_as = ["runuser", "-u", "postgres", "--"]

    def _run(self, *args: str) -> None:
        subprocess.run([*self._run_as, *args], check=True, capture_output=True, timeout=120)

    def init(self) -> PrivatePostgres:
        if self._run_as:
            shutil.chown(self.directory, "postgres", "postgres")
        self._run(_postgres_bin("initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        return self.start()

    def start(self) -> PrivatePostgres:
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off"
        # -l: the server's output goes to a file, not to our pipes (which would never close while it runs).
        log = str(self.directory / "postgres.log")
        self._run(_postgres_bin("pg_ctl"), "-D", str(self.data), "-o", options, "-l", log, "-w", "-t", "60", "start")
        return self

    def stop(self) -> None:
        self._run(_postgres_bin("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def pause(self) -> None:
        """Hang the whole server (SIGSTOP to the postmaster and every backend): sockets accept, nothing answers."""
        for pid in self._pids():
            os.kill(pid, signal.SIGSTOP)

    def resume(self) -> None:
        for pid in self._pids():
            os.kill(pid, signal.SIGCONT)

    def _pids(self) -> list[int]:
        postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        return [postmaster, *_children(postmaster)]

    def destroy(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.resume()  # a test that failed while the server was paused must not leave it stopped
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


def _children(parent: int) -> list[int]:
    """Direct children of ``parent`` (from /proc; PostgreSQL's backends are the postmaster's children)."""
    found = []
    for stat in glob.glob("/proc/[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = Path(stat).read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == parent:
                found.append(int(stat.split("/")[2]))
    return found


class PrivateRedis:
    """A throw-away redis-server on a free port.

    ``persistent``: it saves its data when stopped and loads it when started again (a restart that keeps the
    counters); otherwise every start begins empty (a restart that loses them).
    """

    def __init__(self, directory: Path, persistent: bool = False) -> None:
        if shutil.which("redis-server") is None:
            pytest.skip("redis-server is not installed")
        self.directory = directory
        self.persistent = persistent
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> PrivateRedis:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "3600 1" if self.persistent else "",  # with a save point, a SIGTERM shutdown saves the data
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        raise TimeoutError("private redis-server did not start")

    def pause(self) -> None:
        """Hang the server (SIGSTOP): connections open, commands never answer."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)  # a paused server cannot act on SIGTERM
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.proc = None

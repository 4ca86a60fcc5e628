"""A real Sluice on loopback, in a background thread, for end-to-end tests through the HTTP surface."""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import uvicorn
import yaml

from sluice.app import SluiceApp, create_app
from sluice.config import Settings
from sluice.config_loading import load_settings
from sluice.server.serving import uvicorn_options
from tests.support.loops import close_loop

MASTER_KEY = "sk-sl-test-master-key-0123456789abcdef"
JWT_SECRET = "sluice-test-jwt-secret-0123456789abcdef0123456789"  # real deployments outside dev mode need one
START_TIMEOUT = 60.0  # a deadline, not a wait (a loaded machine, measured by coverage)
STOP_TIMEOUT = 30.0
_RUN = secrets.token_hex(3)


def worker_prefix() -> str:
    """A name part unique to this pytest process (xdist worker) and run, for Redis keys and RabbitMQ queues.

    Servers a test starts without naming their own prefixes get this one, so tests in other workers (or other
    runs on the same services) never share their limit counters, cache entries or queues.
    """
    return f"sluice-t-{os.environ.get('PYTEST_XDIST_WORKER', 'main')}-{_RUN}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_settings(data_dir: Path, config: dict[str, Any] | None = None, **overrides: Any) -> Settings:
    """Settings as a YAML file would give them, without environment influence."""
    tree: dict[str, Any] = {
        "data_dir": str(data_dir),
        "master_key": MASTER_KEY,
        "logging": {"level": "warning", "access_log": False},
        **(config or {}),
    }
    # Sign-ups per address are bounded (auth.signup_attempts); tests sign many users up from one loopback address.
    tree["auth"] = {"jwt_secret": JWT_SECRET, "signup_attempts": 10_000, **tree.get("auth", {})}
    for section, field in (("limits", "redis_prefix"), ("cache", "redis_prefix"), ("scheduling", "prefix")):
        tree[section] = {field: f"{worker_prefix()}.{section}", **tree.get(section, {})}
    tree.setdefault("ui", False)  # NiceGUI is one per process: UI tests run their own `sluice serve`
    path = data_dir / "sluice.yaml"
    data_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(tree), encoding="utf-8")
    return load_settings(path, env={}, overrides=overrides)


class SluiceServer:
    """Start with ``with SluiceServer(settings) as server:``; ``server.url`` is the base URL."""

    def __init__(self, settings: Settings) -> None:
        self.port = free_port()
        self.settings = settings.model_copy(update={"server": settings.server.model_copy(update={"port": self.port})})
        self.app: SluiceApp = create_app(self.settings)
        self.url = f"http://127.0.0.1:{self.port}"
        self.master_key = MASTER_KEY
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.loop: asyncio.AbstractEventLoop | None = None

    @property
    def services(self) -> Any:
        return self.app.services

    def start(self) -> SluiceServer:
        # The options `sluice serve` uses (the guarded connection protocol included), on the test's loop.
        options = {
            **uvicorn_options(self.settings),
            "host": "127.0.0.1",
            "port": self.port,
            "loop": "asyncio",
            "log_level": "warning",
            "timeout_graceful_shutdown": 10,  # inside stop()'s STOP_TIMEOUT
        }
        config = uvicorn.Config(self.app, **options)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, name=f"sluice-{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError("Sluice failed to start (see the log output above)")
            if time.monotonic() > deadline:
                raise TimeoutError(f"Sluice did not start within {START_TIMEOUT} s")
            time.sleep(0.01)
        return self

    def _run(self) -> None:
        assert self._server is not None
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._server.serve())
        finally:
            close_loop(self.loop)

    def call(self, coro: Any, timeout: float = 10.0) -> Any:
        """Run a coroutine on the server's own event loop (to inspect or change its services)."""
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=STOP_TIMEOUT)
            if self._thread.is_alive():
                raise RuntimeError(f"Sluice did not stop within {STOP_TIMEOUT} s")
        self._server = None
        self._thread = None

    def __enter__(self) -> SluiceServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def client(self, key: str | None = None, **kwargs: Any) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key or self.master_key}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=10.0, **kwargs)

"""One real `sluice serve` per browser-test module, with the UI on, mock models and a fake OpenAI upstream that
records when a client leaves (to prove Stop reaches the upstream)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes import FakeOpenAI
from tests.support.processes import SluiceProcess

ADMIN_EMAIL, ADMIN_PASSWORD = "admin@example.com", "admin-Password-0001"
USER_EMAIL, USER_PASSWORD = "dana@example.com", "dana-Password-0001"


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, upstream: FakeOpenAI) -> Iterator[SluiceProcess]:
    config = {
        "ui": True,
        "logging": {"level": "warning", "access_log": False},
        "auth": {"admin_email": ADMIN_EMAIL, "admin_password": ADMIN_PASSWORD, "registration": "invite"},
        # the tests' own address is a trusted proxy, so a forwarded scheme from it counts (the Secure cookie)
        "server": {"trusted_proxies": ["127.0.0.1/32"]},
        "providers": [
            {"name": "slow", "kind": "mock", "mock": {"latency_ms": 50, "tokens_per_second": 25, "reply_tokens": 400}},
            {"name": "fake", "kind": "openai", "base_url": upstream.base_url, "api_key": "sk-upstream"},
        ],
        "models": [
            {"name": "slow-1", "deployments": [{"provider": "slow", "capacity": 2}]},
            {"name": "one-slot", "deployments": [{"provider": "slow", "capacity": 1}]},
            {"name": "upstream-endless", "deployments": [{"provider": "fake", "model": "gpt-fake", "capacity": 1}]},
        ],
        "builtin_mock": False,
    }
    process = SluiceProcess(tmp_path_factory.mktemp("ui"), config).start()
    yield process
    process.stop()

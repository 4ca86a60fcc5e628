"""The `sluice` command as users run it: real files, real databases; the commands run in this process (typer's
runner), ``serve`` and one smoke test of the installed entry point in real processes."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from sluice.store.db import Database
from sluice.store.models import ApiKey
from tests.fakes import FakeAnthropic, FakeOllama, FakeOpenAI
from tests.support.cli import SLUICE_PREFIXES, Ran, run_cli
from tests.support.server import free_port
from tests.support.services import create_postgres_database, drop_postgres_database

SLUICE = [sys.executable, "-m", "sluice"]


def run(args: list[str], env: dict[str, str] | None = None) -> Ran:
    return run_cli(args, env)


def run_process(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(SLUICE + args, capture_output=True, text=True, timeout=60, env=_clean_env())


def _clean_env() -> dict[str, str]:
    """The parent's environment without anything that would configure Sluice."""
    return {k: v for k, v in os.environ.items() if not k.startswith(SLUICE_PREFIXES)}


def test_check_config_reports_every_problem_without_a_traceback(tmp_path: Path) -> None:
    config = tmp_path / "sluice.yaml"
    config.write_text(
        "providers:\n  - {name: up, kind: openai, api_key: '${NOT_SET}'}\nmodels:\n  - name: m\n"
        "    deployments: [{provider: ghost}]\n",
        encoding="utf-8",
    )
    result = run_process(["check-config", "--config", str(config)])  # the smoke test of `python -m sluice`
    assert result.returncode == 2
    assert "providers[0].api_key: environment variable NOT_SET is not set" in result.stderr
    assert "models[0].deployments[0].provider: unknown provider 'ghost'" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_check_config_accepts_a_valid_file(tmp_path: Path) -> None:
    config = tmp_path / "sluice.yaml"
    config.write_text(
        "providers:\n  - {name: local, kind: openai, base_url: 'http://127.0.0.1:8000/v1'}\n"
        "models:\n  - name: m\n    deployments: [{provider: local, model: real}]\n",
        encoding="utf-8",
    )
    result = run(["check-config", "--config", str(config)])
    assert result.returncode == 0, result.stderr
    assert "Configuration OK" in result.stdout and "local (openai)" in result.stdout


def test_keys_create_list_revoke(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    created = run(["keys", "create", "--name", "ci", "--models", "mock-1", "--data-dir", data])
    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"sk-sl-[A-Za-z0-9_-]{43}", secret)
    listed = run(["keys", "list", "--data-dir", data])
    assert "ci" in listed.stdout and secret[:12] in listed.stdout and secret not in listed.stdout
    revoked = run(["keys", "revoke", secret[:12], "--data-dir", data])
    assert revoked.returncode == 0 and "Revoked" in revoked.stdout
    assert "ci" not in run(["keys", "list", "--data-dir", data]).stdout
    assert "revoked" in run(["keys", "list", "--all", "--data-dir", data]).stdout
    missing = run(["keys", "revoke", "sk-sl-nothing", "--data-dir", data])
    assert missing.returncode == 1 and "No API key" in missing.stderr


def test_migrate_on_postgresql() -> None:
    url = create_postgres_database()
    try:
        result = run(["migrate"], env={"SLUICE_DATABASE_URL": url.replace("+asyncpg", "")})
        assert result.returncode == 0, result.stderr
        assert "revision" in result.stdout

        async def current() -> bool:
            db = Database(url)
            try:
                return await db.is_current()
            finally:
                await db.close()

        assert asyncio.run(current())
    finally:
        drop_postgres_database(url)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], int]]:
    port = free_port()
    proc = subprocess.Popen(
        [*SLUICE, "serve", "--port", str(port)],
        cwd=tmp_path,
        env=_clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        yield proc, port
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=20)


def test_serve_with_no_arguments_starts_on_embedded_defaults(
    served: tuple[subprocess.Popen[str], int], tmp_path: Path
) -> None:
    proc, port = served
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60  # a deadline: returns once it answers
    key_file = tmp_path / ".sluice" / "master_key"
    answer = None
    while time.monotonic() < deadline and answer is None:
        if proc.poll() is not None:
            pytest.fail(f"sluice serve exited: {proc.stderr.read() if proc.stderr else ''}")
        if key_file.exists():
            try:
                answer = httpx.post(
                    f"{url}/v1/chat/completions",
                    headers={"Authorization": f"Bearer {key_file.read_text().strip()}"},
                    json={"model": "mock-1", "messages": [{"role": "user", "content": "Hello"}]},
                    timeout=2,
                )
            except httpx.TransportError:
                time.sleep(0.05)
        else:
            time.sleep(0.05)
    assert answer is not None and answer.status_code == 200, "no answer within 60 s"
    assert answer.json()["choices"][0]["message"]["content"]
    assert (tmp_path / ".sluice" / "sluice.db").exists()
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    os.killpg(proc.pid, signal.SIGTERM)
    _, stderr = proc.communicate(timeout=20)
    # uvicorn re-raises the signal after its graceful shutdown, so the status says "terminated by SIGTERM";
    # the gateway's own "stopped" line proves the shutdown ran to completion.
    assert proc.returncode in (0, -signal.SIGTERM)
    assert "stopped" in stderr
    # Not on a terminal, the log is JSON on every line, and the generated key is never in it: the line that
    # announces it names the file that holds it (on a terminal the banner prints a ready-to-paste curl line).
    assert key_file.read_text().strip() not in stderr
    lines = [json.loads(line) for line in stderr.splitlines() if line.strip()]
    announced = [line for line in lines if line["event"] == "generated a master key"]
    assert [line["kept_in"] for line in announced] == [str(key_file.resolve())]


def test_keys_create_sets_the_keys_cache_setting(tmp_path: Path) -> None:
    data = tmp_path / "data"
    for name, flag in (("cached", "--cache"), ("uncached", "--no-cache")):
        created = run(["keys", "create", "--name", name, flag, "--data-dir", str(data)])
        assert created.returncode == 0, created.stderr

    async def settings() -> dict[str, bool | None]:
        db = Database(f"sqlite+aiosqlite:///{data / 'sluice.db'}")
        try:
            async with db.session() as session:
                return {key.name: key.cache for key in (await session.execute(select(ApiKey))).scalars()}
        finally:
            await db.close()

    assert asyncio.run(settings()) == {"cached": True, "uncached": False}


def test_limits_prices_and_usage_commands(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    created = run(["keys", "create", "--name", "budgeted", "--data-dir", data])
    prefix = created.stdout.strip().splitlines()[-1][:12]
    result = run(
        ["limits", "set", "key", prefix, "--rpm", "60", "--budget", "5", "--period", "day", "--data-dir", data]
    )
    assert result.returncode == 0, result.stderr
    listed = run(["limits", "list", "--data-dir", data]).stdout
    assert "key" in listed and "60" in listed and "day" in listed
    spend = run(["limits", "spend", "key", prefix, "--data-dir", data])
    assert spend.returncode == 0 and "0 spent this day (5; limits from stored)" in spend.stdout
    assert run(["limits", "clear", "key", prefix, "--data-dir", data]).returncode == 0
    assert run(["limits", "clear", "key", prefix, "--data-dir", data]).returncode == 1
    assert run(["limits", "set", "key", "sk-sl-nothing", "--rpm", "1", "--data-dir", data]).returncode == 1

    assert run(["prices", "set", "my-model", "--input", "2.5", "--output", "10", "--data-dir", data]).returncode == 0
    assert "my-model" in run(["prices", "list", "--data-dir", data]).stdout
    assert run(["prices", "clear", "my-model", "--data-dir", data]).returncode == 0

    summary = run(["usage", "summary", "--days", "7", "--data-dir", data])
    assert summary.returncode == 0 and "0 requests" in summary.stdout
    export = run(["usage", "export", "--days", "7", "--data-dir", data])
    assert export.returncode == 0 and export.stdout.splitlines()[0].startswith("id,request_id,created_at")


def test_limits_for_roles_and_spend_as_admission_resolves_it(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    config = tmp_path / "sluice.yaml"
    config.write_text(f"data_dir: {data}\nlimits:\n  defaults:\n    key: {{budget: 3, period: week}}\n", "utf-8")
    opts = ["--config", str(config)]
    created = run(["keys", "create", "--name", "plain", *opts])
    prefix = created.stdout.strip().splitlines()[-1][:12]
    spend = run(["limits", "spend", "key", prefix, *opts])
    assert spend.returncode == 0, spend.stderr
    assert "0 spent this week (3; limits from default)" in spend.stdout  # the configured default, not "none"

    assert run(["limits", "set", "role", "member", "--budget", "2", "--period", "day", *opts]).returncode == 0
    assert "role" in run(["limits", "list", *opts]).stdout
    spend = run(["limits", "spend", "key", prefix, *opts])
    assert "0 spent this day (2; limits from role)" in spend.stdout  # keys are members unless made otherwise

    wrong = run(["limits", "set", "role", "memebr", "--rpm", "1", *opts])
    assert wrong.returncode == 1 and "'memebr' is not a role" in wrong.stderr
    assert run(["limits", "spend", "role", "member", *opts]).returncode == 1
    assert run(["limits", "clear", "role", "member", *opts]).returncode == 0
    assert "limits from default" in run(["limits", "spend", "key", prefix, *opts]).stdout

    async def actions() -> list[tuple[str, str, str | None]]:
        from sqlalchemy import select

        from sluice.store.models import AuditEvent

        db = Database(f"sqlite+aiosqlite:///{data}/sluice.db")
        try:
            async with db.session() as session:
                rows = (await session.execute(select(AuditEvent).order_by(AuditEvent.id))).scalars().all()
                return [(r.action, r.target_type, r.target_id) for r in rows if r.action.startswith("limits.")]
        finally:
            await db.close()

    assert asyncio.run(actions()) == [("limits.put", "role", "member"), ("limits.delete", "role", "member")]


def test_sdk_environment_variables_alone_give_a_working_gateway(tmp_path: Path) -> None:
    """No config file: OPENAI_*, ANTHROPIC_* and OLLAMA_HOST add providers whose models are discovered."""
    with FakeOpenAI() as fo, FakeAnthropic() as fa, FakeOllama() as fl:
        port = free_port()
        env = {
            **_clean_env(),
            "OPENAI_API_KEY": "sk-upstream",
            "OPENAI_BASE_URL": fo.base_url,
            "ANTHROPIC_API_KEY": "sk-ant-upstream",
            "ANTHROPIC_BASE_URL": fa.url,
            "OLLAMA_HOST": fl.url.removeprefix("http://"),
            "SLUICE_MASTER_KEY": "sk-sl-env-master",
        }
        proc = subprocess.Popen(
            [*SLUICE, "serve", "--port", str(port)],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            headers = {"Authorization": "Bearer sk-sl-env-master"}
            deadline = time.monotonic() + 60  # a deadline: returns once it answers
            models: set[str] = set()
            while time.monotonic() < deadline and not models:
                try:
                    models = {
                        m["id"] for m in httpx.get(f"http://127.0.0.1:{port}/v1/models", headers=headers).json()["data"]
                    }
                except httpx.TransportError:
                    time.sleep(0.05)
            assert {"gpt-fake", "claude-fake", "llama-fake:latest", "mock-1"} <= models
            for model in ("gpt-fake", "claude-fake", "llama-fake:latest"):
                reply = httpx.post(
                    f"http://127.0.0.1:{port}/v1/chat/completions",
                    headers=headers,
                    json={"model": model, "messages": [{"role": "user", "content": "hi"}]},
                )
                assert reply.status_code == 200, reply.text
                assert reply.json()["choices"][0]["message"]["content"] == "Hello from the fake upstream."
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=20)
            if proc.stderr is not None:
                proc.stderr.close()


def test_check_config_with_workers_refuses_a_capacity_on_the_in_process_queue(tmp_path: Path) -> None:
    config = tmp_path / "sluice.yaml"
    config.write_text(
        "redis_url: redis://127.0.0.1:6379/0\nlimits: {backend: redis}\n"
        "providers:\n  - {name: local, kind: openai, base_url: 'http://127.0.0.1:8000/v1'}\n"
        "models:\n  - name: m\n    deployments: [{provider: local, capacity: 4}]\n",
        encoding="utf-8",
    )
    assert run(["check-config", "--config", str(config)]).returncode == 0
    refused = run(["check-config", "--config", str(config), "--workers", "2"])
    assert refused.returncode == 2
    assert "scheduling.backend: 'local' keeps one queue per worker" in refused.stderr
    assert "models[0].deployments[0] (m)" in refused.stderr
    served = run(["serve", "--config", str(config), "--workers", "2", "--data-dir", str(tmp_path / "d")])
    assert served.returncode == 2 and "scheduling.backend: 'local'" in served.stderr
    assert not (tmp_path / "d").exists()  # refused before anything was written
    config.write_text(config.read_text(encoding="utf-8") + "scheduling: {backend: redis}\n", encoding="utf-8")
    shared = run(["check-config", "--config", str(config), "--workers", "2"])
    assert shared.returncode == 0, shared.stderr
    assert "2 workers" in shared.stdout and "cache.backend: 'memory'" in shared.stdout

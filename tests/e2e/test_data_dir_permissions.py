"""Issue 16 item 13, SECURITY.md case 43: everything in the data directory is owner-only (files 0600, dirs 0700).

The database with its WAL files, the usage spool, the generated secrets, and under ``sluice serve --workers N`` the
Prometheus multiprocess files too; files an earlier version left readable are narrowed on start.
"""

from __future__ import annotations

import secrets
import sqlite3
import stat
from pathlib import Path

import httpx
import pytest

from tests.support.processes import SluiceProcess
from tests.support.server import MASTER_KEY, SluiceServer, make_settings
from tests.support.services import REDIS_URL, require_redis

CHAT = {"model": "mock-1", "messages": [{"role": "user", "content": "hi"}]}


def loose_entries(root: Path) -> list[str]:
    """Every path under ``root`` (itself included) that anyone but the owner may read, write or enter."""
    loose = []
    for path in [root, *root.rglob("*")]:
        if path.is_symlink():
            continue
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            loose.append(f"{path.relative_to(root.parent)} {oct(mode)}")
    return loose


def use(url: str) -> None:
    headers = {"authorization": f"Bearer {MASTER_KEY}"}
    for _ in range(3):
        assert httpx.post(f"{url}/v1/chat/completions", json=CHAT, headers=headers, timeout=30).status_code == 200
    created = httpx.post(
        f"{url}/admin/v1/keys", json={"name": "k", "workspace_id": "default"}, headers=headers, timeout=30
    )
    assert created.status_code == 201, created.text


def test_database_spool_and_secrets_are_owner_only(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with SluiceServer(make_settings(data)) as server:
        use(server.url)
        names = {p.name for p in data.iterdir()}
        assert {"sluice.db", "sluice.db-wal", "usage-spool.db", "master_key"} - names <= {"master_key"}, names
        assert loose_entries(data) == []


def test_files_an_earlier_version_left_readable_are_narrowed_on_start(tmp_path: Path) -> None:
    data = tmp_path / "data"
    settings = make_settings(data)
    sqlite3.connect(data / "sluice.db").close()
    old_secret = data / "jwt_secret"
    old_secret.write_text(secrets.token_urlsafe(48) + "\n", encoding="utf-8")
    for path in (data / "sluice.db", old_secret):
        path.chmod(0o644)
    data.chmod(0o755)
    shared = data / "elsewhere"  # not Sluice's: left as it is
    shared.mkdir()
    shared.chmod(0o755)
    with SluiceServer(settings):
        assert loose_entries(data) == [f"data/elsewhere {oct(0o755)}"]


@pytest.mark.services
def test_every_file_of_several_workers_is_owner_only(tmp_path: Path) -> None:
    require_redis()
    data = tmp_path / "data"
    prefix = "t-" + secrets.token_hex(4)
    config = {
        "data_dir": str(data),
        "redis_url": REDIS_URL,
        "limits": {"backend": "redis", "redis_prefix": prefix},
        "scheduling": {"backend": "redis", "prefix": prefix + "-sched"},
    }
    gateway = SluiceProcess(tmp_path / "gw", config, args=("--workers", "2"), start_timeout=120.0).start()
    try:
        use(gateway.url)
        assert httpx.get(f"{gateway.url}/metrics", timeout=30).status_code == 200
        assert any((data / "prometheus").iterdir())
        assert loose_entries(data) == []
    finally:
        gateway.stop()

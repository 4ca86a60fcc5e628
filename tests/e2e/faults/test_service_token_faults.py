"""Issue 23 item 1 for service tokens: with PostgreSQL hung (SIGSTOP), a token whose workspace was never looked up
gets 503 within the request deadline instead of hanging; one already verified keeps working."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from sluice.store.db import Database
from tests.e2e.sso.conftest import running_rig
from tests.support.processes import PrivatePostgres

pytestmark = pytest.mark.services

CHAT = {"model": "mock-1", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
ANSWER_WITHIN = 8.0  # the lookup deadline is 2 s


async def _migrate(url: str) -> None:
    db = Database(url)
    await db.migrate()
    await db.close()


def test_a_hung_database_refuses_unknown_service_workspaces_in_time(tmp_path: Path) -> None:
    pg = PrivatePostgres().init()
    try:
        asyncio.run(_migrate(pg.url))
        with running_rig(tmp_path, pg.url) as rig:
            known = rig.idp.service_token()
            unknown = rig.idp.mint(roles=["research-bot"])  # maps to a workspace not looked up yet

            def chat(token: str) -> httpx.Response:
                headers = {"authorization": f"Bearer {token}"}
                return httpx.post(f"{rig.url}/v1/chat/completions", json=CHAT, headers=headers, timeout=ANSWER_WITHIN)

            assert chat(known).status_code == 200
            pg.pause()
            try:
                refused = chat(unknown)
                assert refused.status_code == 503, refused.text
                assert refused.json()["error"]["code"] == "auth_unavailable"
                assert "retry-after" in refused.headers
                assert chat(known).status_code == 200
            finally:
                pg.resume()
            assert chat(unknown).status_code == 200
    finally:
        pg.destroy()

"""The Responses API's store on SQLite and PostgreSQL: owner scope, retention, deletion and conversation chains."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from sluice.config import ResponsesConfig
from sluice.errors import NotFound
from sluice.identity.principal import Principal
from sluice.store.db import Database
from sluice.store.models import StoredResponse
from sluice.stored_responses.service import ResponseStore, owner_of
from tests.support.services import fresh_postgres_database

ALICE = Principal("user", "u1", "member", workspace_id="w1", user_id="u1", key_id="k1")
ALICE_OTHER_KEY = Principal("key", "k2", "member", workspace_id="w1", user_id="u1", key_id="k2")
BOB = Principal("key", "k3", "member", workspace_id="w1", key_id="k3")
ALICE_ELSEWHERE = Principal("user", "u1", "member", workspace_id="w2", user_id="u1", key_id="k4")


@pytest.fixture(params=["sqlite", "postgresql"])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    if request.param == "sqlite":
        database = Database(f"sqlite+aiosqlite:///{tmp_path / 'r.db'}")
        await database.migrate()
        try:
            yield database
        finally:
            await database.close()
        return
    async with fresh_postgres_database() as url:
        database = Database(url)
        await database.migrate()
        try:
            yield database
        finally:
            await database.close()


def answer(response_id: str, text: str) -> dict[str, Any]:
    output = [
        {
            "type": "message",
            "id": f"msg_{response_id}",
            "role": "assistant",
            "content": [{"type": "output_text", "text": text}],
        }
    ]
    return {"id": response_id, "object": "response", "model": "m", "output": output}


def said(text: str) -> list[dict[str, Any]]:
    return [{"type": "message", "role": "user", "content": text, "id": f"in_{text}"}]


async def test_a_response_is_seen_by_its_owner_only(db: Database) -> None:
    store = ResponseStore(db, ResponsesConfig())
    await store.save(ALICE, answer("resp_1", "hi"), said("hello"), None)
    assert (await store.get(ALICE, "resp_1")).response["output"][0]["content"][0]["text"] == "hi"
    assert (await store.get(ALICE_OTHER_KEY, "resp_1")).id == "resp_1"  # the user's other key: same owner
    for stranger in (BOB, ALICE_ELSEWHERE):
        with pytest.raises(NotFound):
            await store.get(stranger, "resp_1")
        with pytest.raises(NotFound):
            await store.delete(stranger, "resp_1")
    await store.delete(ALICE, "resp_1")
    with pytest.raises(NotFound):
        await store.get(ALICE, "resp_1")
    assert owner_of(BOB) == "key:k3" and owner_of(ALICE) == "user:u1"


async def test_a_conversation_is_rebuilt_oldest_first_and_survives_a_lost_early_turn(db: Database) -> None:
    store = ResponseStore(db, ResponsesConfig())
    await store.save(ALICE, answer("resp_a", "one"), said("first"), None)
    await store.save(ALICE, answer("resp_b", "two"), said("second"), "resp_a")
    await store.save(ALICE, answer("resp_c", "three"), said("third"), "resp_b")
    texts = [
        i["content"] if isinstance(i["content"], str) else i["content"][0]["text"]
        for i in await store.conversation(ALICE, "resp_c")
    ]
    assert texts == ["first", "one", "second", "two", "third", "three"]
    await store.delete(ALICE, "resp_a")
    assert len(await store.conversation(ALICE, "resp_c")) == 4
    with pytest.raises(NotFound) as caught:
        await store.conversation(BOB, "resp_c")
    assert caught.value.param == "previous_response_id"


async def test_retention_hides_then_purges_expired_responses(db: Database) -> None:
    store = ResponseStore(db, ResponsesConfig(retention_days=0.2 / 86_400))  # 0.2 s
    await store.save(ALICE, answer("resp_old", "x"), said("x"), None)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            await store.get(ALICE, "resp_old")
        except NotFound:
            break
        await asyncio.sleep(0.05)
    else:
        pytest.fail("an expired response was still returned after 5 s")
    store._purged = 0.0  # the next save purges (at most once a minute otherwise)
    await store.save(ALICE, answer("resp_new", "y"), said("y"), None)
    async with db.session() as session:
        ids = (await session.execute(select(StoredResponse.id))).scalars().all()
        count = (await session.execute(select(func.count()).select_from(StoredResponse))).scalar_one()
    assert list(ids) == ["resp_new"] and count == 1

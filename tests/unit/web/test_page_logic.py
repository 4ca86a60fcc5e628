"""The UI's page logic without a browser: wording of the queue line and usage, error extraction, chat history
scoping (a user never reads or changes another user's conversations)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from sluice.config import sqlite_url
from sluice.store.db import Database
from sluice.store.models import User
from sluice.web import self_url
from sluice.web.client import error_of
from sluice.web.conversations import ConversationStore, Message
from sluice.web.pages_chat import ordinal, queue_text, usage_text


@pytest.mark.parametrize(("n", "text"), [(1, "1st"), (2, "2nd"), (3, "3rd"), (4, "4th"), (11, "11th"), (22, "22nd")])
def test_ordinals(n: int, text: str) -> None:
    assert ordinal(n) == text


def test_queue_line_names_the_place_and_the_estimate() -> None:
    assert queue_text([]) == ""
    assert queue_text([{"position": 3, "estimated_wait_ms": 11_600}]) == "3rd in line, about 12 s"
    assert queue_text([{"position": 1, "estimated_wait_ms": 0}]) == "1st in line, about 1 s"


def test_usage_text() -> None:
    assert usage_text(None) == ""
    assert usage_text({"prompt_tokens": 12, "completion_tokens": 34}) == "12 tokens in, 34 tokens out"


def test_errors_carry_the_gateways_message_and_field() -> None:
    api_error = httpx.Response(
        403, json={"error": {"type": "permission", "message": "No.", "code": "x", "param": "role"}}
    )
    error = error_of(api_error)
    assert (error.status, error.message, error.code, error.field) == (403, "No.", "x", "role")
    validation = httpx.Response(
        422, json={"detail": [{"loc": ["body", "email"], "msg": "Field required", "type": "m"}]}
    )
    assert error_of(validation).message == "email: Field required" and error_of(validation).field == "email"
    assert "500" in error_of(httpx.Response(500, text="<html>")).message


def test_self_url_uses_loopback_for_wildcard_listeners() -> None:
    assert self_url("0.0.0.0", 4000) == "http://127.0.0.1:4000"
    assert self_url("::", 4000) == "http://127.0.0.1:4000"
    assert self_url("10.0.0.5", 80) == "http://10.0.0.5:80"
    assert self_url("::1", 4000) == "http://[::1]:4000"


def test_conversations_are_private_to_their_user(tmp_path: Path) -> None:
    async def scenario() -> None:
        db = Database(sqlite_url(tmp_path))
        await db.migrate()
        async with db.session() as session:
            session.add_all(
                [User(id="ann", email="ann@x.io", password_hash="-"), User(id="bob", email="b@x.io", password_hash="-")]
            )
        ann, bob = ConversationStore(db, "ann"), ConversationStore(db, "bob")
        chat = await ann.create("mock-1")
        await ann.append(chat.id, Message("user", "What is Sluice?\nmore"))
        await ann.append(chat.id, Message("assistant", "A gateway.", {"prompt_tokens": 3}))
        assert [c.title for c in await ann.all()] == ["What is Sluice?"]
        assert [m.content for m in await ann.messages(chat.id)] == ["What is Sluice?\nmore", "A gateway."]
        # Bob knows the id but gets nothing and changes nothing.
        assert await bob.get(chat.id) is None and await bob.messages(chat.id) == []
        await bob.append(chat.id, Message("user", "hijack"))
        await bob.update(chat.id, title="mine")
        await bob.truncate(chat.id, 0)
        await bob.delete(chat.id)
        assert [m.content for m in await ann.messages(chat.id)] == ["What is Sluice?\nmore", "A gateway."]
        assert (await ann.all())[0].title == "What is Sluice?"
        await ann.truncate(chat.id, 1)  # regenerate: drop the last answer
        assert [m.role for m in await ann.messages(chat.id)] == ["user"]
        await ann.delete(chat.id)
        assert await ann.all() == []
        await db.close()

    asyncio.run(scenario())

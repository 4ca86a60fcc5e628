"""The UI's page logic without a browser: wording of the queue line and usage, error extraction, chat history
scoping (a user never reads or changes another user's conversations), Markdown split around code blocks, the
checks forms run as you type, the audit page's query and secret-free images, the session cookie's Secure flag."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from sluice.config import sqlite_url
from sluice.identity.network import TrustedProxies
from sluice.store.db import Database
from sluice.store.models import User
from sluice.web import self_url
from sluice.web.answers import Segment, fenced, recorded_usage, split_fences, usage_line
from sluice.web.chat_view import ordinal, queue_text
from sluice.web.client import error_of
from sluice.web.conversations import ChatSettings, ConversationStore, Message
from sluice.web.cookies import SecureSessionCookie
from sluice.web.money import money
from sluice.web.pages_admin_audit import ALL, audit_params, image_text, scrub_deep
from sluice.web.pages_admin_keys import expiry_value
from sluice.web.pages_admin_ops import queue_rows
from sluice.web.validation import cidr_problem, cidrs_problem, date_problem


@pytest.mark.parametrize(("n", "text"), [(1, "1st"), (2, "2nd"), (3, "3rd"), (4, "4th"), (11, "11th"), (22, "22nd")])
def test_ordinals(n: int, text: str) -> None:
    assert ordinal(n) == text


def test_queue_line_names_the_place_and_the_estimate() -> None:
    assert queue_text([]) == ""
    assert queue_text([{"position": 3, "estimated_wait_ms": 11_600}]) == "3rd in line, about 12 s"
    assert queue_text([{"position": 1, "estimated_wait_ms": 0}]) == "1st in line, about 1 s"


def test_usage_line_names_the_model_the_tokens_and_once_recorded_the_cost_in_its_currency() -> None:
    assert usage_line(None) == ""
    assert usage_line({"model": "m-1"}) == "m-1"  # while streaming, before any usage
    assert usage_line({"model": "m-1", "prompt_tokens": 12, "completion_tokens": 34}) == "m-1 · 12 tokens in, 34 out"
    recorded = {"model": "m-1", "prompt_tokens": 12, "completion_tokens": 34, "cost": 0.00021, "estimated": False}
    assert usage_line(recorded) == "m-1 · 12 tokens in, 34 out · $0.00021"
    assert usage_line(recorded, "EUR").endswith("€0.00021")
    assert usage_line({**recorded, "estimated": True}).endswith("(estimated tokens)")


@pytest.mark.parametrize(
    ("amount", "currency", "text"),
    [
        (0, "USD", "$0"),
        (1.234, "USD", "$1.23"),
        (12345.6, "EUR", "€12,345.60"),
        (0.0042, "USD", "$0.0042"),
        (0.000018, "USD", "$0.000018"),
        (0.00125, "USD", "$0.0013"),
        (0.009999, "USD", "$0.01"),
        (1e-9, "USD", "$0.000000001"),
        (2.5, "SEK", "2.50 SEK"),
        (None, "USD", "—"),
    ],
)
def test_money_reads_as_money(amount: float | None, currency: str, text: str) -> None:
    assert money(amount, currency) == text


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
        chat = await ann.create(ChatSettings("mock-1", "Be brief.", 0.2, 300))
        await ann.append(chat.id, Message("user", "What is Sluice?\nmore"))
        await ann.append(chat.id, Message("assistant", "A gateway.", {"prompt_tokens": 3}))
        assert [c.title for c in await ann.all()] == ["What is Sluice?"]
        stored = await ann.get(chat.id)
        assert stored is not None and ChatSettings.of(stored) == ChatSettings("mock-1", "Be brief.", 0.2, 300)
        assert ChatSettings.of(stored).request() == {"temperature": 0.2, "max_tokens": 300}
        assert ChatSettings().request() == {}  # unset: the model's own defaults
        assert [c.id for c in await ann.search("sluice?")] == [chat.id]  # the title
        assert [c.id for c in await ann.search("GATEWAY")] == [chat.id]  # a message, any case
        assert await ann.search("100%") == [] and await bob.search("gateway") == []
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


def test_an_answer_keeps_its_request_log_entrys_tokens_and_cost_and_only_its_user_sets_them(tmp_path: Path) -> None:
    entry = {
        "id": "u1",
        "request_id": "ui-abc",
        "user_id": "ann",
        "status": 499,
        "prompt_tokens": 7,
        "completion_tokens": 3,
        "cost": 0.00125,
        "estimated": True,
        "latency_ms": 900.0,
    }
    usage = recorded_usage(entry)
    assert usage == {
        "prompt_tokens": 7,
        "completion_tokens": 3,
        "cost": 0.00125,
        "estimated": True,
        "request_id": "ui-abc",
    }

    async def scenario() -> None:
        db = Database(sqlite_url(tmp_path))
        await db.migrate()
        async with db.session() as session:
            session.add_all(
                [User(id="ann", email="ann@x.io", password_hash="-"), User(id="bob", email="b@x.io", password_hash="-")]
            )
        ann, bob = ConversationStore(db, "ann"), ConversationStore(db, "bob")
        chat = await ann.create(ChatSettings("m"))
        position = await ann.append(chat.id, Message("assistant", "partial", {"prompt_tokens": 7}))
        assert position == 1 and await bob.append(chat.id, Message("user", "x")) is None
        await bob.set_usage(chat.id, 1, {"cost": 99})
        await ann.set_usage(chat.id, 1, usage)
        assert [m.usage for m in await ann.messages(chat.id)] == [usage]
        await db.close()

    asyncio.run(scenario())


# --- Markdown around code blocks --------------------------------------------------------------------------------


def test_prose_and_closed_code_blocks_come_apart_in_order() -> None:
    text = "Try:\n```python\nprint(1)\n```\nthen\n~~~\nls -l\n~~~\n"
    assert split_fences(text) == [
        Segment("text", "Try:"),
        Segment("code", "print(1)", "python"),
        Segment("text", "then"),
        Segment("code", "ls -l", ""),
    ]


def test_a_block_still_streaming_runs_to_the_end() -> None:
    assert split_fences("Here:\n```js\nlet a = 1;\nlet b") == [
        Segment("text", "Here:"),
        Segment("code", "let a = 1;\nlet b", "js"),
    ]
    assert split_fences("Here:\n``") == [Segment("text", "Here:\n``")]  # not a fence (yet)


def test_a_fence_closes_only_with_its_own_character_at_least_as_long() -> None:
    text = "````md\n```\ninner\n```\n````\nafter"
    assert split_fences(text) == [Segment("code", "```\ninner\n```", "md"), Segment("text", "after")]
    assert split_fences("```\na\n~~~\nb") == [Segment("code", "a\n~~~\nb", "")]


def test_plain_text_is_one_segment_and_blank_tails_are_dropped() -> None:
    assert split_fences("just words\nand more") == [Segment("text", "just words\nand more")]
    assert split_fences("```\nx\n```\n\n") == [Segment("code", "x", "")]
    assert split_fences("") == []


def test_a_block_is_fenced_again_longer_than_any_backticks_it_holds() -> None:
    assert fenced(Segment("code", "a = 1", "py")) == "```py\na = 1\n```"
    assert fenced(Segment("code", "use ```x``` here", "")) == "````\nuse ```x``` here\n````"


# --- checks as you type -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [None, "", " ", "10.0.0.0/8", "192.168.1.7", "2001:db8::/32", " 10.1.0.0/16 "])
def test_networks_that_pass(value: str | None) -> None:
    assert cidr_problem(value) is None


@pytest.mark.parametrize("value", ["10.0.0.0/33", "300.1.1.1", "ten", "10.0.0.0/8/8"])
def test_networks_that_do_not(value: str) -> None:
    assert cidr_problem(value) == "Enter a network such as 10.0.0.0/8"


def test_a_list_of_networks_names_the_bad_one() -> None:
    assert cidrs_problem("10.0.0.0/8, 192.168.0.0/16") is None
    assert cidrs_problem("10.0.0.0/8, nope") == "'nope' is not a network (e.g. 10.0.0.0/8)"


def test_days_and_expiries() -> None:
    assert date_problem("") is None and date_problem("2027-01-31") is None
    assert date_problem("31/01/2027") == "Use the form YYYY-MM-DD"
    assert expiry_value("2027-01-31") == "2027-01-31T00:00:00Z"
    assert expiry_value("  ") is None
    assert expiry_value("soon") == "soon"  # sent as typed: the gateway's refusal names the field


# --- the audit page ---------------------------------------------------------------------------------------------


def test_audit_query_from_the_filter_fields() -> None:
    values = {
        "since": "2026-11-01",
        "until": "2026-11-30",
        "action": " key.create ",
        "actor": "",
        "target_type": "key",
        "target_id": None,
        "workspace_id": ALL,
    }
    assert audit_params(values, 41) == {
        "limit": "50",
        "action": "key.create",
        "target_type": "key",
        "since": "2026-11-01T00:00:00Z",
        "until": "2026-12-01T00:00:00Z",  # the whole last day
        "before_id": "41",
    }
    assert audit_params({"workspace_id": "w1", "since": "not a day"}, None) == {"limit": "50", "workspace_id": "w1"}


def test_audit_images_never_show_secrets_at_any_depth() -> None:
    image = {
        "name": "k",
        "key_hash": "abc",
        "definition": {"api_key_value": "x", "base_url": "http://u", "nested": [{"password": "p", "ok": 1}]},
    }
    assert scrub_deep(image) == {"name": "k", "definition": {"base_url": "http://u", "nested": [{"ok": 1}]}}
    assert "abc" not in image_text(image) and image_text(None) == "—"


# --- the session cookie's Secure flag ---------------------------------------------------------------------------


def cookies_after(scope_update: dict[str, Any], trusted: list[str]) -> dict[bytes, bytes]:
    """The cookies (name → whole header) a request gets through the middleware; the app behind sets two."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        headers = [(b"set-cookie", b"session=abc; path=/; httponly; samesite=lax"), (b"set-cookie", b"other=1")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request"}

    scope = {"type": "http", "scheme": "http", "client": ("203.0.113.9", 5000), "headers": [], **scope_update}
    asyncio.run(SecureSessionCookie(app, lambda: TrustedProxies(trusted))(scope, receive, send))
    return {value.split(b"=")[0]: value for name, value in sent[0]["headers"] if name == b"set-cookie"}


def test_the_session_cookie_is_secure_on_https() -> None:
    cookies = cookies_after({"scheme": "https"}, [])
    assert cookies[b"session"].endswith(b"; secure") and cookies[b"other"] == b"other=1"


def test_the_session_cookie_is_not_secure_on_plain_http() -> None:
    assert b"secure" not in cookies_after({}, [])[b"session"]


def test_a_trusted_proxy_saying_https_makes_it_secure() -> None:
    proxied = {"client": ("10.0.0.2", 4000), "headers": [(b"x-forwarded-proto", b"https")]}
    assert cookies_after(proxied, ["10.0.0.0/24"])[b"session"].endswith(b"; secure")
    plain = {"client": ("10.0.0.2", 4000), "headers": [(b"x-forwarded-proto", b"http")]}
    assert b"secure" not in cookies_after(plain, ["10.0.0.0/24"])[b"session"]


def test_anyone_else_saying_https_is_not_believed() -> None:
    forged = {"client": ("203.0.113.9", 4000), "headers": [(b"x-forwarded-proto", b"https")]}
    assert b"secure" not in cookies_after(forged, ["10.0.0.0/24"])[b"session"]


def test_queue_rows_break_waiting_down_by_class() -> None:
    snapshot = {
        "deployments": [
            {
                "deployment": "m#0:p/x",
                "capacity": 2,
                "in_flight": 2,
                "waiting": 3,
                "oldest_wait_ms": 2500.0,
                "estimated_wait_ms": 900.0,
                "classes": [
                    {"name": "interactive", "waiting": 0, "oldest_wait_ms": None},
                    {"name": "standard", "waiting": 2, "oldest_wait_ms": 2500.0},
                    {"name": "batch", "waiting": 1, "oldest_wait_ms": 40.0},
                ],
                "tenants": [{"tenant": "w", "waiting": 3, "in_flight": 2}],
            },
            {"deployment": "idle", "capacity": 1, "in_flight": 0, "waiting": 0, "classes": []},
        ]
    }
    busy, idle = queue_rows(snapshot)
    assert busy["by_class"] == "standard 2, oldest 2.5 s · batch 1, oldest 0.0 s"
    assert (busy["in_flight"], busy["waiting"], busy["estimated_wait_ms"]) == (2, 3, 900.0)
    assert "tenants" not in busy and idle["by_class"] == "—"
    assert queue_rows(None) == []

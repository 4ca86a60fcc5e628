"""The response cache through HTTP: hits and misses, streaming replay, TTL, no-store/no-cache, tenant isolation."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from sqlalchemy import select

from sluice.store.models import UsageRecord, Workspace
from tests.fakes import FakeOpenAI
from tests.support.keys import NewKey, create_key
from tests.support.server import SluiceServer, make_settings
from tests.support.services import REDIS_URL, require_redis


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as upstream:
        yield upstream


def config(fake: FakeOpenAI, **extra: Any) -> dict[str, Any]:
    return {
        "providers": [{"name": "up", "kind": "openai", "base_url": fake.base_url}],
        "models": [
            {
                "name": "gpt",
                "price": {"input": 1, "output": 1},
                "deployments": [{"provider": "up", "model": "gpt-fake"}],
            },
            {"name": "gpt-cached", "cache": True, "deployments": [{"provider": "up", "model": "gpt-fake"}]},
        ],
        **extra,
    }


@pytest.fixture(scope="module")
def gateway(fake: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SluiceServer]:
    with SluiceServer(make_settings(Path(tmp_path_factory.mktemp("gw")), config(fake))) as server:
        yield server


def ask(http: httpx.Client, headers: dict[str, str] | None = None, **extra: Any) -> httpx.Response:
    body = {"model": "gpt", "messages": [{"role": "user", "content": extra.pop("question", "What is 6 x 7?")}], **extra}
    return http.post("/v1/chat/completions", json=body, headers=headers or {})


def test_opt_in_header_caches_and_the_hit_does_not_reach_the_upstream(gateway: SluiceServer, fake: FakeOpenAI) -> None:
    with gateway.client() as http:
        first = ask(http, {"x-sluice-cache": "on"}, question="cache me once")
        attempts = fake.attempts
        second = ask(http, {"x-sluice-cache": "on"}, question="cache me once")
    assert first.headers["x-sluice-cache"] == "miss" and second.headers["x-sluice-cache"] == "hit"
    assert second.content == first.content
    assert fake.attempts == attempts


def test_without_opt_in_nothing_is_cached(gateway: SluiceServer, fake: FakeOpenAI) -> None:
    with gateway.client() as http:
        ask(http, question="not cached")
        attempts = fake.attempts
        again = ask(http, question="not cached")
    assert "x-sluice-cache" not in again.headers and fake.attempts == attempts + 1


def test_model_level_opt_in(gateway: SluiceServer, fake: FakeOpenAI) -> None:
    with gateway.client() as http:
        ask(http, model="gpt-cached", question="model cache")
        attempts = fake.attempts
        hit = ask(http, model="gpt-cached", question="model cache")
        skipped = ask(http, {"x-sluice-cache": "no-cache"}, model="gpt-cached", question="model cache")
    assert hit.headers["x-sluice-cache"] == "hit" and fake.attempts == attempts + 1
    assert skipped.headers["x-sluice-cache"] == "miss"


def test_streamed_answers_replay_as_streams(gateway: SluiceServer, fake: FakeOpenAI) -> None:
    with openai.OpenAI(
        base_url=gateway.url + "/v1",
        api_key=gateway.master_key,
        max_retries=0,
        default_headers={"x-sluice-cache": "on"},
    ) as client:
        kwargs: dict[str, Any] = {
            "model": "gpt",
            "messages": [{"role": "user", "content": "stream me"}],
            "stream": True,
        }
        first = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(**kwargs))
        attempts = fake.attempts
        raw = client.chat.completions.with_raw_response.create(**kwargs)
        second = "".join(c.choices[0].delta.content or "" for c in raw.parse())
    assert first == second == "Hello from the fake upstream."
    assert raw.headers["x-sluice-cache"] == "hit" and fake.attempts == attempts


def test_no_store_and_ttl(gateway: SluiceServer, fake: FakeOpenAI) -> None:
    with gateway.client() as http:
        ask(http, {"x-sluice-cache": "on, no-store"}, question="never stored")
        assert ask(http, {"x-sluice-cache": "on"}, question="never stored").headers["x-sluice-cache"] == "miss"
        ask(http, {"x-sluice-cache": "on, ttl=2"}, question="short lived")
        assert ask(http, {"x-sluice-cache": "on"}, question="short lived").headers["x-sluice-cache"] == "hit"
        deadline = time.monotonic() + 10  # the entry expires after 2 s: asked again until it has (a miss stores anew)
        while ask(http, {"x-sluice-cache": "on"}, question="short lived").headers["x-sluice-cache"] == "hit":
            assert time.monotonic() < deadline, "the entry outlived its ttl"
            time.sleep(0.2)


@pytest.mark.parametrize(
    ("headers", "extra", "param"),
    [({"x-sluice-cache": "yes please"}, {}, "x-sluice-cache"), ({}, {"cache": {"ttl": "long"}}, "cache.ttl")],
)
def test_a_bad_cache_control_is_a_400_naming_it(
    gateway: SluiceServer, fake: FakeOpenAI, headers: dict[str, str], extra: dict[str, Any], param: str
) -> None:
    attempts = fake.attempts
    with gateway.client() as http:
        refused = ask(http, headers, question="badly controlled", **extra)
    assert refused.status_code == 400 and refused.json()["error"]["param"] == param
    assert fake.attempts == attempts


def test_body_cache_field_is_understood_and_never_sent_upstream(gateway: SluiceServer, fake: FakeOpenAI) -> None:
    with gateway.client() as http:
        ask(http, cache={"ttl": 60}, question="body field")
        sent = fake.requests[-1].json
        hit = ask(http, cache=True, question="body field")
    assert sent is not None and "cache" not in sent
    assert hit.headers["x-sluice-cache"] == "hit"


def test_cache_hits_are_free_and_marked_in_usage(gateway: SluiceServer) -> None:
    key: NewKey = gateway.call(create_key(gateway.services.db, "cache-billing"))
    with gateway.client(key.secret) as http:
        ask(http, {"x-sluice-cache": "on"}, question="bill once")
        ask(http, {"x-sluice-cache": "on"}, question="bill once")

    async def rows() -> list[UsageRecord]:
        while await gateway.services.accounting.shipper.ship_once():
            pass
        async with gateway.services.db.session() as session:
            query = select(UsageRecord).where(UsageRecord.key_id == key.key.id).order_by(UsageRecord.created_at)
            return list((await session.execute(query)).scalars())

    miss, hit = gateway.call(rows())
    assert (miss.cache_hit, hit.cache_hit) == (False, True)
    assert miss.cost_nanos > 0 and hit.cost_nanos == 0
    assert hit.completion_tokens == miss.completion_tokens


def test_two_workspaces_never_share_an_entry(gateway: SluiceServer, fake: FakeOpenAI) -> None:
    async def keys() -> tuple[NewKey, NewKey, NewKey]:
        async with gateway.services.db.session() as session:
            session.add(Workspace(id="ws-other", name="other-" + secrets.token_hex(3)))
        return (
            await create_key(gateway.services.db, "a1"),
            await create_key(gateway.services.db, "a2"),
            await create_key(gateway.services.db, "b1", workspace_id="ws-other"),
        )

    a1, a2, b1 = gateway.call(keys())
    with gateway.client(a1.secret) as http:
        ask(http, {"x-sluice-cache": "on"}, question="tenant secret")
    with gateway.client(b1.secret) as http:
        other = ask(http, {"x-sluice-cache": "on"}, question="tenant secret")
    with gateway.client(a2.secret) as http:
        same = ask(http, {"x-sluice-cache": "on"}, question="tenant secret")
    assert other.headers["x-sluice-cache"] == "miss"
    assert same.headers["x-sluice-cache"] == "hit"


def test_redis_cache_is_shared_by_replicas(fake: FakeOpenAI, tmp_path: Path) -> None:
    require_redis()
    shared = config(
        fake,
        redis_url=REDIS_URL,
        cache={"backend": "redis", "redis_prefix": "sluice-test-cache-" + secrets.token_hex(4)},
    )
    with (
        SluiceServer(make_settings(tmp_path / "a", shared)) as one,
        SluiceServer(make_settings(tmp_path / "b", shared)) as two,
    ):
        with one.client() as http:
            ask(http, {"x-sluice-cache": "on"}, question="shared across replicas")
        with two.client() as http:
            hit = ask(http, {"x-sluice-cache": "on"}, question="shared across replicas")
    assert hit.headers["x-sluice-cache"] == "hit"


# --- the key's own cache setting: request > key > model > gateway default ----------------------------------------


def _admin_key(gateway: SluiceServer, name: str, cache: bool | None) -> tuple[str, str]:
    """A key created through the admin API with its cache setting: (id, secret)."""
    with gateway.client() as http:
        created = http.post("/admin/v1/keys", json={"name": name, "workspace_id": "default", "cache": cache})
    assert created.status_code == 201, created.text
    assert created.json()["cache"] is cache
    return created.json()["id"], created.json()["key"]


def test_a_key_with_cache_on_caches_a_model_that_does_not(gateway: SluiceServer, fake: FakeOpenAI) -> None:
    _, secret = _admin_key(gateway, "cache-on", True)
    with gateway.client(secret) as http:
        first = ask(http, question="key opts in")
        attempts = fake.attempts
        second = ask(http, question="key opts in")
        skipped = ask(http, {"x-sluice-cache": "off"}, question="key opts in")  # the request still decides
    assert first.headers["x-sluice-cache"] == "miss" and second.headers["x-sluice-cache"] == "hit"
    assert "x-sluice-cache" not in skipped.headers and fake.attempts == attempts + 1


def test_a_key_with_cache_off_is_not_cached_on_a_cached_model(gateway: SluiceServer, fake: FakeOpenAI) -> None:
    _, secret = _admin_key(gateway, "cache-off", False)
    with gateway.client(secret) as http:
        ask(http, model="gpt-cached", question="key opts out")
        attempts = fake.attempts
        again = ask(http, model="gpt-cached", question="key opts out")
        asked = [ask(http, {"x-sluice-cache": "on"}, model="gpt-cached", question="request opts in") for _ in "12"]
    assert "x-sluice-cache" not in again.headers and fake.attempts == attempts + 2
    assert [r.headers["x-sluice-cache"] for r in asked] == ["miss", "hit"]


def test_the_keys_cache_setting_is_changed_and_cleared_with_patch(gateway: SluiceServer, fake: FakeOpenAI) -> None:
    key_id, secret = _admin_key(gateway, "cache-edit", None)
    with gateway.client() as admin, gateway.client(secret) as http:
        assert "x-sluice-cache" not in ask(http, question="edited key").headers  # model and default say no
        changed = admin.patch(f"/admin/v1/keys/{key_id}", json={"cache": True})
        assert changed.status_code == 200 and changed.json()["cache"] is True
        assert ask(http, question="edited key").headers["x-sluice-cache"] == "miss"
        assert ask(http, question="edited key").headers["x-sluice-cache"] == "hit"
        cleared = admin.patch(f"/admin/v1/keys/{key_id}", json={"cache": None})
        assert cleared.status_code == 200 and cleared.json()["cache"] is None
        assert admin.get(f"/admin/v1/keys/{key_id}").json()["cache"] is None
        attempts = fake.attempts
        assert "x-sluice-cache" not in ask(http, question="edited key").headers
        assert fake.attempts == attempts + 1
        refused = admin.patch(f"/admin/v1/keys/{key_id}", json={"cache": "sometimes"})
        assert refused.status_code == 422

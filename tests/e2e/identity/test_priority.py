"""A user's JWT carries the user's priority class (else the workspace's) to the scheduler, seen through HTTP.

A deployment with one slot is held by a streamed call; a user with the class ``batch`` of their own queues first,
then a user without one in a workspace whose class is ``interactive``. ``GET /v1/queue`` shows each waiting with
that class, and when the slot frees the interactive user is served first though they queued second.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.identity.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, Api, identity_settings, make_user
from tests.support.server import SluiceServer

WAIT = 30.0
ONE_SLOT = {
    "providers": [{"name": "slow", "kind": "mock", "mock": {"tokens_per_second": 20, "reply_tokens": 2000}}],
    "models": [{"name": "one-slot", "deployments": [{"provider": "slow", "capacity": 1}]}],
    "scheduling": {"aging_seconds": 3600},  # no aging while the test polls: only the classes decide
}


def waiting(server: SluiceServer, token: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{server.url}/v1/queue", headers={"authorization": f"Bearer {token}"}, timeout=10)
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data


def until_waiting(server: SluiceServer, token: str) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        entries = waiting(server, token)
        if entries:
            return entries[0]
        time.sleep(0.02)
    raise AssertionError("the request never appeared in the queue")


def test_user_and_workspace_classes_reach_the_scheduler(tmp_path: Path) -> None:
    with SluiceServer(identity_settings(tmp_path, **ONE_SLOT)) as server:
        api = Api(server.url)
        admin = api.login(ADMIN_EMAIL, ADMIN_PASSWORD)["access_token"]
        fast_lane = api.post("/workspaces", admin, json={"name": "fast-lane", "priority": "interactive"}).json()["id"]
        batchy = make_user(api, admin, "batchy@example.com")
        batchy_id = api.get("/me", batchy).json()["user_id"]
        assert api.call("PATCH", f"/users/{batchy_id}", admin, json={"priority": "batch"}).status_code == 200
        eager = make_user(api, admin, "eager@example.com", fast_lane)
        assert api.get("/me", batchy).json()["priority"] == "batch"
        assert api.get("/me", eager).json()["priority"] == "interactive"

        finished: list[str] = []
        failures: list[str] = []

        def ask(name: str, token: str) -> None:
            body = {"model": "one-slot", "max_tokens": 2, "messages": [{"role": "user", "content": "hi"}]}
            response = httpx.post(
                f"{server.url}/v1/chat/completions",
                headers={"authorization": f"Bearer {token}"},
                json=body,
                timeout=WAIT,
            )
            (finished if response.status_code == 200 else failures).append(name)

        chat = {"model": "one-slot", "stream": True, "messages": [{"role": "user", "content": "a long story"}]}
        with (
            httpx.Client(base_url=server.url, timeout=WAIT) as holder,
            holder.stream(
                "POST", "/v1/chat/completions", headers={"authorization": f"Bearer {server.master_key}"}, json=chat
            ) as stream,
        ):
            chunks = stream.iter_bytes()  # kept: a dropped iterator would close the stream at once
            next(chunks)  # the slot is taken for as long as this stream stays open
            threads = [threading.Thread(target=ask, args=("batchy", batchy))]
            threads[0].start()
            assert until_waiting(server, batchy)["priority"] == "batch"
            threads.append(threading.Thread(target=ask, args=("eager", eager)))
            threads[1].start()
            assert until_waiting(server, eager)["priority"] == "interactive"
            # Leaving the block closes the stream: the gateway cancels it and frees the slot.
        for thread in threads:
            thread.join(timeout=WAIT)
        assert failures == []
        assert finished == ["eager", "batchy"]
        api.close()

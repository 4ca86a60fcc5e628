"""Exchange.connected: the server's own flag, read before the disconnect watcher has run."""

from __future__ import annotations

from typing import Any

from sluice.server.exchange import Exchange


class Cycle:
    """Stands in for uvicorn's request cycle: ``receive`` is its bound method, ``disconnected`` its flag."""

    def __init__(self) -> None:
        self.disconnected = False

    async def receive(self) -> dict[str, Any]:
        return {"type": "http.disconnect"}


async def send(message: Any) -> None:
    return None


def test_connected_follows_the_servers_flag_and_marks_the_client_gone() -> None:
    cycle = Cycle()
    ex = Exchange({"type": "http", "headers": []}, cycle.receive, send, "r1", 0.0)
    assert ex.connected()
    cycle.disconnected = True
    assert not ex.connected()
    assert ex.client_gone  # so the cancellation that follows is taken for the client's, not a shutdown


def test_a_receive_without_the_flag_counts_as_connected_until_told() -> None:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request"}

    ex = Exchange({"type": "http", "headers": []}, receive, send, "r1", 0.0)
    assert ex.connected()
    ex.client_gone = True
    assert not ex.connected()

"""Which client connection to let go when there are too many: the idlest, never the newest.

The first bound closed every connection beyond ``server.max_connections`` as it arrived. Under 4,200 idle sockets
that meant every *new* client was refused, ``/health`` included, while the attacker's sockets, renewed at every
header timeout, held the server (issue 16.5). Now, per process:

- when a connection arrives over the bound, the connection that has been idle longest (no request in flight:
  waiting for its first or next request's headers, or trickling them) is closed to make room; the new one is
  refused only when no connection is idle (every one is busy with a request);
- ``server.reserved_connections`` of the bound are kept for ``/health/*``: a connection let in only because of the
  reserve (every other slot is busy) may ask for health or readiness; anything else gets 503 and the connection
  closes after its one answer;
- one client address holds at most ``server.max_connections_per_client``; beyond that its own idlest connection
  goes (or the new one, if all of its connections are busy). An IPv6 client is its /64 (one host gets a whole
  /64 to pick from). Addresses in ``server.trusted_proxies`` carry many clients' traffic and are not capped.

The idle connections are kept in the order they became idle, so the idlest is found in constant time.
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict
from collections.abc import Sequence
from typing import Protocol

RESERVED_PATHS = frozenset({b"/health/live", b"/health/ready", b"/health"})


class Connection(Protocol):
    def close_idle(self) -> None: ...


class ConnectionTable:
    """Every open connection of one server process, by idleness and client address."""

    def __init__(self, max_connections: int, reserved: int, per_client: int, trusted: Sequence[str] = ()) -> None:
        self.max_connections = max_connections
        self.general = max(1, max_connections - reserved)  # connections anyone may hold; the rest is the reserve
        self.per_client = per_client
        self._trusted = [ipaddress.ip_network(cidr, strict=False) for cidr in trusted]
        self._open: dict[Connection, str | None] = {}
        self._idle: OrderedDict[Connection, None] = OrderedDict()  # oldest-idle first
        self._idle_by_client: dict[str, OrderedDict[Connection, None]] = {}
        self._by_client: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._open)

    def admit(self, conn: Connection, address: str | None) -> bool | None:
        """Count a new connection and make room for it.

        True: admitted; None: admitted into the reserve only (health checks); False: refused (close it at once).
        """
        host = _client_of(address)
        if (
            host is not None
            and address is not None
            and self._capped(address)
            and self._by_client.get(host, 0) >= self.per_client
        ):
            victim = _first(self._idle_by_client.get(host))
            if victim is None:
                return False
            self._evict(victim)
        if len(self._open) >= self.general:
            victim = _first(self._idle)
            if victim is not None:
                self._evict(victim)
        if len(self._open) >= self.max_connections:
            return False
        reserve_only = len(self._open) >= self.general
        self._open[conn] = host
        if host is not None:
            self._by_client[host] = self._by_client.get(host, 0) + 1
        self.idle(conn)
        return None if reserve_only else True

    def idle(self, conn: Connection) -> None:
        """The connection waits for a request's headers (it is the newest idle one now)."""
        if conn not in self._open:
            return
        self._idle.pop(conn, None)
        self._idle[conn] = None
        host = self._open[conn]
        if host is not None:
            by_client = self._idle_by_client.setdefault(host, OrderedDict())
            by_client.pop(conn, None)
            by_client[conn] = None

    def busy(self, conn: Connection) -> None:
        """A request is in flight on the connection: it is not a candidate for closing."""
        self._idle.pop(conn, None)
        host = self._open.get(conn)
        if host is not None:
            by_client = self._idle_by_client.get(host)
            if by_client is not None:
                by_client.pop(conn, None)

    def closed(self, conn: Connection) -> None:
        if conn not in self._open:
            return
        self.busy(conn)
        host = self._open.pop(conn)
        if host is None:
            return
        left = self._by_client[host] - 1
        if left:
            self._by_client[host] = left
        else:
            del self._by_client[host]
            self._idle_by_client.pop(host, None)

    def _evict(self, victim: Connection) -> None:
        self.closed(victim)  # at once: its transport reports the loss only on a later loop turn
        victim.close_idle()

    def _capped(self, host: str) -> bool:
        """Whether the peer address (not its /64: a trusted proxy may be one IPv6 address) has a share."""
        if not self._trusted:
            return True
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return True
        return not any(address in trusted for trusted in self._trusted)


def _client_of(address: str | None) -> str | None:
    """The unit one share is counted for: the IPv4 address, or the IPv6 address's /64."""
    if address is None or ":" not in address:
        return address
    try:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    except ValueError:
        return address


def _first(ordered: OrderedDict[Connection, None] | None) -> Connection | None:
    if not ordered:
        return None
    return next(iter(ordered))

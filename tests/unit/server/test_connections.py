"""ConnectionTable (issue 16.5): the idlest connection goes first, busy ones never; a reserve; a share per address."""

from __future__ import annotations

from sluice.server.connections import ConnectionTable


class Conn:
    def __init__(self, name: str) -> None:
        self.name = name
        self.closed = False

    def close_idle(self) -> None:
        self.closed = True


def open_many(table: ConnectionTable, count: int, host: str = "10.0.0.1") -> list[Conn]:
    conns = [Conn(f"{host}-{i}") for i in range(count)]
    for conn in conns:
        assert table.admit(conn, host) is True
    return conns


def test_over_the_bound_the_idlest_connection_goes_not_the_newest() -> None:
    table = ConnectionTable(max_connections=4, reserved=0, per_client=100)
    first, second, third, fourth = open_many(table, 4)
    table.busy(first)
    table.idle(first)  # answered a request just now: the newest idle one
    newcomer = Conn("new")
    assert table.admit(newcomer, "10.0.0.2") is True
    assert second.closed and not (first.closed or third.closed or fourth.closed or newcomer.closed)
    assert len(table) == 4


def test_busy_connections_are_never_closed_and_the_reserve_is_for_health_checks() -> None:
    table = ConnectionTable(max_connections=4, reserved=2, per_client=100)
    busy = open_many(table, 2)
    for conn in busy:
        table.busy(conn)
    reserved = [Conn("r1"), Conn("r2")]
    for conn in reserved:
        assert table.admit(conn, "10.0.0.2") is None  # only the reserve was left
        table.busy(conn)  # its health check arrives
    assert table.admit(Conn("refused"), "10.0.0.3") is False  # every connection busy: the newcomer is refused
    assert not any(conn.closed for conn in busy + reserved)


def test_one_address_makes_room_from_its_own_connections() -> None:
    table = ConnectionTable(max_connections=100, reserved=0, per_client=3)
    others = open_many(table, 3, "10.0.0.9")
    mine = open_many(table, 3)
    table.busy(mine[0])
    newest = Conn("mine-new")
    assert table.admit(newest, "10.0.0.1") is True
    assert mine[1].closed and not mine[0].closed and not any(conn.closed for conn in others)
    for conn in [*mine[2:], newest]:
        table.busy(conn)
    assert table.admit(Conn("mine-refused"), "10.0.0.1") is False  # all of its own are busy


def test_trusted_proxies_are_not_capped_per_address() -> None:
    table = ConnectionTable(max_connections=100, reserved=0, per_client=2, trusted=["10.0.0.0/24"])
    proxied = open_many(table, 10)
    assert not any(conn.closed for conn in proxied)


def test_a_closed_connection_leaves_every_count() -> None:
    table = ConnectionTable(max_connections=2, reserved=0, per_client=1)
    (conn,) = open_many(table, 1)
    table.closed(conn)
    table.closed(conn)  # a second report (eviction, then the transport's own) changes nothing
    assert len(table) == 0
    again = Conn("again")
    assert table.admit(again, "10.0.0.1") is True and not conn.closed


def test_an_ipv6_client_is_its_64() -> None:
    table = ConnectionTable(max_connections=100, reserved=0, per_client=2)
    first, second = Conn("a"), Conn("b")
    assert table.admit(first, "2001:db8:1:2::10") is True
    assert table.admit(second, "2001:db8:1:2::20") is True
    assert table.admit(Conn("c"), "2001:db8:1:2:ffff::1") is True  # the same /64: its idlest goes
    assert first.closed and not second.closed
    other = Conn("other")
    assert table.admit(other, "2001:db8:1:3::1") is True and not second.closed  # another /64


def test_a_trusted_ipv6_proxy_is_not_capped() -> None:
    table = ConnectionTable(max_connections=100, reserved=0, per_client=1, trusted=["2001:db8:1:2::10/128"])
    conns = [Conn(str(i)) for i in range(3)]
    for conn in conns:
        assert table.admit(conn, "2001:db8:1:2::10") is True
    assert not any(conn.closed for conn in conns)

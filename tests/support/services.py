"""Access to the real PostgreSQL, Redis and RabbitMQ on this machine, for the backends' tests.

A test that needs a service calls one of the ``require_*`` functions: when the service is absent it skips with
the reason, unless ``SLUICE_REQUIRE_SERVICES=1`` (set by CI), where an absent service is a failure, so CI can
never pass by skipping.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import pytest

POSTGRES_HOST = os.environ.get("SLUICE_TEST_PG_HOST", "127.0.0.1")
POSTGRES_PORT = int(os.environ.get("SLUICE_TEST_PG_PORT", "5432"))
POSTGRES_ADMIN_DB = os.environ.get("SLUICE_TEST_PG_DB", "test")
REDIS_URL = os.environ.get("SLUICE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
RABBITMQ_URL = os.environ.get("SLUICE_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def _require(name: str, host: str, port: int) -> None:
    if _port_open(host, port):
        return
    reason = f"{name} is not reachable at {host}:{port}"
    if os.environ.get("SLUICE_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{reason} and SLUICE_REQUIRE_SERVICES=1", pytrace=False)
    pytest.skip(reason)


def require_postgres() -> None:
    _require("PostgreSQL", POSTGRES_HOST, POSTGRES_PORT)


def require_redis() -> None:
    _require("Redis", "127.0.0.1", int(REDIS_URL.rsplit(":", 1)[1].split("/")[0]))


def require_rabbitmq() -> None:
    _require("RabbitMQ", "127.0.0.1", 5672)


def postgres_url(database: str) -> str:
    return f"postgresql+asyncpg://postgres@{POSTGRES_HOST}:{POSTGRES_PORT}/{database}"


async def _admin(statement: str) -> None:
    conn = await asyncpg.connect(host=POSTGRES_HOST, port=POSTGRES_PORT, user="postgres", database=POSTGRES_ADMIN_DB)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@asynccontextmanager
async def fresh_postgres_database() -> AsyncIterator[str]:
    """A new, empty database for one test (or one server), dropped afterwards."""
    require_postgres()
    name = "sluice_t_" + secrets.token_hex(6)
    await _admin(f'CREATE DATABASE "{name}"')
    try:
        yield postgres_url(name)
    finally:
        await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def create_postgres_database() -> str:
    """Synchronous variant for fixtures: returns the URL; drop it with :func:`drop_postgres_database`."""
    require_postgres()
    name = "sluice_t_" + secrets.token_hex(6)
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    return postgres_url(name)


def drop_postgres_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

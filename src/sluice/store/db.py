"""The database engine, sessions (one unit of work each) and migrations."""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg
import structlog
from sqlalchemy import Connection, event, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from sluice.config import DatabaseConfig
from sluice.store.private import private_database

if TYPE_CHECKING:
    from alembic.config import Config

# Alembic is imported where migrations are looked at, not here: a CLI command that finds its schema current
# never loads it (fast start, see cli.py).
log = structlog.get_logger("sluice.db")
MIGRATIONS = Path(__file__).with_name("migrations")
# Several replicas (or an init container per pod) may migrate one PostgreSQL database at once: the first takes this
# transaction-scoped advisory lock and upgrades, the others wait for it and then find the schema already current.
MIGRATION_LOCK = 0x51_75_1C_E0


# What "the database is unavailable" arrives as: SQLAlchemy's wrapped errors, and, while a connection is being made,
# the driver's own (a refused or reset socket is an OSError such as ConnectionRefusedError, a server shutting down an
# asyncpg.PostgresError, a hung server an asyncio.TimeoutError from the connect or command timeout).
UNAVAILABLE: tuple[type[Exception], ...] = (
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.DisconnectionError,
    sa_exc.TimeoutError,
    OSError,
    TimeoutError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
)
# Everything a lookup that should fail closed treats as "cannot verify now".
LOOKUP_ERRORS: tuple[type[Exception], ...] = (sa_exc.SQLAlchemyError, *UNAVAILABLE)


def alembic_config() -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


class Database:
    """The engine and its sessions.

    ``config`` sets PostgreSQL's deadlines (the server passes its settings; the CLI passes none, so a long migration
    or export is never cut short). ``request_deadline`` is how long a request waits on a lookup before it uses what
    it already knew or answers 503 (see :mod:`sluice.identity.lookups`).
    """

    def __init__(self, url: str, echo: bool = False, config: DatabaseConfig | None = None) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self.request_deadline = (config or DatabaseConfig()).request_deadline_seconds
        kwargs: dict[str, Any] = {"echo": echo}
        if self.is_sqlite:
            kwargs["connect_args"] = {"timeout": 30}
            _owner_only_sqlite_file(url)
        else:
            kwargs.update(pool_size=10, max_overflow=20, pool_pre_ping=True, pool_recycle=1800)
            if config is not None:
                kwargs.update(pool_timeout=config.pool_timeout_seconds, connect_args=_postgres_deadlines(config))
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        else:
            event.listen(self.engine.sync_engine, "connect", self._track)
        # The driver's connections (weakly: the pool owns them), so that shutdown can cut them all at once.
        self._drivers: weakref.WeakSet[Any] = weakref.WeakSet()
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A unit of work: committed when the block ends normally, rolled back otherwise."""
        async with self.sessions() as session, session.begin():
            yield session

    async def migrate(self) -> None:
        """Bring the schema to the newest revision."""
        if self.is_sqlite:
            await self._migrate_sqlite()
            return
        async with self.engine.begin() as conn:
            await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
            await conn.run_sync(_upgrade)

    async def _migrate_sqlite(self) -> None:
        """SQLite alters a table by copying, dropping and renaming it: with foreign keys enforced, dropping ``users``
        would cascade every membership, refresh token and reset link away. So migrations run with them off (set
        before the transaction begins, as SQLite requires) and the result is checked once they are back on."""
        async with self.engine.connect() as conn:
            await conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
            try:
                await conn.run_sync(_upgrade)
                await conn.commit()
            except BaseException:
                await conn.invalidate()  # never back to the pool with foreign keys off
                raise
            await conn.exec_driver_sql("PRAGMA foreign_keys=ON")
            broken = (await conn.exec_driver_sql("PRAGMA foreign_key_check")).all()
            if broken:
                log.warning("rows refer to missing rows after the migration", tables=sorted({r[0] for r in broken}))

    async def current_revision(self) -> str | None:
        from alembic.runtime.migration import MigrationContext

        async with self.engine.connect() as conn:
            return await conn.run_sync(lambda c: MigrationContext.configure(c).get_current_revision())

    async def is_current(self) -> bool:
        from alembic.script import ScriptDirectory

        head = ScriptDirectory.from_config(alembic_config()).get_current_head()
        return await self.current_revision() == head

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    def _track(self, dbapi_connection: Any, _record: Any) -> None:
        driver = getattr(dbapi_connection, "driver_connection", None)
        if driver is not None:
            self._drivers.add(driver)

    def abort(self) -> int:
        """Close every connection's socket now (shutdown with a hung server); returns how many were open.

        Whatever waits on one of them (a query, the rollback after its cancellation) fails at once instead of
        waiting out the statement timeout.
        """
        cut = 0
        for driver in list(self._drivers):
            terminate = getattr(driver, "terminate", None)
            is_closed = getattr(driver, "is_closed", lambda: True)
            if terminate is not None and not is_closed():
                terminate()
                cut += 1
        return cut

    async def close(self) -> None:
        await self.engine.dispose()


def _postgres_deadlines(config: DatabaseConfig) -> dict[str, Any]:
    """asyncpg's connect arguments: a connect timeout, and a statement timeout both sides enforce.

    The server's ``statement_timeout`` ends a slow query; the client's ``command_timeout`` (also bounding the pool's
    pre-ping) ends the wait on a server that stopped answering at all (SIGSTOP, a dead network path).
    """
    return {
        "timeout": config.connect_timeout_seconds,
        "command_timeout": config.statement_timeout_seconds,
        "server_settings": {"statement_timeout": str(int(config.statement_timeout_seconds * 1000))},
    }


def _owner_only_sqlite_file(url: str) -> None:
    """Create the database file owner-only before SQLite does (SQLite would follow the umask, typically 0644)."""
    database = make_url(url).database
    if database and database != ":memory:" and not database.startswith("file:"):
        with contextlib.suppress(OSError):  # unusable path: connecting will say so, in the caller's terms
            private_database(Path(database))


def _upgrade(connection: Connection) -> None:
    from alembic import command

    cfg = alembic_config()
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, "head")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()

"""The database: an async SQLAlchemy engine, sessions for reads and for writes.

SQLite (the default) gets WAL and a busy timeout on every new connection, and write transactions
begin ``IMMEDIATE``: a writer takes SQLite's write lock when it begins, waiting up to the busy
timeout, instead of upgrading a read lock mid-transaction, which fails at once with "database is
locked" under concurrent registrations. Reads begin deferred and, in WAL mode, never block.
This follows the SQLAlchemy pysqlite/aiosqlite docs: disable the driver's own BEGIN and emit ours
from the engine's "begin" event.

PostgreSQL works through ``postgresql+asyncpg://`` (the ``postgres`` extra) with no hooks.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import ConnectionPoolEntry

from service.models import Base
from service.settings import Settings

BEGIN_MODE_OPTION = "sqlite_begin_mode"
"""Execution option naming how a SQLite transaction begins (DEFERRED or IMMEDIATE)."""


class Database:
    """The engine and its session factories; built by ``create_app``, disposed on shutdown."""

    def __init__(self, settings: Settings) -> None:
        url = make_url(settings.database_url)
        self.url = url
        self.is_sqlite = url.get_backend_name() == "sqlite"
        engine_args: dict[str, Any] = {}
        if not (self.is_sqlite and url.database in (None, "", ":memory:")):
            engine_args.update(
                pool_size=settings.db_pool_size,
                max_overflow=settings.db_max_overflow,
                pool_timeout=settings.db_pool_timeout_s,
                pool_pre_ping=not self.is_sqlite,
            )
        self.engine: AsyncEngine = create_async_engine(url, **engine_args)
        if self.is_sqlite:
            _install_sqlite_hooks(self.engine, busy_timeout_ms=settings.sqlite_busy_timeout_ms)
            writer_engine = self.engine.execution_options(**{BEGIN_MODE_OPTION: "IMMEDIATE"})
        else:
            writer_engine = self.engine
        self._reader = async_sessionmaker(self.engine, expire_on_commit=False)
        self._writer = async_sessionmaker(writer_engine, expire_on_commit=False)

    @property
    def display_url(self) -> str:
        """The URL with any password hidden, for logs."""
        return self.url.render_as_string(hide_password=True)

    @asynccontextmanager
    async def read_session(self) -> AsyncIterator[AsyncSession]:
        """A session for reads (a deferred transaction, rolled back at the end)."""
        async with self._reader() as session:
            yield session

    @asynccontextmanager
    async def write_session(self) -> AsyncIterator[AsyncSession]:
        """A session in a write transaction, committed on success, rolled back on error."""
        async with self._writer() as session, session.begin():
            yield session

    async def create_tables(self) -> None:
        """Create missing tables (start-up)."""
        async with self.engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)

    async def ping(self) -> None:
        """Run ``SELECT 1``; raises the driver's error when the database is unreachable."""
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        """Close every pooled connection (shutdown)."""
        await self.engine.dispose()


def _install_sqlite_hooks(engine: AsyncEngine, *, busy_timeout_ms: int) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        # Let SQLAlchemy, not the driver, emit BEGIN (see on_begin).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
        finally:
            cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get(BEGIN_MODE_OPTION, "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {'IMMEDIATE' if mode == 'IMMEDIATE' else 'DEFERRED'}")

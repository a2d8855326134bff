"""The database: an async SQLAlchemy engine, sessions for reads and for writes.

SQLite (the default) gets WAL and a busy timeout on every new connection, and write transactions
begin ``IMMEDIATE``: a writer takes SQLite's write lock when it begins, waiting up to the busy
timeout, instead of upgrading a read lock mid-transaction, which fails at once with "database is
locked" under concurrent registrations. Reads begin deferred and, in WAL mode, never block.
This follows the SQLAlchemy pysqlite/aiosqlite docs: disable the driver's own BEGIN and emit ours
from the engine's "begin" event.

PostgreSQL works through ``postgresql+asyncpg://`` (the ``postgres`` extra).

Every statement runs under the query timeout (``service.query_timeout``). Sessions check their
connection out when they open, so the pool monitor can count checkouts that had to wait, and so
the slow-query fault (``ENGINES_FAULT_SLOW_QUERY_MS``) holds a real pooled connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import sqlalchemy.exc
from opentelemetry.trace import Tracer
from sqlalchemy import event, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import ConnectionPoolEntry

from service.errors import DatabaseError
from service.faults import in_fault_scope
from service.models import Base
from service.pool_metrics import PoolMonitor
from service.query_timeout import (
    install_postgres_query_timeout,
    install_sqlite_query_timeout,
    postgres_connect_args,
    timeout_error,
)
from service.settings import Settings
from service.tracing import Tracing, child_span

BEGIN_MODE_OPTION = "sqlite_begin_mode"
"""Execution option naming how a SQLite transaction begins (DEFERRED or IMMEDIATE)."""

T = TypeVar("T")


class Database:
    """The engine and its session factories; built by ``create_app``, disposed on shutdown."""

    def __init__(
        self,
        settings: Settings,
        *,
        slow_query_fault_s: float = 0.0,
        tracing: Tracing | None = None,
    ) -> None:
        """``slow_query_fault_s``: the slow-query fault (0 = off), applied to sessions of
        requests in fault scope (``service.faults``); ``tracing``: a span for every statement
        and for the fault (None: tracing off)."""
        url = make_url(settings.database_url)
        self.url = url
        self.is_sqlite = url.get_backend_name() == "sqlite"
        self.query_timeout_s = settings.query_timeout_s
        self.slow_query_fault_s = slow_query_fault_s
        engine_args: dict[str, Any] = {}
        if not (self.is_sqlite and url.database in (None, "", ":memory:")):
            engine_args.update(
                pool_size=settings.db_pool_size,
                max_overflow=settings.db_max_overflow,
                pool_timeout=settings.db_pool_timeout_s,
                pool_pre_ping=not self.is_sqlite,
            )
        is_asyncpg = url.get_backend_name() == "postgresql" and url.get_driver_name() == "asyncpg"
        if is_asyncpg:
            engine_args["connect_args"] = postgres_connect_args(timeout_s=self.query_timeout_s)
        self.engine: AsyncEngine = create_async_engine(url, **engine_args)
        self.pool_monitor = PoolMonitor(self.engine.pool, max_overflow=settings.db_max_overflow)
        self.tracer: Tracer | None = None
        if tracing is not None:
            tracing.instrument_engine(self.engine)
            self.tracer = tracing.tracer
        if self.is_sqlite:
            _install_sqlite_hooks(self.engine, busy_timeout_ms=settings.sqlite_busy_timeout_ms)
            install_sqlite_query_timeout(self.engine, timeout_s=self.query_timeout_s)
            writer_engine = self.engine.execution_options(**{BEGIN_MODE_OPTION: "IMMEDIATE"})
        else:
            if is_asyncpg:
                install_postgres_query_timeout(self.engine, timeout_s=self.query_timeout_s)
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
            await self._check_out(session)
            yield session

    @asynccontextmanager
    async def write_session(self) -> AsyncIterator[AsyncSession]:
        """A session in a write transaction, committed on success, rolled back on error."""
        async with self._writer() as session, session.begin():
            await self._check_out(session)
            yield session

    async def _check_out(self, session: AsyncSession) -> None:
        """Take the session's connection now, counting a wait for the pool, then apply the
        slow-query fault while holding it."""
        await self._metered_checkout(session.connection())
        if self.slow_query_fault_s > 0 and in_fault_scope():
            await self._slow_query_fault()

    async def _metered_checkout(self, checkout: Awaitable[T]) -> T:
        """Await a pool checkout, telling the pool monitor whether it waited or gave up."""
        monitor = self.pool_monitor
        waited = monitor.saturated()
        try:
            result = await checkout
        except sqlalchemy.exc.TimeoutError:
            monitor.note_timeout()
            raise
        except Exception as exc:
            # Any other failure to get a connection is a database that cannot be reached. On
            # PostgreSQL, asyncpg's connect fails with errors classify() cannot tell from a bug
            # (a raw ConnectionRefusedError, or a bare DBAPIError for "database does not
            # exist", "the database system is shutting down"...): a 500 instead of a 503.
            raise DatabaseError() from exc
        monitor.note_checkout(waited=waited)
        return result

    async def _slow_query_fault(self) -> None:
        # A query this slow would be interrupted at the query timeout; so is the fault.
        with child_span(self.tracer, "fault.slow_query"):
            if self.slow_query_fault_s >= self.query_timeout_s:
                await asyncio.sleep(self.query_timeout_s)
                raise timeout_error(self.query_timeout_s)
            await asyncio.sleep(self.slow_query_fault_s)

    async def create_tables(self) -> None:
        """Create missing tables (start-up)."""
        async with self.engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)

    async def ping(self) -> None:
        """Run ``SELECT 1``; raises the driver's error when the database is unreachable."""
        conn = await self._metered_checkout(self.engine.connect())
        try:
            await conn.execute(text("SELECT 1"))
        finally:
            await conn.close()

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

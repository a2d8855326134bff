"""Query timeouts: every database statement runs under ``ENGINES_QUERY_TIMEOUT_S``.

SQLite (aiosqlite): cancelling the awaiting task (``asyncio.timeout``) would stop the wait, not the
statement: it would keep running in aiosqlite's thread, and the connection would stay busy behind
it. So each statement arms a timer on the event loop that calls sqlite3's
``Connection.interrupt()`` (thread-safe) at the deadline. The statement then fails in its own
thread with "interrupted" (SQLite undoes it), the ``handle_error`` hook turns that failure into
``QueryTimeout``, and, since nothing was cancelled, SQLAlchemy does not invalidate the connection:
the session rolls back and the connection goes back to the pool, usable.

PostgreSQL (asyncpg): the server enforces ``statement_timeout`` (set on every connection by
``postgres_connect_args``); its cancellation (SQLSTATE 57014) becomes ``QueryTimeout`` the same way.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, ExceptionContext
from sqlalchemy.ext.asyncio import AsyncEngine

from service.errors import QueryTimeout

DEADLINE_KEY = "engines_query_deadline"
"""Where a connection's armed deadline is kept (``Connection.info``) between the hooks."""

POSTGRES_QUERY_CANCELED = "57014"
"""SQLSTATE of a statement cancelled by statement_timeout."""


@dataclass(slots=True)
class _Deadline:
    """One statement's timer, and whether it went off."""

    timeout_s: float
    target: Any
    """The sqlite3.Connection to interrupt."""
    handle: asyncio.TimerHandle | None = None
    fired: bool = field(default=False)

    def arm(self) -> None:
        self.handle = asyncio.get_running_loop().call_later(self.timeout_s, self._interrupt)

    def disarm(self) -> None:
        if self.handle is not None:
            self.handle.cancel()

    def _interrupt(self) -> None:
        self.fired = True
        self.target.interrupt()


def timeout_error(timeout_s: float) -> QueryTimeout:
    """The error a statement past its deadline ends in."""
    return QueryTimeout(f"database query ran past the {timeout_s:g} s query timeout")


def install_sqlite_query_timeout(engine: AsyncEngine, *, timeout_s: float) -> None:
    """Interrupt any statement on ``engine`` (aiosqlite) still running after ``timeout_s``."""
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "before_cursor_execute")
    def arm(conn: Connection, *_args: Any) -> None:
        # aiosqlite.Connection keeps its sqlite3.Connection private; interrupt() is the one
        # call on it that is safe from another thread, and the only one made here.
        sqlite_connection = conn.connection.driver_connection._conn  # type: ignore[union-attr]
        deadline = _Deadline(timeout_s=timeout_s, target=sqlite_connection)
        deadline.arm()
        conn.info[DEADLINE_KEY] = deadline

    @event.listens_for(sync_engine, "after_cursor_execute")
    def disarm(conn: Connection, *_args: Any) -> None:
        _disarm(conn)

    @event.listens_for(sync_engine, "handle_error")
    def classify(context: ExceptionContext) -> BaseException | None:
        deadline = _disarm(context.connection) if context.connection is not None else None
        if deadline is not None and deadline.fired:
            return timeout_error(timeout_s)
        return None


def _disarm(conn: Connection) -> _Deadline | None:
    deadline: _Deadline | None = conn.info.pop(DEADLINE_KEY, None)
    if deadline is not None:
        deadline.disarm()
    return deadline


def postgres_connect_args(*, timeout_s: float) -> dict[str, Any]:
    """asyncpg ``connect_args`` that make the server cancel statements past ``timeout_s``."""
    return {"server_settings": {"statement_timeout": str(max(1, round(timeout_s * 1000)))}}


def install_postgres_query_timeout(engine: AsyncEngine, *, timeout_s: float) -> None:
    """Map the server's statement-timeout cancellation to ``QueryTimeout``."""

    @event.listens_for(engine.sync_engine, "handle_error")
    def classify(context: ExceptionContext) -> BaseException | None:
        original = context.original_exception
        state = getattr(original, "sqlstate", None) or getattr(original, "pgcode", None)
        if state == POSTGRES_QUERY_CANCELED:
            return timeout_error(timeout_s)
        return None

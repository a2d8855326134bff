"""SQLite set-up: WAL, busy timeout, and write transactions that take the write lock at BEGIN."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import text

from service.database import Database
from tests.service.engines_api import SettingsFactory


async def test_connections_use_wal_and_a_busy_timeout(make_settings: SettingsFactory) -> None:
    database = Database(make_settings(sqlite_busy_timeout_ms=1234))
    try:
        await database.create_tables()
        async with database.engine.connect() as conn:
            assert (await conn.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
            assert (await conn.execute(text("PRAGMA busy_timeout"))).scalar() == 1234
            assert (await conn.execute(text("PRAGMA foreign_keys"))).scalar() == 1
    finally:
        await database.dispose()


async def test_a_write_session_holds_the_write_lock_from_its_begin(
    make_settings: SettingsFactory, tmp_path: Path
) -> None:
    """BEGIN IMMEDIATE: a second writer waits at BEGIN (busy timeout) rather than failing later
    with "database is locked" when it upgrades a read lock."""
    database = Database(make_settings())
    other = sqlite3.connect(tmp_path / "engines.db", timeout=0, isolation_level=None)
    try:
        await database.create_tables()
        async with database.write_session() as session:
            await session.execute(text("SELECT 1"))
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")
        async with database.read_session() as session:
            await session.execute(text("SELECT 1"))
            other.execute("BEGIN IMMEDIATE")  # a reader does not block writers
            other.execute("ROLLBACK")
    finally:
        other.close()
        await database.dispose()

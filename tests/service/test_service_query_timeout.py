"""Query timeouts: a slow statement is really interrupted, answered query_timeout, and the
connection it ran on goes back to the pool usable."""

from __future__ import annotations

import time

import pytest
from fastapi import FastAPI
from sqlalchemy import text

from service.app import create_app
from service.dependencies import ServicesDep
from tests.service.engines_api import (
    SettingsFactory,
    assert_error,
    assert_retry_after,
    log_lines,
    open_client,
)

SLOW_CTE = (
    "WITH RECURSIVE counter(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM counter "
    "WHERE x < 200000000) SELECT count(*) FROM counter"
)
"""200 million rows: about 25 s of SQLite work here, so an answer within a few seconds proves
the statement was interrupted, not waited for."""

TIMEOUT_S = 0.5


def add_slow_route(app: FastAPI) -> None:
    """A test-only endpoint that runs the slow recursive CTE through the service's sessions."""

    @app.get("/test/slow-query")
    async def slow_query(services: ServicesDep) -> dict[str, int]:
        async with services.database.read_session() as session:
            count = await session.scalar(text(SLOW_CTE))
        return {"count": int(count or 0)}

    @app.get("/test/fast-query")
    async def fast_query(services: ServicesDep) -> dict[str, int]:
        async with services.database.read_session() as session:
            one = await session.scalar(text("SELECT 1"))
        return {"one": int(one or 0)}


async def test_a_slow_query_is_interrupted_at_the_timeout_and_the_connection_stays_usable(
    make_settings: SettingsFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    # One connection only: the next request can succeed only if the interrupted statement let
    # go of it (a statement merely abandoned by asyncio would keep it busy for ~25 s).
    app = create_app(make_settings(query_timeout_s=TIMEOUT_S, db_pool_size=1, db_max_overflow=0))
    add_slow_route(app)
    async with open_client(app) as client:
        started = time.perf_counter()
        response = await client.get("/test/slow-query")
        elapsed = time.perf_counter() - started
        assert_error(response, 503, "query_timeout")
        assert_retry_after(response)
        assert TIMEOUT_S <= elapsed < 5, elapsed

        started = time.perf_counter()
        after = await client.get("/test/fast-query")
        assert after.status_code == 200 and after.json() == {"one": 1}
        assert time.perf_counter() - started < 5
        assert (await client.get("/health")).status_code == 200
        pool = app.state.services.database.pool_monitor.snapshot()
        assert pool.checked_out == 0 and pool.checked_in == 1  # the same connection, back
    (line,) = [x for x in log_lines(capsys.readouterr().out, "request") if x["status_code"] == 503]
    assert (line["endpoint"], line["error_kind"]) == ("/test/slow-query", "query_timeout")


async def test_a_write_interrupted_mid_transaction_is_rolled_back(
    make_settings: SettingsFactory,
) -> None:
    app = create_app(make_settings(query_timeout_s=TIMEOUT_S, db_pool_size=1, db_max_overflow=0))

    @app.post("/test/slow-write")
    async def slow_write(services: ServicesDep) -> dict[str, str]:
        async with services.database.write_session() as session:
            await session.execute(
                text(
                    "INSERT INTO users (email, password_hash, created_at) "
                    "VALUES ('w@example.org', x'00', CURRENT_TIMESTAMP)"
                )
            )
            await session.execute(text(SLOW_CTE))
        return {"status": "written"}

    async with open_client(app) as client:
        assert_error(await client.post("/test/slow-write"), 503, "query_timeout")
        # The write lock was released (a register needs it) and the insert did not survive.
        registered = await client.post(
            "/api/auth/register", json={"email": "w@example.org", "password": "password123"}
        )
        assert registered.status_code == 201, registered.text


async def test_the_slow_query_fault_past_the_timeout_is_a_query_timeout(
    make_settings: SettingsFactory,
) -> None:
    app = create_app(make_settings(query_timeout_s=0.3, fault_slow_query_ms=3000))
    add_slow_route(app)
    async with open_client(app) as client:
        started = time.perf_counter()
        response = await client.get("/test/fast-query")
        assert_error(response, 503, "query_timeout")
        assert 0.3 <= time.perf_counter() - started < 2.5  # cut at the timeout, not after 3 s
        assert (await client.get("/health")).status_code == 200  # /health is never faulted


async def test_postgres_statements_are_cancelled_by_the_server_at_the_timeout(
    make_settings: SettingsFactory, postgres_url: str
) -> None:
    # postgres_url: a fresh database on a throwaway cluster (or ENGINES_TEST_POSTGRES_URL's server).
    app = create_app(
        make_settings(
            database_url=postgres_url, query_timeout_s=TIMEOUT_S, db_pool_size=1, db_max_overflow=0
        )
    )

    @app.get("/test/pg-sleep")
    async def pg_sleep(services: ServicesDep) -> dict[str, str]:
        async with services.database.read_session() as session:
            await session.execute(text("SELECT pg_sleep(20)"))
        return {"status": "slept"}

    async with open_client(app) as client:
        started = time.perf_counter()
        response = await client.get("/test/pg-sleep")
        assert_error(response, 503, "query_timeout")
        assert time.perf_counter() - started < 10
        assert (await client.get("/health")).status_code == 200


async def test_a_postgres_write_cancelled_mid_transaction_is_rolled_back(
    make_settings: SettingsFactory, postgres_url: str
) -> None:
    app = create_app(
        make_settings(
            database_url=postgres_url, query_timeout_s=TIMEOUT_S, db_pool_size=1, db_max_overflow=0
        )
    )

    @app.post("/test/pg-slow-write")
    async def slow_write(services: ServicesDep) -> dict[str, str]:
        async with services.database.write_session() as session:
            await session.execute(
                text(
                    "INSERT INTO users (email, password_hash, created_at) "
                    "VALUES ('w@example.org', '\\x00'::bytea, now())"
                )
            )
            await session.execute(text("SELECT pg_sleep(20)"))
        return {"status": "written"}

    async with open_client(app) as client:
        started = time.perf_counter()
        assert_error(await client.post("/test/pg-slow-write"), 503, "query_timeout")
        assert time.perf_counter() - started < 10
        # The one connection is usable again and the insert did not survive.
        registered = await client.post(
            "/api/auth/register", json={"email": "w@example.org", "password": "password123"}
        )
        assert registered.status_code == 201, registered.text

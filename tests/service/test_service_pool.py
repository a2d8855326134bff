"""Database pool health: the periodic "db_pool" line, and an exhausted pool answered fast."""

from __future__ import annotations

import asyncio
import time

import pytest

from service.app import create_app
from service.dependencies import Services
from service.pool_metrics import PoolSnapshot
from tests.service.engines_api import (
    SettingsFactory,
    assert_error,
    assert_retry_after,
    auth_headers,
    log_lines,
    open_client,
)

POOL_FIELDS = {"size", "max_size", "checked_out", "checked_in", "overflow", "waited", "timed_out"}


async def test_a_db_pool_line_is_logged_every_interval_with_the_pool_figures(
    make_settings: SettingsFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    app = create_app(make_settings(pool_metrics_interval_s=0.05, db_pool_size=3))
    async with open_client(app) as client:
        await auth_headers(client, "pool@example.org")
        await asyncio.sleep(0.3)
    lines = log_lines(capsys.readouterr().out, "db_pool")
    assert len(lines) >= 3, lines
    for line in lines:
        assert set(line) >= POOL_FIELDS | {"ts", "level"}, line
    last = lines[-1]
    assert (last["size"], last["max_size"]) == (3, 3 + 10)
    assert last["checked_out"] == 0 and last["checked_in"] >= 1 and last["overflow"] == 0
    assert last["waited"] == 0 and last["timed_out"] == 0


async def test_a_last_db_pool_line_at_shutdown_keeps_the_final_interval(
    make_settings: SettingsFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    app = create_app(make_settings())  # 30 s: no periodic line during the test
    async with open_client(app) as client:
        assert (await client.get("/health")).status_code == 200
    out = capsys.readouterr().out
    (line,) = log_lines(out, "db_pool")
    assert set(line) >= POOL_FIELDS and line["interval_s"] == 30
    events = [x["event"] for x in log_lines(out)]
    assert events.index("db_pool") < events.index("database_disposed")


async def test_a_failing_tick_is_logged_and_the_next_one_still_runs(
    make_settings: SettingsFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    app = create_app(make_settings(pool_metrics_interval_s=0.05))
    services: Services = app.state.services
    monitor = services.database.pool_monitor
    real_snapshot = monitor.snapshot
    calls = 0

    def flaky_snapshot() -> PoolSnapshot:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("pool figures unavailable")
        return real_snapshot()

    # A method replaced on this one monitor, for this test.
    monitor.snapshot = flaky_snapshot  # type: ignore[method-assign]
    async with open_client(app) as client:
        await asyncio.sleep(0.3)
        assert (await client.get("/health")).status_code == 200
    out = capsys.readouterr().out
    (failure,) = log_lines(out, "db_pool_metrics_failed")
    assert "pool figures unavailable" in failure["exception"]
    assert len(log_lines(out, "db_pool")) >= 2


async def test_an_exhausted_pool_answers_503_db_pool_exhausted_fast_and_recovers(
    make_settings: SettingsFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = make_settings(
        db_pool_size=1, db_max_overflow=0, db_pool_timeout_s=0.3, pool_metrics_interval_s=0.05
    )
    app = create_app(settings)
    services: Services = app.state.services
    async with open_client(app) as client:
        headers = await auth_headers(client, "exhaust@example.org")
        async with services.database.read_session():  # holds the only connection
            started = time.perf_counter()
            response = await client.get("/api/items", headers=headers)
            elapsed = time.perf_counter() - started
        assert_error(response, 503, "db_pool_exhausted")
        assert_retry_after(response)
        # Answered after the pool timeout (0.3 s), not the 30 s SQLAlchemy would wait by default.
        assert elapsed < 5, elapsed
        assert (await client.get("/api/items", headers=headers)).status_code == 200
        await asyncio.sleep(0.15)
        metrics = (await client.get("/metrics")).text
    assert "engines_db_pool_timeouts_total 1.0" in metrics
    lines = log_lines(capsys.readouterr().out, "db_pool")
    assert sum(line["timed_out"] for line in lines) == 1
    assert sum(line["waited"] for line in lines) >= 1


def test_the_pool_timeout_is_short_by_default(make_settings: SettingsFactory) -> None:
    settings = make_settings()
    assert settings.db_pool_timeout_s <= 5
    services: Services = create_app(settings).state.services
    # timeout() is QueuePool's; engine.pool is typed as the base Pool.
    assert services.database.engine.pool.timeout() == settings.db_pool_timeout_s  # type: ignore[attr-defined]

"""Fault injection: each ENGINES_FAULT_* setting produces the failure it names, is logged at
start-up, and never touches /health, /version or /metrics."""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from types import SimpleNamespace

import httpx
import pytest
from starlette.types import Message

from loadkit.run.bundled_service import BundledService
from service import faults
from service.app import create_app
from service.faults import FaultPlan
from service.settings import Settings
from tests.service.engines_api import (
    SettingsFactory,
    assert_error,
    assert_retry_after,
    auth_headers,
    log_lines,
    login,
    open_client,
    register,
)


async def timed(request: Awaitable[httpx.Response]) -> tuple[httpx.Response, float]:
    """The response and how long it took, in seconds."""
    started = time.perf_counter()
    response = await request
    return response, time.perf_counter() - started


def test_every_fault_is_off_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("ENGINES_FAULT_"):
            monkeypatch.delenv(name)
    plan = FaultPlan.from_settings(Settings())
    assert plan.active() == {} and not plan.any_on


async def test_no_fault_line_is_logged_by_default(
    client: httpx.AsyncClient, capsys: pytest.CaptureFixture[str]
) -> None:
    assert log_lines(capsys.readouterr().out, "fault_injection_enabled") == []


async def test_each_active_fault_is_logged_at_start_up(
    make_settings: SettingsFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    app = create_app(
        make_settings(
            fault_latency_ms=10,
            fault_latency_jitter_ms=5,
            fault_latency_share=0.5,
            fault_error_share=0.1,
            fault_error_kind="database_error",
            fault_lock_hold_ms=1,
            fault_slow_query_ms=2,
            fault_stall_at_s=30,
            fault_stall_s=3,
            fault_stall_after_headers_ms=2500,
            fault_stall_after_headers_share=0.25,
            fault_paths="/api/items, /api/auth",
        )
    )
    async with open_client(app):
        pass
    lines = {x["fault"]: x for x in log_lines(capsys.readouterr().out, "fault_injection_enabled")}
    assert set(lines) == {
        "latency", "error", "lock_hold", "slow_query", "stall", "stall_after_headers"
    }  # fmt: skip
    assert lines["stall_after_headers"]["stall_ms"] == 2500
    assert lines["stall_after_headers"]["share"] == 0.25
    assert all(x["level"] == "warning" for x in lines.values())
    assert (lines["latency"]["latency_ms"], lines["latency"]["jitter_ms"]) == (10, 5)
    assert lines["latency"]["share"] == 0.5
    assert (lines["error"]["share"], lines["error"]["kind"]) == (0.1, "database_error")
    assert lines["lock_hold"]["hold_ms"] == 1 and lines["slow_query"]["delay_ms"] == 2
    assert (lines["stall"]["at_s"], lines["stall"]["duration_s"]) == (30, 3)
    assert lines["stall"]["paths"] == ["/api/items", "/api/auth"]


class FaultSleeps:
    """Records the sleeps the fault middleware takes (and still takes them): which requests a
    fault delayed, told without timing them, so that a busy machine cannot fail the test."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.seconds: list[float] = []
        self._sleep = asyncio.sleep
        monkeypatch.setattr(faults, "asyncio", SimpleNamespace(sleep=self.sleep))

    async def sleep(self, delay: float) -> None:
        self.seconds.append(delay)
        await self._sleep(delay)

    def take(self) -> list[float]:
        """The sleeps since the last call."""
        taken, self.seconds = self.seconds, []
        return taken


async def test_the_latency_fault_slows_requests_but_not_health(
    make_settings: SettingsFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    sleeps = FaultSleeps(monkeypatch)
    app = create_app(make_settings(fault_latency_ms=300, fault_latency_jitter_ms=100))
    async with open_client(app) as client:
        for path in ("/version", "/health", "/metrics"):
            assert (await client.get(path)).status_code == 200
        assert sleeps.take() == []
        missing, elapsed = await timed(client.get("/api/items/1"))
    assert missing.status_code == 401  # the request still runs, only later
    (delay,) = sleeps.take()
    assert 0.3 <= delay <= 0.4
    assert elapsed >= 0.3


async def test_the_latency_share_picks_a_share_of_requests(
    make_settings: SettingsFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    sleeps = FaultSleeps(monkeypatch)
    app = create_app(make_settings(fault_latency_ms=50, fault_latency_share=0.5))
    async with open_client(app) as client:
        statuses = {(await client.get("/api/auth/me")).status_code for _ in range(40)}
    assert statuses == {401}
    slowed = len(sleeps.take())
    assert 5 <= slowed <= 35, slowed  # binomial(40, 0.5): outside 5..35 is a bug, not bad luck


async def test_the_error_fault_fails_its_share_with_the_chosen_kind(
    make_settings: SettingsFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    app = create_app(make_settings(fault_error_share=1.0, fault_error_kind="query_timeout"))
    async with open_client(app) as client:
        capsys.readouterr()
        failed = await register(client, "e@example.org")
        assert (await client.get("/health")).status_code == 200
        assert (await client.get("/metrics")).status_code == 200
        assert (await client.get("/version")).status_code == 200
    error = assert_error(failed, 503, "query_timeout")
    assert "injected" in error["message"]
    assert_retry_after(failed)
    (line,) = [x for x in log_lines(capsys.readouterr().out, "request") if x["status_code"] == 503]
    assert (line["endpoint"], line["error_kind"]) == ("/api/auth/register", "query_timeout")


async def test_the_error_share_is_a_share(make_settings: SettingsFactory) -> None:
    app = create_app(make_settings(fault_error_share=0.5))
    async with open_client(app) as client:
        responses = [await client.get("/api/auth/me") for _ in range(100)]
    statuses = Counter(r.status_code for r in responses)
    assert set(statuses) == {401, 500}
    assert 25 <= statuses[500] <= 75, statuses
    assert_error(next(r for r in responses if r.status_code == 500), 500, "internal_error")


async def test_fault_paths_restrict_the_faults(make_settings: SettingsFactory) -> None:
    app = create_app(make_settings(fault_error_share=1.0, fault_paths="/api/items"))
    async with open_client(app) as client:
        headers = await auth_headers(client, "paths@example.org")  # /api/auth: untouched
        assert_error(await client.get("/api/items", headers=headers), 500, "internal_error")


async def test_the_lock_hold_fault_holds_the_storage_lock_and_others_time_out(
    make_settings: SettingsFactory,
) -> None:
    app = create_app(
        make_settings(fault_lock_hold_ms=400, storage_lock_timeout_s=0.1, fault_paths="/api/auth")
    )
    async with open_client(app) as client:
        await register(client, "lock@example.org")
        responses = await asyncio.gather(*(login(client, "lock@example.org") for _ in range(3)))
        metrics = (await client.get("/metrics")).text
    statuses = Counter(r.status_code for r in responses)
    assert statuses[503] >= 1, statuses
    for response in responses:
        if response.status_code == 503:
            assert_error(response, 503, "storage_lock_timeout")
            assert_retry_after(response)
    assert 'engines_storage_lock_timeouts_total{endpoint="login"}' in metrics
    assert 'engines_storage_lock_hold_seconds_bucket{endpoint="login",le="0.25"} 0.0' in metrics


async def test_the_slow_query_fault_holds_connections_and_slows_requests(
    make_settings: SettingsFactory,
) -> None:
    app = create_app(make_settings(fault_slow_query_ms=300, db_pool_size=1, db_max_overflow=0))
    async with open_client(app) as client:
        response, elapsed = await timed(register(client, "slowq@example.org"))
        assert response.status_code == 201
        assert elapsed >= 0.3
        assert (await client.get("/health")).status_code == 200


async def test_the_stall_fault_freezes_every_request_during_its_window(
    make_settings: SettingsFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    sleeps = FaultSleeps(monkeypatch)
    app = create_app(make_settings(fault_stall_at_s=0.5, fault_stall_s=1.0))
    clock = app.state.services.stall_clock

    async def request_at(offset_s: float) -> tuple[float, float, int]:
        """A request sent no earlier than ``offset_s`` after start-up: when it was sent and
        answered (seconds after start-up) and its status."""
        await asyncio.sleep(max(0.0, clock.started + offset_s - time.monotonic()))
        sent = time.monotonic() - clock.started
        response = await client.get("/api/auth/me")
        return sent, time.monotonic() - clock.started, response.status_code

    async with open_client(app) as client:
        before = await request_at(0)
        assert sleeps.take() == [] or before[0] >= 0.5  # a slow start may already be in it
        stalled = await asyncio.gather(*(request_at(0.6) for _ in range(3)))
        health = await client.get("/health")
        after = await request_at(1.6)
        stall_sleeps = sleeps.take()
    assert health.status_code == 200
    for sent, answered, status in stalled:
        assert status == 401  # the request still runs, once the stall is over
        if sent < 1.5:
            assert answered >= 1.5, (sent, answered)  # held until the end of the window
    assert sum(1 for sent, _, _ in stalled if sent < 1.5) == len(stall_sleeps)
    assert after[2] == 401 and after[0] >= 1.5  # sent after the window: not held


async def test_the_stall_after_headers_fault_holds_the_body_once_the_headers_are_out(
    make_settings: SettingsFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[object] = []

    async def sleep(delay: float) -> None:
        events.append(("hold", delay))

    monkeypatch.setattr(faults, "asyncio", SimpleNamespace(sleep=sleep))
    app = create_app(make_settings(fault_stall_after_headers_ms=2500, fault_paths="/api/auth/me"))

    async def call(path: str) -> None:
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
            "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
            "root_path": "", "headers": [(b"host", b"engines.test")],
            "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80),
        }  # fmt: skip

        async def receive() -> Message:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: Message) -> None:
            events.append((message["type"], message.get("status")))

        await app(scope, receive, send)

    async with open_client(app):
        await call("/api/auth/me")  # 401: no token; its status goes out, then the hold
        held = list(events)
        events.clear()
        await call("/api/items")  # outside ENGINES_FAULT_PATHS: never held
    assert held == [
        ("http.response.start", 401), ("hold", 2.5), ("http.response.body", None)
    ]  # fmt: skip
    assert ("hold", 2.5) not in events and events[0] == ("http.response.start", 401)


async def test_the_stall_after_headers_share_is_a_share(
    make_settings: SettingsFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    sleeps = FaultSleeps(monkeypatch)
    app = create_app(
        make_settings(fault_stall_after_headers_ms=1, fault_stall_after_headers_share=0.5)
    )
    async with open_client(app) as client:
        statuses = {(await client.get("/api/auth/me")).status_code for _ in range(40)}
    assert statuses == {401}
    held = len(sleeps.take())
    assert 5 <= held <= 35, held  # binomial(40, 0.5): outside 5..35 is a bug, not bad luck


def test_faults_switch_on_through_engines_variables_on_a_real_process(
    start_service: Callable[..., BundledService],
) -> None:
    # start_service waits for /health: the fault never touches it.
    service = start_service(
        {"ENGINES_FAULT_ERROR_SHARE": "1", "ENGINES_FAULT_ERROR_KIND": "db_pool_exhausted"}
    )
    with httpx.Client(base_url=service.url, timeout=10) as client:
        response = client.post(
            "/api/auth/register", json={"email": "f@example.org", "password": "password123"}
        )
    assert_error(response, 503, "db_pool_exhausted")
    assert service.stop() == 0
    assert '"fault_injection_enabled"' in service.log_path.read_text()


def test_a_bad_fault_setting_is_refused() -> None:
    with pytest.raises(ValueError, match="fault_error_kind"):
        # A value outside the Literal on purpose: the refusal is what is tested.
        Settings(fault_error_kind="no_such_kind")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="fault_error_share"):
        Settings(fault_error_share=1.5)

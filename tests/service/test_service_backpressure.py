"""Backpressure: the in-flight limit (503 overloaded) and the login rate limits (429), both with
Retry-After, and a real-process burst that gets nothing but 200/429/503."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable

import httpx
import pytest
from starlette.types import Message

from loadkit.run.bundled_service import BundledService
from service.app import create_app
from service.rate_limit import LoginRateLimiter, TokenBucketLimiter
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


async def test_requests_past_the_in_flight_limit_are_refused_at_once(
    make_settings: SettingsFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    # The latency fault keeps each accepted request in flight for 0.5 s.
    app = create_app(make_settings(max_in_flight=4, fault_latency_ms=500, fault_paths="/api/items"))
    async with open_client(app) as client:
        headers = await auth_headers(client, "burst@example.org")
        capsys.readouterr()
        responses = await asyncio.gather(
            *(client.get("/api/items", headers=headers) for _ in range(12))
        )
        assert (await client.get("/health")).status_code == 200  # probes are never refused
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {200: 4, 503: 8}, statuses
    for response in responses:
        if response.status_code == 503:
            assert_error(response, 503, "overloaded")
            assert_retry_after(response)
    refused = [x for x in log_lines(capsys.readouterr().out, "request") if x["status_code"] == 503]
    assert len(refused) == 8
    # Refused before routing, yet logged under the endpoint they were for.
    assert {(x["endpoint"], x["error_kind"]) for x in refused} == {("/api/items", "overloaded")}


async def test_a_zero_limit_never_refuses(make_settings: SettingsFactory) -> None:
    # Not /version: it is never refused whatever the limit, nor slowed by the latency fault.
    app = create_app(make_settings(max_in_flight=0, fault_latency_ms=200))
    async with open_client(app) as client:
        responses = await asyncio.gather(*(client.get("/api/auth/me") for _ in range(30)))
    assert {r.status_code for r in responses} == {401}


async def test_logins_past_the_per_account_limit_get_429_with_retry_after(
    make_settings: SettingsFactory,
) -> None:
    app = create_app(make_settings(login_rate_per_account=3, login_rate_window_s=60))
    async with open_client(app) as client:
        await register(client, "limited@example.org")
        await register(client, "other@example.org")
        first = [await login(client, "limited@example.org") for _ in range(2)]
        wrong = await login(client, "limited@example.org", "wrong password")  # counts too
        refused = await login(client, "LIMITED@example.org")  # the same account
        other = await login(client, "other@example.org")
    assert [r.status_code for r in first] == [200, 200] and wrong.status_code == 401
    assert_error(refused, 429, "rate_limited")
    assert 1 <= assert_retry_after(refused) <= 20  # one attempt comes back every 60/3 s
    assert other.status_code == 200


async def test_logins_past_the_per_address_limit_get_429(make_settings: SettingsFactory) -> None:
    app = create_app(make_settings(login_rate_per_address=2))
    async with open_client(app) as client:
        responses = [await login(client, f"u{n}@example.org") for n in range(3)]
    assert [r.status_code for r in responses[:2]] == [401, 401]
    error = assert_error(responses[2], 429, "rate_limited")
    assert "address" in error["message"]
    assert_retry_after(responses[2])


async def test_the_default_limits_let_the_login_load_test_through(
    make_settings: SettingsFactory,
) -> None:
    # As the harness's login scenario: 10 users, one address, logging in back to back.
    app = create_app(make_settings())
    async with open_client(app) as client:
        emails = [f"load{n}@example.org" for n in range(10)]
        await asyncio.gather(*(register(client, email) for email in emails))
        for _ in range(10):
            responses = await asyncio.gather(*(login(client, email) for email in emails))
            assert {r.status_code for r in responses} == {200}


def test_a_token_bucket_refills_at_limit_per_window() -> None:
    now = 0.0
    limiter = TokenBucketLimiter(limit=2, window_s=10, clock=lambda: now)
    assert limiter.wait_s("k") == 0
    limiter.take("k")
    limiter.take("k")
    assert limiter.wait_s("k") == pytest.approx(5.0)  # one attempt per 10/2 s
    now = 4.0
    assert limiter.wait_s("k") == pytest.approx(1.0)
    now = 5.0
    assert limiter.wait_s("k") == 0
    assert limiter.wait_s("another key") == 0


def test_a_refusal_by_one_limit_does_not_use_up_the_other() -> None:
    limiter = LoginRateLimiter(per_address=1, per_account=5, window_s=60, clock=lambda: 0.0)
    limiter.check(address="a", account="x@example.org")
    for _ in range(3):
        with pytest.raises(Exception, match="client address"):
            limiter.check(address="a", account="y@example.org")
    limiter.check(address="b", account="y@example.org")  # y's budget was not spent by refusals
    assert limiter.by_account.wait_s("y@example.org") == 0


def test_the_bucket_table_forgets_the_least_recently_used_keys() -> None:
    limiter = TokenBucketLimiter(limit=1, window_s=60, max_keys=2, clock=lambda: 0.0)
    for key in ("a", "b", "c"):
        limiter.take(key)
    assert limiter.wait_s("a") == 0  # forgotten: forgiven
    assert limiter.wait_s("c") > 0


async def burst(url: str, requests: list[tuple[str, str, dict[str, str]]]) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=len(requests), max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:
        return await asyncio.gather(
            *(client.request(method, path, json=body) for method, path, body in requests)
        )


def test_a_burst_above_the_limits_gets_only_200_429_503_each_with_retry_after(
    start_service: Callable[..., BundledService],
) -> None:
    service = start_service(
        {
            "ENGINES_MAX_IN_FLIGHT": "8",
            "ENGINES_LOGIN_RATE_PER_ADDRESS": "10",
            "ENGINES_FAULT_LATENCY_MS": "300",  # keeps accepted requests in flight
            "ENGINES_FAULT_PATHS": "/api/auth/login",
        }
    )
    account = {"email": "burst@example.org", "password": "password123"}
    with httpx.Client(base_url=service.url, timeout=10) as client:
        assert client.post("/api/auth/register", json=account).status_code == 201
    waves = [asyncio.run(burst(service.url, [("POST", "/api/auth/login", account)] * 40))]
    waves.append(asyncio.run(burst(service.url, [("POST", "/api/auth/login", account)] * 40)))
    responses = [r for wave in waves for r in wave]
    statuses = Counter(r.status_code for r in responses)
    assert set(statuses) <= {200, 429, 503}, statuses
    assert statuses[200] >= 1 and statuses[503] >= 1 and statuses[429] >= 1, statuses
    for response in responses:
        if response.status_code in (429, 503):
            assert_retry_after(response)
            assert response.json()["error"]["kind"] in {"rate_limited", "overloaded"}


async def test_a_client_that_never_sends_its_body_holds_no_in_flight_place(
    make_settings: SettingsFactory,
) -> None:
    app = create_app(make_settings(max_in_flight=1))
    never = asyncio.Event()

    async def receive_nothing() -> Message:
        await never.wait()  # a Content-Length that lies: the body never comes
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        pass

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "path": "/api/auth/login",
        "raw_path": b"/api/auth/login",
        "query_string": b"",
        "headers": [(b"content-type", b"application/json"), (b"content-length", b"100")],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
    }
    async with open_client(app) as client:
        stuck = asyncio.create_task(app(scope, receive_nothing, send))
        await asyncio.sleep(0.05)  # the stuck request is waiting for its body
        try:
            response = await client.get("/api/auth/me")
        finally:
            never.set()
            await stuck
    assert_error(response, 401, "unauthorized")  # not 503 overloaded

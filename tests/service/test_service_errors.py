"""The error envelope and X-Trace-Id on every response; 404/405/413/500; health failing; bad input
never changes what is stored."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest
import sqlalchemy.exc
from fastapi import FastAPI

from service.app import create_app
from service.database import Database
from tests.service.engines_api import (
    SettingsFactory,
    assert_error,
    auth_headers,
    login,
    open_client,
    register,
)

EMAIL = "keeper@example.org"


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/health", 200),
        ("GET", "/version", 200),
        ("GET", "/no/such/route", 404),
        ("DELETE", "/health", 405),
        ("GET", "/api/auth/me", 401),
        ("POST", "/api/auth/login", 422),
    ],
)
async def test_every_response_has_a_trace_id(
    client: httpx.AsyncClient, method: str, path: str, status: int
) -> None:
    response = await client.request(method, path)
    assert response.status_code == status
    generated = response.headers["X-Trace-Id"]
    assert len(generated) == 32
    if status >= 400:
        assert response.json()["error"]["trace_id"] == generated

    given = await client.request(method, path, headers={"X-Request-Id": "req-42"})
    assert given.headers["X-Trace-Id"] == "req-42"
    other = await client.request(method, path, headers={"X-Trace-Id": "trace.7"})
    assert other.headers["X-Trace-Id"] == "trace.7"


async def test_an_unsafe_incoming_trace_id_is_replaced(client: httpx.AsyncClient) -> None:
    response = await client.get("/health", headers={"X-Request-Id": 'x" injected\tlog'})
    assert response.headers["X-Trace-Id"] != 'x" injected\tlog'
    assert len(response.headers["X-Trace-Id"]) == 32


async def test_unknown_route_and_wrong_method(client: httpx.AsyncClient) -> None:
    assert_error(await client.get("/api/nothing"), 404, "not_found")
    response = await client.put("/api/auth/login", json={})
    assert_error(response, 405, "method_not_allowed")
    assert response.headers["Allow"] == "POST"


async def test_405_allows_every_method_of_the_path_across_its_routes(
    client: httpx.AsyncClient,
) -> None:
    # /api/items/{item_id} is two routes (GET, DELETE); Starlette named only the first one's.
    response = await client.put("/api/items/1", json={})
    assert_error(response, 405, "method_not_allowed")
    assert response.headers["Allow"] == "DELETE, GET"
    listing = await client.put("/api/items", json={})
    assert listing.headers["Allow"] == "GET, POST"


async def test_oversized_bodies_are_413(make_settings: SettingsFactory) -> None:
    app = create_app(make_settings(max_body_bytes=1024))
    async with open_client(app) as client:
        big = json.dumps({"email": EMAIL, "password": "p" * 2000}).encode()
        declared = await client.post(
            "/api/auth/register", content=big, headers={"Content-Type": "application/json"}
        )
        assert_error(declared, 413, "payload_too_large")

        async def stream() -> AsyncIterator[bytes]:
            for start in range(0, len(big), 100):
                yield big[start : start + 100]

        streamed = await client.post(
            "/api/auth/register", content=stream(), headers={"Content-Type": "application/json"}
        )
        assert "Content-Length" not in streamed.request.headers
        assert_error(streamed, 413, "payload_too_large")
        # Nothing was stored, and a body under the limit still works.
        assert (await register(client, EMAIL)).status_code == 201


async def test_an_unhandled_exception_is_internal_error_with_traceback_logged(
    app: FastAPI, capsys: pytest.CaptureFixture[str]
) -> None:
    async def explode() -> None:
        raise RuntimeError("kaboom-secret-detail")

    app.add_api_route("/test/explode", explode)
    async with open_client(app) as client:
        response = await client.get("/test/explode", headers={"X-Request-Id": "boom-1"})
    error = assert_error(response, 500, "internal_error")
    assert "kaboom" not in error["message"]  # internals are logged, not shown
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    crash = [line for line in lines if line["event"] == "unhandled_exception"]
    assert len(crash) == 1
    assert crash[0]["trace_id"] == "boom-1"
    assert crash[0]["endpoint"] == "/test/explode"
    assert "Traceback" in crash[0]["exception"] and "kaboom-secret-detail" in crash[0]["exception"]
    request_line = next(line for line in lines if line["event"] == "request")
    assert request_line["status_code"] == 500
    assert request_line["error_kind"] == "internal_error"
    assert request_line["level"] == "error"


async def test_an_unclassified_database_error_is_internal_error(app: FastAPI) -> None:
    async def integrity() -> None:
        raise sqlalchemy.exc.IntegrityError("INSERT", {}, Exception("constraint"))

    app.add_api_route("/test/integrity", integrity)
    async with open_client(app) as client:
        assert_error(await client.get("/test/integrity"), 500, "internal_error")


async def test_health_is_503_database_error_when_the_database_fails(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert (await client.get("/health")).json() == {"status": "ok"}

    async def unreachable(self: Database) -> None:
        raise sqlalchemy.exc.OperationalError(
            "SELECT 1", {}, Exception("unable to open database file")
        )

    monkeypatch.setattr(Database, "ping", unreachable)
    response = await client.get("/health")
    assert_error(response, 503, "database_error")
    assert response.headers["Retry-After"] == "1"


async def test_version(client: httpx.AsyncClient) -> None:
    body = (await client.get("/version")).json()
    assert set(body) == {"version", "git_commit", "python", "started_at"}
    assert body["git_commit"] == "unknown"
    assert body["version"] != "" and body["python"].count(".") == 2


async def test_version_reports_the_configured_commit(make_settings: SettingsFactory) -> None:
    app = create_app(make_settings(git_commit="abc1234"))
    async with open_client(app) as client:
        assert (await client.get("/version")).json()["git_commit"] == "abc1234"


async def test_bad_input_changes_nothing_stored(client: httpx.AsyncClient) -> None:
    headers = await auth_headers(client, EMAIL)
    created = await client.post("/api/items", headers=headers, json={"name": "precious"})
    item = created.json()
    bad_requests = [
        client.post("/api/auth/register", json={"email": EMAIL, "password": "x" * 80}),
        client.post("/api/auth/register", json={"email": EMAIL, "password": "another one"}),
        client.post("/api/auth/login", content=b"{not json", headers={"Content-Type": "a/json"}),
        client.post("/api/items", headers=headers, json={"name": ["x"]}),
        client.delete("/api/items/999", headers=headers),
        client.delete(f"/api/items/{item['id']}", headers={"Authorization": "Bearer bad"}),
        client.patch(f"/api/items/{item['id']}", headers=headers, json={"name": "changed"}),
    ]
    for request in bad_requests:
        response = await request
        assert 400 <= response.status_code < 500, response.text
    assert (await login(client, EMAIL)).status_code == 200
    after = await client.get(f"/api/items/{item['id']}", headers=headers)
    assert after.json() == item

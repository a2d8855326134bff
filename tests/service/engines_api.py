"""Helpers for talking to the service in tests (imported by the test modules of this folder)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI

from service.settings import Settings

TEST_PASSWORD = "correct horse battery"
SettingsFactory = Callable[..., Settings]


@asynccontextmanager
async def open_client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """Run the app's lifespan around an ASGI client."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://engines.test") as client:
            yield client


async def register(
    client: httpx.AsyncClient, email: str, password: str = TEST_PASSWORD
) -> httpx.Response:
    """POST /api/auth/register."""
    return await client.post("/api/auth/register", json={"email": email, "password": password})


async def login(
    client: httpx.AsyncClient, email: str, password: str = TEST_PASSWORD
) -> httpx.Response:
    """POST /api/auth/login."""
    return await client.post("/api/auth/login", json={"email": email, "password": password})


async def auth_headers(client: httpx.AsyncClient, email: str) -> dict[str, str]:
    """Register ``email`` and log in: the bearer header."""
    assert (await register(client, email)).status_code == 201
    response = await login(client, email)
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def assert_error(response: httpx.Response, status: int, kind: str) -> dict[str, Any]:
    """The response is the error envelope with this status and kind; returns the error object."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    assert set(error) == {"kind", "message", "trace_id"}, error
    assert error["kind"] == kind, error
    assert isinstance(error["message"], str) and error["message"]
    assert error["trace_id"] == response.headers["X-Trace-Id"]
    return error


def log_lines(out: str, event: str | None = None) -> list[dict[str, Any]]:
    """The service's JSON log lines in captured stdout (only ``event`` ones when given)."""
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return [line for line in lines if event is None or line.get("event") == event]


def assert_retry_after(response: httpx.Response) -> int:
    """The response carries an integer ``Retry-After`` of at least 1 s; returns it."""
    value = response.headers.get("Retry-After")
    assert value is not None and value.isdigit() and int(value) >= 1, response.headers
    return int(value)

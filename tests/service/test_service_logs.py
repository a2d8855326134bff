"""The request log line: one JSON object per line on stdout with DESIGN.md contract 3's fields."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.types import Message

from service.app import create_app
from tests.service.engines_api import SettingsFactory, auth_headers, login, open_client

REQUEST_FIELDS = {
    "ts",
    "level",
    "event",
    "trace_id",
    "method",
    "endpoint",
    "status_code",
    "error_kind",
    "duration_ms",
}


def request_lines(out: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in out.splitlines() if line.strip()]
    return [line for line in lines if line["event"] == "request"]


async def test_error_lines_carry_every_contract_field(
    client: httpx.AsyncClient, capsys: pytest.CaptureFixture[str]
) -> None:
    headers = await auth_headers(client, "log@example.org")
    capsys.readouterr()
    await login(client, "log@example.org", "wrong password")
    await client.get("/api/items/12345", headers=headers)
    await client.get("/not/a/route/7", headers={"X-Request-Id": "logged-404"})

    lines = request_lines(capsys.readouterr().out)
    assert [line["status_code"] for line in lines] == [401, 404, 404]
    for line in lines:
        assert set(line) >= REQUEST_FIELDS, line
        assert line["level"] == "warning"
        assert isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0
        assert line["ts"].endswith("Z")
    login_line, item_line, route_line = lines
    assert (login_line["method"], login_line["endpoint"]) == ("POST", "/api/auth/login")
    assert login_line["error_kind"] == "invalid_credentials"
    assert item_line["endpoint"] == "/api/items/{item_id}"  # the template, not /api/items/12345
    assert item_line["error_kind"] == "not_found"
    assert route_line["endpoint"] == "unmatched"
    assert route_line["trace_id"] == "logged-404"


async def test_trace_id_in_the_log_matches_the_response(
    client: httpx.AsyncClient, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    response = await client.get("/api/auth/me")
    (line,) = request_lines(capsys.readouterr().out)
    assert line["trace_id"] == response.headers["X-Trace-Id"]
    assert line["error_kind"] == "unauthorized"


async def test_success_lines_follow_the_access_log_level(
    make_settings: SettingsFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    app = create_app(make_settings(log_level="info", access_log_level="debug"))
    async with open_client(app) as client:
        capsys.readouterr()
        await client.get("/health")
        await client.get("/nope")
    lines = request_lines(capsys.readouterr().out)
    assert [line["status_code"] for line in lines] == [404]  # the 200 was at debug: filtered

    app = create_app(make_settings(log_level="info", access_log_level="info"))
    async with open_client(app) as client:
        capsys.readouterr()
        await client.get("/health")
    (line,) = request_lines(capsys.readouterr().out)
    assert (line["status_code"], line["error_kind"], line["level"]) == (200, None, "info")
    assert line["endpoint"] == "/health"


async def test_a_client_gone_before_its_body_is_logged_with_why(
    app: FastAPI, capsys: pytest.CaptureFixture[str]
) -> None:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "path": "/api/auth/login",
        "raw_path": b"/api/auth/login",
        "query_string": b"",
        "headers": [(b"content-type", b"application/json"), (b"content-length", b"40")],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
    }
    async with open_client(app):
        capsys.readouterr()
        await app(scope, receive, send)
    assert sent == []  # nobody left to answer
    (line,) = request_lines(capsys.readouterr().out)
    assert (line["endpoint"], line["status_code"], line["level"]) == ("/api/auth/login", 0, "error")
    assert "disconnected" in line["message"]

"""The service as a real process: ``python -m service`` on a loopback port, shut down by SIGTERM."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx

from loadkit.run.bundled_service import BundledService, free_port


def test_python_m_service_serves_and_stops_cleanly(
    start_service: Callable[..., BundledService],
) -> None:
    service = start_service({"ENGINES_GIT_COMMIT": "cafe123", "ENGINES_ACCESS_LOG_LEVEL": "info"})
    with httpx.Client(base_url=service.url, timeout=10) as client:
        assert client.get("/version").json()["git_commit"] == "cafe123"
        registered = client.post(
            "/api/auth/register", json={"email": "p@example.org", "password": "password123"}
        )
        assert registered.status_code == 201
        missing = client.get("/missing", headers={"X-Request-Id": "proc-1"})
        assert missing.headers["X-Trace-Id"] == "proc-1"
    assert service.stop() == 0
    lines = []
    for raw in service.log_path.read_text().splitlines():
        if raw.startswith("{"):
            lines.append(json.loads(raw))
    events = [line["event"] for line in lines]
    assert events[0] == "service_started" and events[-1] == "service_stopped"
    assert any(line.get("trace_id") == "proc-1" and line["status_code"] == 404 for line in lines)


def test_an_unsafe_setting_stops_start_up_with_exit_2() -> None:
    env = {**os.environ, "ENGINES_ENV": "production", "ENGINES_JWT_SECRET": "short"}
    result = subprocess.run(
        [sys.executable, "-m", "service", "--port", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert "jwt_secret" in result.stderr.lower() or "ENGINES_JWT_SECRET" in result.stderr


def test_a_database_that_cannot_be_opened_fails_start_up_with_exit_3(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'no' / 'such' / 'folder' / 'engines.db'}"
    env = {**os.environ, "ENGINES_DATABASE_URL": url}
    result = subprocess.run(
        [sys.executable, "-m", "service", "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 3, result.stderr
    assert "unable to open database file" in result.stderr + result.stdout

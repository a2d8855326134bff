"""The scenarios are plain locustfiles: plain Locust runs them, with no loadkit at all."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from loadkit.run.bundled_service import BundledService

pytestmark = pytest.mark.slow

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


def run_plain_locust(scenario: str, host: str, *, seconds: int = 3) -> list[dict[str, object]]:
    """``locust -f scenarios/<scenario>.py --headless``; returns Locust's own stats (JSON)."""
    command = [
        sys.executable, "-m", "locust", "-f", str(SCENARIOS / f"{scenario}.py"), "--headless",
        "--users", "2", "--spawn-rate", "2", "--run-time", f"{seconds}s", "--host", host, "--json",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "loadkit" not in done.stderr
    stats: list[dict[str, object]] = json.loads(done.stdout)
    return stats


def test_login_runs_with_plain_locust(service: BundledService) -> None:
    stats = {(s["method"], s["name"]): s for s in run_plain_locust("login", service.url)}
    assert set(stats) == {("POST", "/api/auth/register"), ("POST", "/api/auth/login")}
    login = stats[("POST", "/api/auth/login")]
    assert int(str(login["num_requests"])) > 10
    assert login["num_failures"] == 0


def test_api_mix_counts_wrong_logins_as_expected(service: BundledService) -> None:
    stats = run_plain_locust("api", service.url)
    names = {str(s["name"]) for s in stats}
    assert {"/api/auth/login", "/api/items", "/api/auth/me"} <= names
    assert all(s["num_failures"] == 0 for s in stats), stats

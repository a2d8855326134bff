"""The scenarios are plain locustfiles: plain Locust runs them, with no loadkit at all."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from loadkit.measure.results import LoadResults, read_results
from loadkit.run.bundled_service import BundledService
from tests.loadkit.misbehaving_servers import resets, serve
from tests.shared_service import module_service

pytestmark = pytest.mark.slow

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BundledService]:
    """One bundled service for the module: both scenarios register accounts of their own."""
    yield from module_service(tmp_path_factory)


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
    # 2 s: users log in back to back (no wait), hundreds of logins even if Locust's timer fires
    # early.
    stats = {(s["method"], s["name"]): s for s in run_plain_locust("login", service.url, seconds=2)}
    assert set(stats) == {("POST", "/api/auth/register"), ("POST", "/api/auth/login")}
    login = stats[("POST", "/api/auth/login")]
    assert int(str(login["num_requests"])) > 10
    assert login["num_failures"] == 0


def test_api_mix_counts_wrong_logins_as_expected(service: BundledService) -> None:
    stats = run_plain_locust("api", service.url)
    names = {str(s["name"]) for s in stats}
    # Tasks are drawn at random: on a busy machine a 3 s run may never draw the rarer ones
    # (``me``, weight 2 of 15), so only the logins of on_start and the most drawn are required.
    assert {"/api/auth/login", "/api/items"} <= names
    assert all(s["num_failures"] == 0 for s in stats), stats


def test_api_wrong_logins_cut_by_the_network_keep_the_connection_kind(tmp_path: Path) -> None:
    # Issue 13: a wrong login whose connection was reset was recorded as protocol_error
    # ("expected 401 for a wrong password, got 0"): the scenario's words hid the cause.
    out = tmp_path / "load.json"
    with serve(resets) as url:
        command = [
            sys.executable, "-m", "loadkit", "load", "--scenario", "api", "--host", url,
            "--concurrency", "2", "--duration", "3", "--out", str(out), "--quiet",
        ]  # fmt: skip
        subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    results = read_results(out)
    assert isinstance(results, LoadResults)
    kinds = {(group.endpoint, group.kind): group for group in results.errors}
    assert ("POST /api/auth/login", "connection_reset") in kinds, kinds
    assert not [key for key in kinds if key[1] == "protocol_error"], kinds

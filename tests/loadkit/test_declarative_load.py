"""``loadkit load`` with a declarative scenario against an API that is not ours (orders_api:
form login, a token under ``data.jwt``, RFC 7807 errors, the request id echoed): each user signs
in once with a secret from the environment, then sends a weighted mix; the errors are counted
under the API's own kinds with the trace ids that were sent, and the secret is written nowhere.

The first test runs the default engine (native); the others Locust's (a Locust worker, the spec
as a file, its client's exception masked). test_native_declarative.py runs both side by side."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from loadkit.cli import app
from loadkit.config import LoadProfile, load_config
from loadkit.engines.declarative import describe
from loadkit.measure.kinds import NOT_SENT_ENDPOINT
from loadkit.measure.results import LoadResults, read_results
from loadkit.run.bundled_service import free_port
from loadkit.run.load import run_load
from tests.loadkit.orders_api import orders_api

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
SECRET = "s3cret-Client-Key"

ACCEPTANCE = """
[target]
error_kind = { problem = true }
trace_header = "X-Request-Id"
trace_response_header = "X-Request-Id"

[scenarios.orders]
[[scenarios.orders.setup]]
name = "sign in"
method = "POST"
path = "/v2/sessions"
form = { client_id = "loadkit", client_secret = "${ORDERS_SECRET}" }
expect_status = 200
save = { token = "data.jwt" }

[[scenarios.orders.requests]]
method = "POST"
path = "/v2/orders"
headers = { Authorization = "Token {token}" }
json = { sku = "A1", qty = 2 }
expect_status = 201
save = { number = "order.number" }

[[scenarios.orders.requests]]
path = "/v2/orders/{number}"
headers = { Authorization = "Token {token}" }
expect_status = 200
weight = 2

[[scenarios.orders.requests]]
path = "/v2/orders"
query = { sku = "A1" }
headers = { Authorization = "Token {token}" }
expect_status = 200
weight = 3

[[scenarios.orders.requests]]
name = "missing order"
path = "/v2/orders/ORD-0"
headers = { Authorization = "Token {token}" }
expect_status = 200
"""
Seen = list[tuple[str | None, str | None]]


@pytest.fixture(scope="module")
def api() -> Iterator[tuple[str, Seen]]:
    """The orders API for the module, and each request's trace headers as it received them."""
    seen: Seen = []
    with orders_api(secret=SECRET, seen=seen) as url:
        yield url, seen


def test_a_weighted_mix_after_a_login_reports_the_apis_own_kinds_with_trace_ids(
    api: tuple[str, Seen], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, seen = api
    seen.clear()
    (tmp_path / "acceptance.toml").write_text(ACCEPTANCE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ORDERS_SECRET", SECRET)
    result = CliRunner().invoke(
        app,
        [
            *("load", "--host", url, "--config", "acceptance.toml", "--scenario", "orders"),
            *("--rate", "60", "--max-in-flight", "4", "--duration", "2", "--out", "load.json"),
            "--quiet",
        ],
    )
    results = read_results(tmp_path / "load.json")
    assert isinstance(results, LoadResults), result.output
    # A busy machine may miss the timetable: that voids the figures, not what is counted here.
    assert result.exit_code == 0 or [r.code for r in results.invalid_reasons] == [
        "generator_overloaded"
    ], result.output
    assert results.config["scenario"] == "orders" and results.config["engine"] == "native"
    # (An iteration a starved machine could not send by the end is `not_sent`, apart.)
    counts = {e.name: e.requests for e in results.endpoints if e.name != NOT_SENT_ENDPOINT}
    # Every user (one per slot) signed in once, with the secret, before its first iteration.
    assert counts.pop("POST sign in") == 4
    assert set(counts) == {
        "POST /v2/orders",
        "GET /v2/orders/{number}",
        "GET /v2/orders",
        "GET missing order",
    }
    # One weighted request per iteration; the weights show (3 and 2 against 1).
    assert sum(counts.values()) == results.totals.requests - results.not_sent - 4
    assert counts["GET /v2/orders"] > counts["GET missing order"]
    assert counts["GET /v2/orders"] > counts["POST /v2/orders"]
    # Only the missing order fails, counted under the API's own kind, its trace ids joined.
    (group,) = [g for g in results.errors if g.endpoint != NOT_SENT_ENDPOINT]
    assert (group.endpoint, group.kind, group.count) == (
        "GET missing order",
        "order-not-found",
        counts["GET missing order"],
    )
    sent = {request_id for _, request_id in seen}
    assert group.example_trace_id in sent and group.trace_ids and set(group.trace_ids) <= sent
    # The secret reached the API (the logins passed) and nothing written or shown.
    assert SECRET not in (tmp_path / "load.json").read_text()
    assert SECRET not in result.output


def test_a_remote_worker_runs_the_scenario_its_master_describes(
    api: tuple[str, Seen], tmp_path: Path
) -> None:
    # The worker's folder has no acceptance.toml: the description comes with the spawn message.
    url, seen = api
    seen.clear()
    config = tmp_path / "acceptance.toml"
    config.write_text(ACCEPTANCE)
    acceptance = load_config(config)
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    port = free_port()
    worker = subprocess.Popen(
        [
            *(sys.executable, "-m", "loadkit", "load", "--worker", "--master-port", str(port)),
            *("--scenario", "declarative"),
        ],
        cwd=folder,
        env={**os.environ, "PYTHONPATH": str(REPO), "ORDERS_SECRET": SECRET},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        results = run_load(
            target=url,
            profile=LoadProfile(scenario="orders", concurrency=2, duration_s=1.0),
            out=tmp_path / "load.json",
            quiet=True,
            master=True,
            expect_workers=1,
            master_bind_port=port,
            target_profile=acceptance.target,
            declarative=describe("orders", acceptance.scenarios["orders"], {"ORDERS_SECRET": ""}),
        )
        assert worker.wait(timeout=30) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    counts = {endpoint.name: endpoint.requests for endpoint in results.endpoints}
    assert counts["POST sign in"] == 2 and counts["GET /v2/orders"] > 0
    assert {(g.endpoint, g.kind) for g in results.errors} == {
        ("GET missing order", "order-not-found")
    }


BIG_AND_LEAKY = """
[scenarios.big]
[[scenarios.big.requests]]
name = "big order"
method = "POST"
path = "/v2/orders"
json = { sku = "A1", qty = 1, note = "%s" }
expect_status = 401

[[scenarios.big.requests]]
path = "/v2/echo-key"
headers = { X-Api-Key = "${LEAK_KEY}" }
expect_status = 200
"""
LEAK = "Sécret€987"
"""Refused by the HTTP client (not latin-1), which quotes it in its exception."""


def test_a_spec_over_128_kib_runs_and_a_secret_in_an_exception_is_masked(
    api: tuple[str, Seen], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One argument holds at most 128 KiB on Linux: the spec goes to Locust as a file.
    url, _ = api
    (tmp_path / "acceptance.toml").write_text(BIG_AND_LEAKY % ("x" * 140_000))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LEAK_KEY", LEAK)
    result = CliRunner().invoke(
        app,
        [
            *("load", "--host", url, "--config", "acceptance.toml", "--scenario", "big"),
            # Locust's: the spec handed over as a file, the client's exception masked (the
            # native engine refuses such a secret before the run: test_native_scenario.py).
            *("--engine", "locust"),
            *("--rate", "20", "--max-in-flight", "2", "--duration", "1", "--out", "load.json"),
            "--quiet",
        ],
    )
    results = read_results(tmp_path / "load.json")
    assert isinstance(results, LoadResults), result.output
    assert {e.name: e.requests for e in results.endpoints}["POST big order"] > 0
    # The client's error quoted the secret: recorded and shown masked, as ${LEAK_KEY}.
    (raised,) = results.exceptions
    assert "${LEAK_KEY}" in raised.traceback
    assert LEAK not in (tmp_path / "load.json").read_text(encoding="utf-8")
    assert LEAK not in result.output and repr(LEAK)[1:-1] not in result.output

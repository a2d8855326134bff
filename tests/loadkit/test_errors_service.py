"""`loadkit errors` on the log of a real service run: the bundled service as a process on
loopback, driven over HTTP, its stdout log read back by the command.

The client tallies every error it gets by (endpoint, kind), from the response body; the
breakdown of the service's log must name the same kinds on the same endpoints with the same
counts. The join with a results file built from the same requests must pair them by trace id,
and put the errors the server never saw (connection refused) apart.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import orjson
from typer.testing import CliRunner

from loadkit.cli import app
from loadkit.measure.error_groups import TRACE_ID_SAMPLE
from loadkit.measure.recorder import LatencyRecorder
from loadkit.measure.results import LoadResults, write_results
from loadkit.run.bundled_service import BundledService, free_port
from tests.loadkit.crafted_errors import client_results

ServiceFactory = Callable[..., BundledService]
runner = CliRunner()
PASSWORD = "correct-horse-battery"


class Client:
    """Sends requests and remembers what it saw, as a load run's recorder would."""

    def __init__(self, base_url: str) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=10.0)
        self.tally: Counter[tuple[str, str]] = Counter()
        self.start = time.time()
        self.recorder = LatencyRecorder(start=self.start)
        self.token = ""
        self._lock = threading.Lock()  # the recorder and the tally are not thread-safe

    def send(self, method: str, template: str, path: str, **kwargs: Any) -> httpx.Response:
        endpoint = f"{method} {template}"
        started = time.time()
        response = self.http.request(method, path, **kwargs)
        kind = None
        if response.status_code >= 400:
            kind = response.json()["error"]["kind"]
        with self._lock:
            if kind is not None:
                self.tally[(endpoint, kind)] += 1
            self.recorder.record(
                endpoint=endpoint,
                latency_s=time.time() - started,
                end=time.time(),
                error_kind=kind,
                status=response.status_code,
                trace_id=response.headers["X-Trace-Id"],
            )
        return response

    def login(self, body: dict[str, str]) -> httpx.Response:
        return self.send("POST", "/api/auth/login", "/api/auth/login", json=body)

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def results(self) -> LoadResults:
        self.recorder.finish(end=time.time())
        overall = self.recorder.overall_histogram()
        return LoadResults(
            target=str(self.http.base_url),
            started_at=self.recorder.started_at,
            duration_s=self.recorder.duration_s(),
            totals=self.recorder.totals(),
            latency_ms=overall.summary(),
            histogram=overall.encode(),
            endpoints=self.recorder.endpoint_results(),
            errors=self.recorder.error_groups(),
        )


def provoke_errors(client: Client) -> None:
    """Successes and four kinds of error, on five endpoints, in known numbers."""
    email = "errors@example.com"
    body = {"email": email, "password": PASSWORD}
    assert client.send("POST", "/api/auth/register", "/api/auth/register", json=body).is_success
    login = client.send("POST", "/api/auth/login", "/api/auth/login", json=body)
    client.token = login.json()["access_token"]
    for _ in range(4):
        bad = {"email": email, "password": "wrong-password-123"}
        client.send("POST", "/api/auth/login", "/api/auth/login", json=bad)
    for i in range(3):
        client.send("GET", "unmatched", f"/no/such/route/{i}")
    for _ in range(5):
        client.send("GET", "/api/auth/me", "/api/auth/me", headers={"Authorization": "Bearer x"})
    for _ in range(2):
        client.send("POST", "/api/items", "/api/items", json={"nope": 1}, headers=client.auth())
    for i in range(2):
        client.send("GET", "/api/items/{item_id}", f"/api/items/{9000 + i}", headers=client.auth())
    for _ in range(6):
        assert client.send("GET", "/api/auth/me", "/api/auth/me", headers=client.auth()).is_success


def breakdown_json(*args: str) -> dict[str, Any]:
    result = runner.invoke(app, ["errors", *args, "--format", "json", "--top", "100"])
    assert result.exit_code == 0, result.output
    report: dict[str, Any] = orjson.loads(result.stdout)
    return report


def groups_of(report: dict[str, Any]) -> Counter[tuple[str, str]]:
    return Counter({(o["endpoint"], o["kind"]): o["count"] for o in report["top"]})


def test_breakdown_of_a_real_service_log_matches_what_the_client_saw(
    start_service: ServiceFactory, tmp_path: Path
) -> None:
    service = start_service(env={"ENGINES_ACCESS_LOG_LEVEL": "info"})
    client = Client(service.url)
    provoke_errors(client)
    service.stop()

    report = breakdown_json(str(service.log_path))
    assert groups_of(report) == client.tally
    assert client.tally == {
        ("POST /api/auth/login", "invalid_credentials"): 4,
        ("GET unmatched", "not_found"): 3,
        ("GET /api/auth/me", "unauthorized"): 5,
        ("POST /api/items", "validation_error"): 2,
        ("GET /api/items/{item_id}", "not_found"): 2,
    }
    kinds = {row["kind"]: row["count"] for row in report["by_kind"]}
    assert kinds == {
        "unauthorized": 5,
        "not_found": 5,
        "invalid_credentials": 4,
        "validation_error": 2,
    }
    # Success lines are logged at info here, so the error rate is known: 16 of the 24 requests
    # the client sent, plus the start-up health checks of the fixture.
    totals = report["totals"]
    assert totals["errors"] == 16
    assert totals["requests"] >= 24
    assert totals["error_rate"] == 16 / totals["requests"]
    # uvicorn's own text lines are in the same stdout: skipped and counted, not fatal.
    assert report["inputs"]["not_json"] > 0
    for offender in report["top"]:
        assert offender["example_trace_id"]
        assert offender["p95_ms"] is not None
        assert offender["first_seen"] <= offender["last_seen"]


def test_join_with_the_runs_results_pairs_trace_ids_isolates_unlogged_errors_and_knows_the_time(
    start_service: ServiceFactory, tmp_path: Path
) -> None:
    service = start_service()  # successes at debug: not logged, as by default
    client = Client(service.url)
    provoke_errors(client)
    # Three requests the service never saw: a port nobody listens on.
    dead = f"http://127.0.0.1:{free_port()}"
    for _ in range(3):
        started = time.time()
        try:
            httpx.get(f"{dead}/api/items", timeout=2.0)
        except httpx.ConnectError:
            client.recorder.record(
                endpoint="GET /api/items",
                latency_s=time.time() - started,
                end=time.time(),
                error_kind="connect_error",
                status=None,
            )
    service.stop()
    results = write_results(tmp_path / "load.json", client.results())

    report = breakdown_json(str(service.log_path), "--results", str(results))
    joined = report["client"]
    rows = {(r["endpoint"], r["kind"]): r for r in joined["rows"]}
    for key, count in client.tally.items():
        assert (rows[key]["client"], rows[key]["server"], rows[key]["client_only"]) == (
            count,
            count,
            0,
        )
        traces = rows[key]["traces"]
        # Every sampled trace id (up to the recorder's bound) pairs with its log line.
        assert traces["sampled"] == traces["same_kind"] == min(count, TRACE_ID_SAMPLE)
    refused = rows[("GET /api/items", "connect_error")]
    assert (refused["client"], refused["server"], refused["client_only"]) == (3, 0, 3)
    assert refused["client_side_kind"] is True
    assert joined["client_only"] == 3
    assert joined["server_only"] == 0
    assert any("no success lines" in note for note in joined["notes"])
    assert report["totals"]["error_rate"] is None

    # The same log against results from another time: flagged (the same service's log, read
    # once more, instead of a service of its own).
    old = client_results([("GET /api/auth/me", "unauthorized", 401, "x")], requests=3)
    path = write_results(tmp_path / "old.json", old)
    report = breakdown_json(str(service.log_path), "--results", str(path))
    assert any("do not overlap" in note for note in report["client"]["notes"])


FAULTS = {
    "ENGINES_ACCESS_LOG_LEVEL": "info",
    "ENGINES_FAULT_PATHS": "/api/auth/login,/api/items",
    # The original freeze: the storage lock held while the next requests give up on it.
    "ENGINES_FAULT_LOCK_HOLD_MS": "150",
    "ENGINES_STORAGE_LOCK_TIMEOUT_S": "0.05",
    # Half the requests in scope fail with a kind of our choosing.
    "ENGINES_FAULT_ERROR_SHARE": "0.5",
    "ENGINES_FAULT_ERROR_KIND": "database_error",
    "ENGINES_POOL_METRICS_INTERVAL_S": "0.2",
}


def test_breakdown_names_the_injected_faults(start_service: ServiceFactory) -> None:
    service = start_service(env=FAULTS)
    client = Client(service.url)
    body = {"email": "faults@example.com", "password": PASSWORD}
    assert client.send("POST", "/api/auth/register", "/api/auth/register", json=body).is_success
    for _ in range(40):  # half the logins fail by design: retry until one gets a token
        login = client.login(body)
        if login.is_success:
            client.token = login.json()["access_token"]
            break
    assert client.token
    with ThreadPoolExecutor(max_workers=6) as pool:  # concurrent logins contend for the lock
        for _ in range(3):
            list(pool.map(lambda _: client.login(body), range(6)))
    for _ in range(10):
        client.send("GET", "/api/items", "/api/items", headers=client.auth())
    time.sleep(0.3)  # one more pool line
    service.stop()

    report = breakdown_json(str(service.log_path))
    by_kind = {row["kind"]: row["count"] for row in report["by_kind"]}
    client_by_kind: Counter[str] = Counter()
    for (_, kind), count in client.tally.items():
        client_by_kind[kind] += count
    assert by_kind == client_by_kind
    assert by_kind["storage_lock_timeout"] > 0
    assert by_kind["database_error"] > 0
    # Every injected error is named on the endpoint it hit (the service matches the route even
    # for errors raised before routing), with the count the client saw.
    assert groups_of(report) == client.tally
    assert client.tally[("POST /api/auth/login", "storage_lock_timeout")] > 0
    assert {kind for _, kind in client.tally} <= {"storage_lock_timeout", "database_error"}
    assert report["faults"] and any("lock_hold" in fault for fault in report["faults"])
    pool = report["pool"]
    assert pool is not None and pool["lines"] >= 1
    assert pool["max_size"] == 15

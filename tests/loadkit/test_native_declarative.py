"""One declarative scenario through both engines against one loopback API of known behaviour:
each user registers, then logs in (refused the first time, so the login is sent again at the
user's next iteration), then sends a weighted mix in which one request waits for an id another
saves; the API fails every fifth ``GET /items`` with its own kind. Both engines count the same
setup requests, the same kinds on the same endpoints, exactly the failed share, the trace ids
they sent, and write the secret nowhere. The native engine also in a closed run, across a
master and a worker, and with a saved value no header can carry."""

from __future__ import annotations

import itertools
import json
import os
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from loadkit.config import DeclarativeScenario, LoadProfile
from loadkit.engines.declarative import describe
from loadkit.engines.url_request import request_spec
from loadkit.exceptions import InvalidLoadRunError
from loadkit.measure.kinds import NOT_SENT_ENDPOINT
from loadkit.measure.results import LoadResults, read_results
from loadkit.run.bundled_service import free_port
from loadkit.run.load import run_load
from loadkit.run.native import NativeMaster, run_native_load
from tests.loadkit.misbehaving_servers import serve

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
SECRET = "k3y-Natdecl-Secret"
KEY = {"X-Api-Key": "${NATDECL_KEY}"}
SCENARIO = DeclarativeScenario.model_validate(
    {
        "setup": [
            {
                "method": "POST",
                "path": "/register",
                "headers": KEY,
                "json": {"email": "{email}", "password": "{password}"},
                "expect_status": 201,
            },
            {
                "method": "POST",
                "path": "/login",
                "headers": KEY,
                "json": {"email": "{email}", "password": "{password}"},
                "expect_status": 200,
                "save": {"token": "token"},
            },
        ],
        "requests": [
            {
                "path": "/items",
                "headers": {**KEY, "Authorization": "Bearer {token}"},
                "expect_status": 200,
                "weight": 3,
            },
            {
                "name": "new item",
                "method": "POST",
                "path": "/items",
                "headers": {**KEY, "Authorization": "Bearer {token}"},
                "json": {"name": "thing"},
                "expect_status": 201,
                "save": {"item_id": "id"},
            },
            {
                "path": "/items/{item_id}",
                "headers": {**KEY, "Authorization": "Bearer {token}"},
                "expect_status": 200,
            },
        ],
    }
)
USERS = 4
RATE = 80.0
DURATION_S = 1.5


class _Api:
    """The API's state: accounts, first logins refused, every fifth list failed."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.accounts: dict[str, str] = {}
        self.refused: set[str] = set()
        self.items = itertools.count(1)
        self.reset()

    def reset(self) -> None:
        """A new run: the lists counted from one again, the trace ids of this run only."""
        self.lists = itertools.count(1)
        self.trace_ids: set[str] = set()

    def answer(self, method: str, path: str, headers: dict[str, str], body: bytes) -> bytes:
        match = re.fullmatch(r"00-([0-9a-f]{32})-[0-9a-f]{16}-01", headers.get("traceparent", ""))
        with self.lock:
            if match:
                self.trace_ids.add(match.group(1))
            if headers.get("x-api-key") != SECRET:
                return _response(401, {"error": {"kind": "unauthorized", "message": "key"}})
            if path == "/broken-token":
                return _response(200, {"token": "t-1\r\nX-Injected: 1"})
            if path in ("/register", "/login"):
                account = json.loads(body)
                email, password = account["email"], account["password"]
                if path == "/register":
                    self.accounts[email] = password
                    return _response(201, {"id": len(self.accounts)})
                if self.accounts.get(email) != password:
                    return _response(401, {"error": {"kind": "invalid_credentials"}})
                if email not in self.refused:
                    self.refused.add(email)
                    return _response(503, {"error": {"kind": "overloaded", "message": "busy"}})
                return _response(200, {"token": f"t-{email}"})
            if not headers.get("authorization", "").startswith("Bearer t-"):
                return _response(401, {"error": {"kind": "unauthorized"}})
            if method == "GET" and path == "/items":
                if next(self.lists) % 5 == 0:
                    return _response(500, {"error": {"kind": "database_error", "message": "db"}})
                return _response(200, [])
            if method == "POST" and path == "/items":
                return _response(201, {"id": next(self.items)})
            if method == "GET" and re.fullmatch(r"/items/\d+", path):
                return _response(200, {"id": int(path.rsplit("/", 1)[1])})
            return _response(404, {"error": {"kind": "not_found"}})


def _response(status: int, document: object) -> bytes:
    body = json.dumps(document).encode()
    head = b"HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
    return head % (status, len(body)) + body


def _handler(api: _Api) -> object:
    def handler(conn: socket.socket) -> None:
        conn.settimeout(5)
        data = b""
        while True:
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            head, _, data = data.partition(b"\r\n\r\n")
            line, *lines = head.decode("latin-1").split("\r\n")
            headers = {k.lower(): v for k, _, v in (h.partition(": ") for h in lines)}
            size = int(headers.get("content-length", "0"))
            while len(data) < size:  # a client may send the body apart from the head
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            body, data = data[:size], data[size:]
            method, target, _ = line.split(" ")
            conn.sendall(api.answer(method, target, headers, body))

    return handler


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, _Api]]:
    state = _Api()
    with serve(_handler(state)) as url:  # type: ignore[arg-type]
        yield url, state


@pytest.fixture
def api(server: tuple[str, _Api]) -> tuple[str, _Api]:
    """The module's API, its counts started again for this test's run."""
    server[1].reset()
    return server


def _run(engine: str, url: str, profile: LoadProfile, out: Path) -> LoadResults:
    spec = describe("shop", SCENARIO, {"NATDECL_KEY": SECRET})
    try:
        if engine == "native":
            return run_native_load(
                request=request_spec(url), profile=profile, out=out, quiet=True, scenario=spec
            )
        return run_load(target=url, profile=profile, out=out, quiet=True, declarative=spec)
    except InvalidLoadRunError as invalid:
        # A busy machine may miss the timetable: that voids the figures, not what is counted.
        assert [r.code for r in invalid.results.invalid_reasons] == ["generator_overloaded"]
        return invalid.results


def _check(results: LoadResults, api: _Api, out: Path, *, users: int) -> dict[str, int]:
    """What must hold on either engine; the mix's counts by endpoint."""
    counts = {e.name: e.requests for e in results.endpoints if e.name != NOT_SENT_ENDPOINT}
    # Every user registered once and logged in twice: refused, then again at its next turn.
    assert counts.pop("POST /register") == users
    assert counts.pop("POST /login") == 2 * users
    errors = {(g.endpoint, g.kind): g.count for g in results.errors}
    errors.pop((NOT_SENT_ENDPOINT, "not_sent"), None)
    assert errors.pop(("POST /login", "overloaded")) == users
    # Exactly every fifth list failed, under the API's kind; nothing else failed.
    assert errors == {("GET /items", "database_error"): counts["GET /items"] // 5}
    assert set(counts) == {"GET /items", "POST new item", "GET /items/{item_id}"}
    assert {g.example_trace_id for g in results.errors} <= api.trace_ids
    assert SECRET not in out.read_text()
    return counts


@pytest.mark.parametrize("engine", ["native", "locust"])
def test_both_engines_count_the_same_truth_in_an_open_run(
    engine: str,
    api: tuple[str, _Api],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, state = api
    monkeypatch.setenv("NATDECL_KEY", SECRET)
    monkeypatch.chdir(tmp_path)  # no acceptance.toml or locust.conf of the checkout's
    profile = LoadProfile(scenario="shop", rate=RATE, max_in_flight=USERS, duration_s=DURATION_S)
    out = tmp_path / "load.json"
    results = _run(engine, url, profile, out)
    assert results.config["engine"] == engine and results.config["scenario"] == "shop"
    mix = _check(results, state, out, users=USERS)
    # Each iteration of the timetable sent one request: a user's login again, or one of the mix.
    iterations = round(RATE * DURATION_S)
    assert sum(mix.values()) + USERS + results.not_sent == iterations
    # Weights 3 : 1 : 1, the item fetched only once one was made.
    assert 0.4 < mix["GET /items"] / sum(mix.values()) < 0.8
    assert mix["GET /items/{item_id}"] > 0


def test_a_closed_native_run_gives_each_connection_a_user(
    api: tuple[str, _Api], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, state = api
    monkeypatch.setenv("NATDECL_KEY", SECRET)
    out = tmp_path / "load.json"
    profile = LoadProfile(scenario="shop", concurrency=3, duration_s=1.0)
    results = _run("native", url, profile, out)
    assert results.config["model"] == "closed"
    mix = _check(results, state, out, users=3)
    assert min(mix.values()) > 0


def test_a_saved_value_no_header_can_carry_fails_its_requests_unsent(
    api: tuple[str, _Api], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, state = api
    monkeypatch.setenv("NATDECL_KEY", SECRET)
    broken = DeclarativeScenario.model_validate(
        {
            "setup": [
                {"path": "/broken-token", "headers": KEY, "expect_status": 200,
                 "save": {"token": "token"}},
            ],
            "requests": [
                {"path": "/items", "headers": {**KEY, "Authorization": "Bearer {token}"},
                 "expect_status": 200},
            ],
        }
    )  # fmt: skip
    out = tmp_path / "load.json"
    results = run_native_load(
        request=request_spec(url),
        profile=LoadProfile(scenario="broken", concurrency=2, duration_s=0.3),
        out=out,
        quiet=True,
        scenario=describe("broken", broken, {"NATDECL_KEY": SECRET}),
    )
    # Every list failed before it was sent (the server counted none), and the run went on.
    (group,) = results.errors
    assert (group.endpoint, group.kind) == ("GET /items", "protocol_error")
    assert group.count == {e.name: e.requests for e in results.endpoints}["GET /items"] > 2
    assert "header Authorization" in (group.example_message or "")
    assert next(state.lists) == 1


def test_a_native_worker_runs_the_scenario_its_master_sends(
    api: tuple[str, _Api], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The worker's folder has no acceptance.toml: the scenario comes in its plan, the secret
    # from its own environment.
    url, state = api
    monkeypatch.setenv("NATDECL_KEY", SECRET)  # the master checks it is set, as the CLI does
    port = free_port()
    worker = subprocess.Popen(
        [sys.executable, "-m", "loadkit", "load", "--worker", "--engine", "native", "-q",
         "--master-port", str(port)],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO), "NATDECL_KEY": SECRET},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    out = tmp_path / "load.json"
    try:
        results = run_native_load(
            request=request_spec(url),
            profile=LoadProfile(scenario="shop", concurrency=2, duration_s=1.0),
            out=out,
            quiet=True,
            master=NativeMaster(expect=1, bind_host="127.0.0.1", bind_port=port, wait_s=30),
            scenario=describe("shop", SCENARIO, {"NATDECL_KEY": ""}),
        )
        _, stderr = worker.communicate(timeout=30)
        assert worker.returncode == 0, stderr[-2000:]
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.communicate()
    assert results.config["distributed"] is True and results.config["engine"] == "native"
    _check(results, state, out, users=2)


SHOP_TOML = """
[[criteria]]
metric = "load.error_rate"
op = "<"
threshold = 0.5

[lock_audit]
paths = ["src"]

[profiles.shop]
scenario = "shop"
concurrency = 2
duration_s = 1

[[scenarios.shop.setup]]
method = "POST"
path = "/register"
headers = { X-Api-Key = "${NATDECL_KEY}" }
json = { email = "{email}", password = "{password}" }
expect_status = 201

[[scenarios.shop.setup]]
method = "POST"
path = "/login"
headers = { X-Api-Key = "${NATDECL_KEY}" }
json = { email = "{email}", password = "{password}" }
expect_status = 200
save = { token = "token" }

[[scenarios.shop.requests]]
path = "/items"
headers = { X-Api-Key = "${NATDECL_KEY}", Authorization = "Bearer {token}" }
expect_status = 200
weight = 3

[[scenarios.shop.requests]]
name = "new item"
method = "POST"
path = "/items"
headers = { X-Api-Key = "${NATDECL_KEY}", Authorization = "Bearer {token}" }
json = { name = "thing" }
expect_status = 201
save = { item_id = "id" }

[[scenarios.shop.requests]]
path = "/items/{item_id}"
headers = { X-Api-Key = "${NATDECL_KEY}", Authorization = "Bearer {token}" }
expect_status = 200
"""


def test_accept_runs_a_declarative_profile_on_the_native_engine(
    api: tuple[str, _Api], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The engine `loadkit load` would choose for the profile: native, as its load.json says.
    from loadkit.run import accept as accept_module
    from loadkit.run.accept import LOAD_FILE, run_acceptance
    from tests.loadkit.crafted import crafted_smoke

    url, state = api
    monkeypatch.setenv("NATDECL_KEY", SECRET)
    monkeypatch.chdir(tmp_path)  # no acceptance.toml or locust.conf of the checkout's
    # Smoke is not what is tested here (its checks are the bundled service's).
    monkeypatch.setattr(accept_module, "_smoke", lambda *_a, **_k: crafted_smoke())
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "app.py").write_text("def handler() -> int:\n    return 1\n")
    (tmp_path / "acceptance.toml").write_text(SHOP_TOML)
    lines: list[str] = []
    run = run_acceptance(
        config_path=tmp_path / "acceptance.toml",
        profile="shop",
        host=url,
        out_dir=tmp_path / "reports",
        progress=lines.append,
        quiet_load=True,
    )
    out = run.folder / LOAD_FILE
    results = read_results(out)
    assert isinstance(results, LoadResults)
    # A busy machine may overload the generator: that voids the figures, not what is counted.
    reasons = [r.code for r in results.invalid_reasons]
    assert (run.report.outcome, reasons) in (("passed", []), ("invalid", ["generator_overloaded"]))
    assert results.config["engine"] == "native" and results.config["scenario"] == "shop"
    assert any("load: shop, 2 connections, 1 s, engine native" in line for line in lines), lines
    assert min(_check(results, state, out, users=2).values()) > 0

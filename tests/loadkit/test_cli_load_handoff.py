"""`loadkit load` hands each of its options to the runner that uses it: the native and Locust
runs (``run_native_load``, ``run_load``, as master too) and both engines' workers
(``run_native_worker``, ``run_worker``). The runners are replaced by recorders: no load is run,
no server started, no Locust imported."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from typer.testing import CliRunner

from loadkit.cli import app
from loadkit.measure.results import LoadResults
from tests.loadkit.crafted import crafted_load

TARGET = "http://127.0.0.1:9"


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, dict[str, Any]]:
    """What each runner was called with, by runner; every runner replaced by a recorder."""
    monkeypatch.chdir(tmp_path)  # the checkout's ./acceptance.toml is not these runs' profile
    (tmp_path / "flow.py").write_text("# a locustfile; never run here\n")
    made: dict[str, dict[str, Any]] = {}

    def results(name: str) -> Any:
        def run(**kwargs: Any) -> LoadResults:
            made[name] = kwargs
            return crafted_load(errors=())

        return run

    def native_worker(**kwargs: Any) -> Any:
        made["native_worker"] = kwargs
        plan = SimpleNamespace(source="worker-1", worker_count=2)
        return SimpleNamespace(plan=plan, requests=10, errors=0)

    def locust_worker(**kwargs: Any) -> int:
        made["locust_worker"] = kwargs
        return 0

    monkeypatch.setattr("loadkit.run.native.run_native_load", results("native"))
    monkeypatch.setattr("loadkit.run.load.run_load", results("locust"))
    monkeypatch.setattr("loadkit.run.native.run_native_worker", native_worker)
    monkeypatch.setattr("loadkit.run.load.run_worker", locust_worker)
    return made


def _load(*args: str) -> None:
    result = CliRunner().invoke(app, ["load", *args])
    assert result.exit_code == 0, (result.output, result.exception)


def test_a_native_open_run_gets_its_request_rate_bound_processes_and_out(
    calls: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    out = tmp_path / "open.json"
    _load(
        f"{TARGET}/items?x=1", "--method", "POST", "--header", "X-A: 1", "--body", "hi",
        "--rate", "50", "--max-in-flight", "7", "--duration", "2", "--processes", "2",
        "--insecure", "--out", str(out), "--quiet",
    )  # fmt: skip
    native = calls["native"]
    request, profile = native["request"], native["profile"]
    assert (request.url, request.method, request.headers, request.body) == (
        f"{TARGET}/items?x=1",
        "POST",
        (("X-A", "1"),),
        b"hi",
    )
    assert not request.tls.verify
    assert (profile.rate, profile.max_in_flight, profile.duration_s) == (50, 7, 2)
    assert (native["processes"], native["out"], native["quiet"]) == (2, out, True)
    assert native["master"] is None


def test_a_native_master_gets_its_workers_bind_address_port_and_wait(
    calls: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    _load(
        TARGET, "--concurrency", "4", "--master", "--expect-workers", "3",
        "--master-bind-host", "0.0.0.0", "--master-port", "6001",
        "--expect-workers-max-wait", "5", "--out", str(tmp_path / "m.json"), "--quiet",
    )  # fmt: skip
    master = calls["native"]["master"]
    assert (master.expect, master.bind_host, master.bind_port, master.wait_s) == (
        3,
        "0.0.0.0",
        6001,
        5,
    )
    assert calls["native"]["profile"].concurrency == 4


def test_a_locust_run_gets_its_users_processes_http2_master_and_locust_args(
    calls: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    _load(
        "--scenario", "flow.py", "--host", TARGET, "--concurrency", "3", "--spawn-rate", "2",
        "--duration", "4", "--processes", "2", "--http2", "--out", str(tmp_path / "l.json"),
        "--quiet", "--", "--tags", "checkout",
    )  # fmt: skip
    locust = calls["locust"]
    profile = locust["profile"]
    assert (locust["target"], profile.scenario) == (TARGET, "flow.py")
    assert (profile.concurrency, profile.spawn_rate, profile.duration_s) == (3, 2, 4)
    assert (locust["processes"], locust["http2"], locust["master"]) == (2, True, False)
    assert tuple(locust["locust_args"]) == ("--tags", "checkout")
    assert locust["out"] == tmp_path / "l.json"
    _load(
        "--scenario", "flow.py", "--host", TARGET, "--master", "--expect-workers", "2",
        "--master-port", "6002", "--out", str(tmp_path / "m.json"), "--quiet",
    )  # fmt: skip
    master = calls["locust"]
    assert (master["master"], master["expect_workers"], master["master_bind_port"]) == (
        True,
        2,
        6002,
    )


def test_workers_get_their_masters_address_and_their_own_options(
    calls: dict[str, dict[str, Any]],
) -> None:
    _load("--worker", "--engine", "native", "--master-host", "10.0.0.5", "--master-port", "6003")
    native = calls["native_worker"]
    assert (native["master_host"], native["master_port"], native["quiet"]) == (
        "10.0.0.5",
        6003,
        False,
    )
    _load(
        "--worker", "--scenario", "flow.py", "--master-host", "10.0.0.6", "--master-port",
        "6004", "--processes", "2", "--", "--loglevel", "DEBUG",
    )  # fmt: skip
    locust = calls["locust_worker"]
    assert (locust["master_host"], locust["master_port"], locust["processes"]) == (
        "10.0.0.6",
        6004,
        2,
    )
    assert locust["scenario"] == "flow.py"
    assert tuple(locust["locust_args"]) == ("--loglevel", "DEBUG")

"""One plan for a profile's load run (run/load_plan.py): ``loadkit load``, ``loadkit accept`` and
``loadkit ui`` resolve the same profile into the same engine, scenario and runner inputs, and
what differs between them is a parameter. No load is run: the runners are caught."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from loadkit.cli import app
from loadkit.config import TargetProfile, parse_config, parse_toml
from loadkit.engines.http_request import RequestSpec, TlsOptions
from loadkit.exceptions import ConfigError
from loadkit.measure.results import LoadResults, write_results
from loadkit.run import accept as accept_module
from loadkit.run.load_plan import (
    LoadPlan,
    MasterRole,
    RequestShape,
    plan_load_run,
    run_load_plan,
)
from tests.loadkit.crafted import crafted_load, crafted_smoke

HOST = "http://127.0.0.1:9"
ACCEPTANCE = """
[[criteria]]
metric = "load.p95_ms"
op = "<"
threshold = 1000

[lock_audit]
paths = ["src"]

[target]
trace_header = "X-Request-Id"

[scenarios.orders]
[[scenarios.orders.requests]]
path = "/orders"
expect_status = 200

[profiles.login]
scenario = "login"
concurrency = 2
duration_s = 1

[profiles.orders]
scenario = "orders"
concurrency = 2
duration_s = 1

[profiles.orders_h2]
scenario = "orders"
http2 = true
duration_s = 1

[profiles.orders_ramped]
scenario = "orders"
spawn_rate = 1
duration_s = 1

[profiles.orders_locust]
scenario = "orders"
engine = "locust"
duration_s = 1
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder holding the acceptance file and its lock-audit scope, as the working folder."""
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "app.py").write_text("def handler() -> int:\n    return 1\n")
    (tmp_path / "acceptance.toml").write_text(ACCEPTANCE)
    monkeypatch.chdir(tmp_path)  # no acceptance.toml or locust.conf of the checkout's
    return tmp_path


def _recorder(calls: list[tuple[LoadPlan, RequestSpec]]) -> Any:
    def run(plan: LoadPlan, request: RequestSpec, *, out: Path, **_kwargs: Any) -> LoadResults:
        calls.append((plan, request))
        results = crafted_load(errors=())
        write_results(out, results)
        return results

    return run


@pytest.mark.parametrize(
    ("profile", "engine"),
    [
        ("login", "locust"),
        ("orders", "native"),
        ("orders_h2", "locust"),
        ("orders_ramped", "locust"),
        ("orders_locust", "locust"),
    ],
)
def test_load_accept_and_ui_plan_a_profile_alike(
    project: Path, monkeypatch: pytest.MonkeyPatch, profile: str, engine: str
) -> None:
    loads: list[tuple[LoadPlan, RequestSpec]] = []
    accepts: list[tuple[LoadPlan, RequestSpec]] = []
    uis: list[dict[str, Any]] = []
    monkeypatch.setattr("loadkit.run.load_plan.run_load_plan", _recorder(loads))
    monkeypatch.setattr(accept_module, "run_load_plan", _recorder(accepts))
    monkeypatch.setattr(accept_module, "_smoke", lambda *_a, **_k: crafted_smoke())

    def run_ui(**kwargs: Any) -> int:
        uis.append(kwargs)
        return 0

    monkeypatch.setattr("loadkit.run.load.run_ui", run_ui)
    common = ["--config", "acceptance.toml", "--profile", profile, "--host", HOST]
    runner = CliRunner()
    loaded = runner.invoke(app, ["load", *common, "--out", "r.json", "--quiet"])
    assert loaded.exit_code == 0, loaded.output
    accepted = runner.invoke(app, ["accept", *common, "--out-dir", "reports"])
    assert accepted.exit_code == 0, accepted.output
    served = runner.invoke(app, ["ui", *common])
    assert served.exit_code == 0, served.output

    [(load_plan, load_request)], [(accept_plan, accept_request)] = loads, accepts
    assert load_plan.engine == engine
    # The whole plan and request: engine, profile, scenario, TLS, HTTP/2, [target], runner inputs.
    assert accept_plan == load_plan
    assert accept_request == load_request
    assert load_request.target.trace_header == "X-Request-Id"
    [ui] = uis
    # The web UI is Locust's, whatever the engine; the rest is the same plan's.
    assert (ui["scenario"], ui["declarative"], ui["http2"], ui["tls"], ui["target_profile"]) == (
        load_plan.profile.scenario,
        load_plan.description,
        load_plan.http2,
        load_plan.tls,
        load_plan.target_profile,
    )


def _config(extra: str = "") -> Any:
    return parse_config(parse_toml(ACCEPTANCE + extra, source="a.toml"), source="a.toml")


def test_what_differs_between_the_commands_is_a_parameter() -> None:
    native = _config('\n[profiles.native_h2]\nscenario = "orders"\nengine = "native"\n')
    # accept has no --engine: its error says what to write in the profile instead.
    with pytest.raises(ConfigError, match=r'use engine = "locust" in \[profiles\.native_h2\]'):
        plan_load_run(
            native,
            "native_h2",
            tls=TlsOptions(),
            http2=True,
            to_locust='engine = "locust" in [profiles.native_h2]',
        )
    with pytest.raises(ConfigError, match=r"native speaks HTTP/1\.1 only.*--engine locust"):
        plan_load_run(native, "native_h2", tls=TlsOptions(), http2=True)
    # ui asks for Locust, whose web UI it serves, over the profile's engine.
    assert plan_load_run(native, "native_h2", tls=TlsOptions(), engine="locust").engine == "locust"
    # A worker takes its scenario from its master; arguments for Locust refuse a native run.
    worker = plan_load_run(native, "orders", tls=TlsOptions(), worker=True)
    assert (worker.engine, worker.declarative, worker.description) == ("native", True, None)
    with pytest.raises(ConfigError, match="arguments after `--`"):
        plan_load_run(native, "orders", tls=TlsOptions(), locust_args_given=True)


def test_the_request_to_a_target_carries_its_shape_tls_and_target_profile() -> None:
    tls = TlsOptions(verify=False)
    shaped = plan_load_run(
        None,
        "default",
        shape=RequestShape(method="post", headers=("X-A: 1",), body="hi"),
        tls=tls,
    )
    request = shaped.request_to("http://h:1/x")
    assert (request.url, request.method, request.headers, request.body) == (
        "http://h:1/x",
        "POST",
        (("X-A", "1"),),
        b"hi",
    )
    assert request.tls == tls and request.target == TargetProfile()
    configured = plan_load_run(_config(), "orders", tls=tls).request_to(HOST)
    assert configured.target.trace_header == "X-Request-Id"
    with pytest.raises(ConfigError, match="--method"):
        bad = plan_load_run(None, "default", shape=RequestShape(method="no pe"), tls=tls)
        bad.request_to(HOST)


def test_each_engine_gets_the_runner_inputs_of_the_plan(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    calls: dict[str, dict[str, Any]] = {}

    def recorder(name: str) -> Any:
        def run(**kwargs: Any) -> LoadResults:
            calls[name] = kwargs
            return crafted_load(errors=())

        return run

    monkeypatch.setattr("loadkit.run.native.run_native_load", recorder("native"))
    monkeypatch.setattr("loadkit.run.load.run_load", recorder("locust"))
    config = _config()
    master = MasterRole(expect=3, bind_host="0.0.0.0", bind_port=6001, wait_s=5)
    for profile in ("orders", "orders_locust"):
        plan = plan_load_run(config, profile, tls=TlsOptions(), processes=1)
        run_load_plan(
            plan, plan.request_to(HOST), out=tmp_path / "r.json", quiet=True, master=master
        )
    native, locust = calls["native"], calls["locust"]
    assert native["request"].url == HOST and native["scenario"] is not None
    assert (native["master"].expect, native["master"].bind_port, native["master"].wait_s) == (
        3,
        6001,
        5,
    )
    assert (locust["target"], locust["master"], locust["expect_workers"]) == (HOST, True, 3)
    assert (locust["master_bind_host"], locust["master_wait_s"]) == ("0.0.0.0", 5)
    assert locust["declarative"] is not None and locust["target_profile"] == config.target

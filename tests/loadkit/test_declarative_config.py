"""The declarative load scenario's part in loadkit (``[scenarios.NAME]``): strict validation,
the checks before a run, the JSON handed to ``scenarios/declarative.py`` (or to the native
engine), and the CLI's choice of engine. No load is run (test_declarative_load.py runs it)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from loadkit.cli import app
from loadkit.config import RESERVED_SCENARIO_NAMES, parse_config, parse_toml
from loadkit.engines.choice import choose_engine
from loadkit.engines.declarative import DESCRIPTION_FORMAT, describe
from loadkit.exceptions import ConfigError
from loadkit.measure.results import write_results
from tests.loadkit.crafted import crafted_load

REPO = Path(__file__).resolve().parents[2]

SCENARIO = """
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
expect_status = [200, 201]
save = { number = "order.number" }

[[scenarios.orders.requests]]
path = "/v2/orders/{number}"
headers = { Authorization = "Token {token}" }
expect_status = 200
weight = 3
"""


def _config(text: str = SCENARIO) -> Any:
    return parse_config(parse_toml(text, source="a.toml"), source="a.toml")


def test_the_description_keeps_secrets_as_names_and_names_endpoints_by_their_path() -> None:
    scenario = _config().scenarios["orders"]
    document = json.loads(describe("orders", scenario, {"ORDERS_SECRET": "hunter2"}))
    assert "hunter2" not in json.dumps(document)
    assert document["format"] == DESCRIPTION_FORMAT and document["name"] == "orders"
    (login,) = document["setup"]
    assert login["name"] == "sign in" and "weight" not in login
    assert login["form"]["client_secret"] == "${ORDERS_SECRET}"
    assert login["save"] == {"token": "data.jwt"}
    create, read = document["requests"]
    assert (create["name"], create["statuses"], create["weight"]) == ("/v2/orders", [200, 201], 1)
    assert create["json"] == {"sku": "A1", "qty": 2} and "form" not in create
    assert (read["name"], read["statuses"], read["weight"]) == ("/v2/orders/{number}", [200], 3)
    assert "json" not in read


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (("weight = 3", "weight = 0"), "scenarios.orders.requests[1].weight"),
        (("weight = 3", "wieght = 3"), "scenarios.orders.requests[1].wieght: unknown key"),
        (("weight = 3", "weight = 2.5"), "scenarios.orders.requests[1].weight"),
        (("weight = 3", "expect = []"), "expect is a smoke check's key"),
        (('save = { token = "data.jwt" }', "weight = 2"), "setup[0].weight: unknown key"),
        (("[scenarios.orders]", "[scenarios.orders.x]"), "scenarios.orders.x"),
        (('path = "/v2/orders/{number}"', 'path = "v2"'), "must start with '/'"),
        (("expect_status = 200\nweight", "expect_status = 99\nweight"), "not an HTTP status"),
        # A header every request would fail to send: refused here, not 100 % CPU of exceptions.
        (
            (
                'headers = { Authorization = "Token {token}" }\nexpect_status = 200',
                'headers = { "Bad Header" = "v" }\nexpect_status = 200',
            ),
            "scenarios.orders.requests[1].headers: header name 'Bad Header' is not an HTTP token",
        ),
        (
            (
                'headers = { Authorization = "Token {token}" }\nexpect_status = 200',
                'headers = { X = "a\\r\\nInjected: 1" }\nexpect_status = 200',
            ),
            "scenarios.orders.requests[1].headers: header X: its value may hold printable ASCII",
        ),
        (
            (
                'headers = { Authorization = "Token {token}" }\nexpect_status = 200',
                'headers = { X = "é€" }\nexpect_status = 200',
            ),
            "requests[1].headers: header X",
        ),
        # The bundled scenarios' names run those (url: the native engine), never this one.
        (("[scenarios.orders]", "[scenarios.url]"), "scenario name 'url' is a bundled"),
        (("[scenarios.orders]", "[scenarios.login]"), "scenario name 'login' is a bundled"),
    ],
)
def test_a_bad_scenario_is_refused_naming_the_key(change: tuple[str, str], named: str) -> None:
    with pytest.raises(ConfigError) as refused:
        _config(SCENARIO.replace(*change, 1))
    assert named in str(refused.value)


def test_the_reserved_names_are_the_bundled_scenarios() -> None:
    bundled = {path.stem for path in (REPO / "scenarios").glob("[!_]*.py")}
    assert bundled == RESERVED_SCENARIO_NAMES


def test_a_smoke_header_is_checked_as_a_scenarios_is() -> None:
    check = '[[smoke.checks]]\nname = "c"\npath = "/"\nexpect_status = 200\n'
    with pytest.raises(ConfigError, match=r"smoke\.checks\[0\]\.headers: header name 'A B'"):
        _config(check + 'headers = { "A B" = "v" }\n')
    assert _config(check + 'headers = { A = "Bearer ${T}\\tx {token}" }\n').smoke.checks


def test_a_scenario_name_is_a_word_not_a_path() -> None:
    with pytest.raises(ConfigError, match=r"scenario name 'my/orders\.py' must be a word"):
        _config(SCENARIO.replace("scenarios.orders", '"scenarios"."my/orders.py"'))


def test_a_placeholder_nothing_saves_is_refused_before_the_run() -> None:
    scenario = _config(SCENARIO.replace("Token {token}", "Token {tokn}", 1)).scenarios["orders"]
    with pytest.raises(ConfigError) as refused:
        describe("orders", scenario, {"ORDERS_SECRET": "x"})
    message = str(refused.value)
    assert "scenarios.orders.requests[0] (/v2/orders)" in message
    assert "{tokn} in key headers.Authorization" in message


def test_a_mix_that_cannot_start_is_refused() -> None:
    # Only the second request saves {number}, which only the first uses: no first request.
    text = SCENARIO.replace('save = { number = "order.number" }', "").replace(
        "weight = 3", 'weight = 3\nsave = { number = "order.number" }'
    )
    text = text.replace('path = "/v2/orders"\n', 'path = "/v2/orders/{number}/copy"\n')
    with pytest.raises(ConfigError, match="none can be sent first"):
        describe("orders", _config(text).scenarios["orders"], {"ORDERS_SECRET": "x"})


def test_a_request_that_needs_a_value_only_it_saves_is_refused_naming_it() -> None:
    # It would wait for ever (its own save comes after it is sent): its weight silently lost.
    text = SCENARIO.replace("weight = 3", 'weight = 3\nsave = { next = "order.next" }')
    text = text.replace('path = "/v2/orders/{number}"', 'path = "/v2/orders/{next}"')
    with pytest.raises(ConfigError) as refused:
        describe("orders", _config(text).scenarios["orders"], {"ORDERS_SECRET": "x"})
    message = str(refused.value)
    assert "scenarios.orders.requests[1] (/v2/orders/{next}) can never be sent" in message
    assert "uses {next}" in message


def test_a_chain_of_requests_each_saving_the_next_ones_value_is_accepted() -> None:
    # The first request saves {number}; the second, which needs it, saves {next} for a third.
    text = SCENARIO.replace("weight = 3", 'weight = 3\nsave = { next = "order.next" }')
    text += '[[scenarios.orders.requests]]\npath = "/v2/next/{next}"\nexpect_status = 200\n'
    describe("orders", _config(text).scenarios["orders"], {"ORDERS_SECRET": "x"})


def test_a_secret_not_in_the_environment_is_refused_naming_where_it_is_used() -> None:
    with pytest.raises(ConfigError) as refused:
        describe("orders", _config().scenarios["orders"], {})
    message = str(refused.value)
    assert "scenarios.orders.setup[0] (sign in), key form.client_secret" in message
    assert "ORDERS_SECRET is not set" in message


def test_a_secret_with_a_trailing_newline_in_a_header_is_refused_without_its_value() -> None:
    text = SCENARIO.replace("Token {token}", "Token {token} ${API_KEY}", 1)
    scenario = _config(text).scenarios["orders"]
    with pytest.raises(ConfigError) as refused:
        describe("orders", scenario, {"ORDERS_SECRET": "x\n", "API_KEY": "TopSecret987\n"})
    message = str(refused.value)
    assert "requests[0] (/v2/orders), key headers.Authorization uses ${API_KEY}" in message
    assert "API_KEY holds a line break" in message and "TopSecret987" not in message
    # In a form (encoded), ORDERS_SECRET's newline is sent as %0A: kept.
    describe("orders", scenario, {"ORDERS_SECRET": "x\n", "API_KEY": "k"})


def test_a_declarative_scenario_runs_native_unless_locust_or_http2_is_asked_for() -> None:
    assert choose_engine(requested=None, url_run=False, declarative=True) == "native"
    assert choose_engine(requested="locust", url_run=False, declarative=True) == "locust"
    assert choose_engine(requested=None, url_run=False, declarative=True, http2=True) == "locust"
    ramped = choose_engine(requested=None, url_run=False, declarative=True, ramped_users=True)
    assert ramped == "locust"
    assert choose_engine(requested="native", url_run=False, declarative=True) == "native"
    with pytest.raises(ConfigError, match=r"native speaks HTTP/1\.1 only"):
        choose_engine(requested="native", url_run=False, declarative=True, http2=True)


@pytest.fixture
def runs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[dict[str, Any]]:
    """``run_load`` replaced by a recorder of its arguments, in a folder with the scenario."""
    calls: list[dict[str, Any]] = []

    def run_load(**kwargs: Any) -> Any:
        calls.append(kwargs)
        return crafted_load(errors=())

    monkeypatch.setattr("loadkit.run.load.run_load", run_load)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.toml").write_text(SCENARIO + '\n[profiles.mix]\nscenario = "orders"\n')
    return calls


def _load(*args: str) -> Any:
    return CliRunner().invoke(app, ["load", "--config", "a.toml", *args, "--out", "r.json"])


def test_load_hands_the_scenario_to_locust_by_name_or_by_profile(
    runs: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORDERS_SECRET", "hunter2")
    assert _load("--scenario", "orders", "--duration", "1", "--engine", "locust").exit_code == 0
    assert _load("--profile", "mix", "--duration", "1", "--http2").exit_code == 0
    assert len(runs) == 2
    for call in runs:
        assert call["profile"].scenario == "orders"
        assert json.loads(call["declarative"])["name"] == "orders"
        assert "hunter2" not in call["declarative"]


def test_load_hands_the_scenario_to_the_native_engine_by_default(
    runs: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    native: list[dict[str, Any]] = []

    def run_native_load(**kwargs: Any) -> Any:
        native.append(kwargs)
        return crafted_load(errors=())

    monkeypatch.setattr("loadkit.run.native.run_native_load", run_native_load)
    monkeypatch.setenv("ORDERS_SECRET", "hunter2")
    assert _load("--scenario", "orders", "--duration", "1").exit_code == 0
    assert _load("--profile", "mix", "--duration", "1", "--engine", "native").exit_code == 0
    assert runs == [] and len(native) == 2
    for call in native:
        assert call["profile"].scenario == "orders"
        assert json.loads(call["scenario"])["name"] == "orders"
        assert "hunter2" not in call["scenario"]


def test_load_refuses_native_http2_and_a_missing_secret_with_exit_2(
    runs: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ORDERS_SECRET", raising=False)
    native = _load("--scenario", "orders", "--engine", "native", "--http2")
    assert native.exit_code == 2, native.output
    assert "native speaks HTTP/1.1 only" in native.output
    for engine in ("native", "locust"):
        unset = _load("--scenario", "orders", "--engine", engine)
        assert unset.exit_code == 2, unset.output
        assert "ORDERS_SECRET is not set" in unset.output
    assert runs == []


def test_accept_refuses_a_missing_secret_first_and_runs_on_the_engine_load_would_choose(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from loadkit.run import accept as accept_module
    from tests.loadkit.crafted import crafted_smoke

    loads: list[dict[str, Any]] = []

    def load(plan: Any, _target: str, out: Path, **_kwargs: Any) -> Any:
        loads.append(
            {
                "scenario": plan.profile.scenario,
                "declarative": plan.description,
                "engine": plan.engine,
                "http2": plan.http2,
            }
        )
        results = crafted_load(errors=())
        write_results(out, results)
        return results

    monkeypatch.setattr(accept_module, "_smoke", lambda *_a, **_k: crafted_smoke())
    monkeypatch.setattr(accept_module, "_load", load)
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "app.py").write_text("def handler() -> int:\n    return 1\n")
    config = tmp_path / "a.toml"
    config.write_text(
        '[[criteria]]\nmetric = "load.p95_ms"\nop = "<"\nthreshold = 1000\n'
        '[lock_audit]\npaths = ["src"]\n'
        + SCENARIO
        + '[profiles.mix]\nscenario = "orders"\nconcurrency = 2\nduration_s = 2\n'
        + '[profiles.native]\nscenario = "orders"\nengine = "native"\n'
    )
    args = ["accept", "--config", str(config), "--host", "http://127.0.0.1:9", "--profile", "mix"]
    args += ["--out-dir", str(tmp_path / "r")]
    monkeypatch.delenv("ORDERS_SECRET", raising=False)
    unset = CliRunner().invoke(app, args)
    assert unset.exit_code == 2 and "ORDERS_SECRET is not set" in unset.output, unset.output
    assert loads == [] and not (tmp_path / "r").exists()
    monkeypatch.setenv("ORDERS_SECRET", "hunter2")
    passed = CliRunner().invoke(app, args)
    assert passed.exit_code == 0, passed.output
    (run,) = loads
    assert run["scenario"] == "orders" and json.loads(run["declarative"])["name"] == "orders"
    # On the engine `loadkit load` would choose, named as it names it: native by default,
    # Locust with --http2.
    assert run["engine"] == "native"
    assert "load: orders, 2 connections, 2 s, engine native" in passed.output
    over_http2 = CliRunner().invoke(app, [*args, "--http2"])
    assert over_http2.exit_code == 0, over_http2.output
    assert loads[-1]["engine"] == "locust" and loads[-1]["http2"] is True
    assert "load: orders, 2 users, 2 s, engine locust" in over_http2.output
    # A profile asking for what cannot be: exit 2 before anything runs, saying what to write.
    args[args.index("mix")] = "native"
    refused = CliRunner().invoke(app, [*args, "--http2"])
    assert refused.exit_code == 2, refused.output
    assert 'native speaks HTTP/1.1 only: remove --http2, or use engine = "locust" in ' in (
        refused.output
    )
    assert len(loads) == 2

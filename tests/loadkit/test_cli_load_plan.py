"""`loadkit load`'s options, bundled and planned (cli_load_plan.py), and the help panels that
group them (cli_options.py): what a command line resolves to before any engine starts, and
where each option is listed in `--help`. Pure: no load is run, no server started."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from loadkit.cli import DEFAULT_PANEL, app
from loadkit.cli_load_plan import (
    DistributedOptions,
    EngineOptions,
    LoadOptions,
    OutputOptions,
    ProfileOptions,
    RequestOptions,
    TlsFlags,
    plan_load,
)
from loadkit.cli_options import DISTRIBUTED_PANEL, MODEL_PANEL, SERVICE_PANEL, TLS_PANEL
from loadkit.defaults import DEFAULT_TARGET
from loadkit.exceptions import ConfigError

OPTIONS = LoadOptions(
    request=RequestOptions(url=None, host=None, method=None, headers=(), body=None),
    profile=ProfileOptions(
        config=None,
        profile="default",
        scenario=None,
        concurrency=None,
        duration_s=None,
        spawn_rate=None,
        rate=None,
        max_in_flight=None,
        stages=None,
    ),
    engine=EngineOptions(engine=None, processes="1", http2=False),
    tls=TlsFlags(insecure=False, ca_cert=None),
    output=OutputOptions(out=Path("load.json"), html=None, quiet=True),
    distributed=DistributedOptions(
        master=False,
        expect_workers=1,
        expect_workers_max_wait=60,
        master_bind_host="127.0.0.1",
        worker=False,
        master_host="127.0.0.1",
        master_port=5557,
    ),
)


@pytest.fixture(autouse=True)
def _no_checkout_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # the checkout's ./acceptance.toml is not these runs' profile


def with_request(**fields: object) -> LoadOptions:
    return replace(OPTIONS, request=replace(OPTIONS.request, **fields))  # type: ignore[arg-type]


def test_a_url_with_its_request_options_plans_a_native_url_run() -> None:
    url = "http://127.0.0.1:9/items?x=1"
    options = with_request(url=url, method="post", headers=("X-A: 1",), body="hi")
    plan, request = plan_load(options, locust_args=(), locust_args_given=False)
    assert (plan.engine, plan.profile.scenario, request.url) == ("native", "url", url)
    assert (request.method, request.headers, request.body) == (
        "POST",
        (("X-A", "1"),),
        b"hi",
    )
    assert (plan.processes, plan.abort_on, plan.description) == (1, (), None)


def test_without_a_url_the_host_or_the_default_target_is_the_base_url() -> None:
    plan, request = plan_load(OPTIONS, locust_args=("--tags", "a"), locust_args_given=True)
    assert (plan.engine, request.url, plan.locust_args) == (
        "locust",
        DEFAULT_TARGET,
        ("--tags", "a"),
    )
    _plan, hosted = plan_load(
        with_request(host="http://127.0.0.1:9"), locust_args=(), locust_args_given=False
    )
    assert hosted.url == "http://127.0.0.1:9"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"method": "PUT"}, "--method shapes the request of a URL run: give the URL"),
        ({"headers": ("X-A: 1",), "body": "x"}, "--header shapes the request of a URL run"),
    ],
)
def test_shaping_a_request_without_a_url_names_the_flag(
    fields: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        plan_load(with_request(**fields), locust_args=(), locust_args_given=False)


def test_a_native_worker_refuses_processes_and_a_locust_worker_keeps_them() -> None:
    worker = replace(OPTIONS.distributed, worker=True)
    native = replace(
        OPTIONS,
        distributed=worker,
        engine=EngineOptions(engine="native", processes="2", http2=False),
    )
    with pytest.raises(ConfigError, match="--processes on a native worker"):
        plan_load(native, locust_args=(), locust_args_given=False)
    locust = replace(native, engine=replace(native.engine, engine="locust"))
    assert plan_load(locust, locust_args=(), locust_args_given=False)[0].processes == 2


def test_only_the_given_configs_abort_on_fail_criteria_can_stop_the_run(tmp_path: Path) -> None:
    toml = (
        '[[criteria]]\nmetric = "load.p95_ms"\nop = "<"\nthreshold = 1\nabort_on_fail = true\n'
        '[[criteria]]\nmetric = "load.error_rate"\nop = "<"\nthreshold = 0.1\n'
    )
    # ./acceptance.toml is read for its profiles, never for criteria that stop a run.
    (tmp_path / "acceptance.toml").write_text(toml)
    assert plan_load(OPTIONS, locust_args=(), locust_args_given=False)[0].abort_on == ()
    given = replace(OPTIONS, profile=replace(OPTIONS.profile, config=tmp_path / "acceptance.toml"))
    plan, _request = plan_load(given, locust_args=(), locust_args_given=False)
    assert [c.metric for c in plan.abort_on] == ["load.p95_ms"]


@pytest.mark.parametrize("command", ["load", "accept"])
def test_every_option_of_load_and_accept_is_listed_under_a_panel(command: str) -> None:
    click_command = typer.main.get_command(app).commands[command]  # type: ignore[attr-defined]
    unpanelled = [
        param.name
        for param in click_command.params
        if param.param_type_name == "option" and not getattr(param, "rich_help_panel", None)
    ]
    assert unpanelled == []


def section(help_text: str, title: str) -> str:
    """The lines of one ``title:`` section of a --help text."""
    after = help_text.split(f"\n{title}:\n", 1)[1]
    return after.split("\n\n", 1)[0]


def test_the_help_lists_options_under_their_panels() -> None:
    load = CliRunner().invoke(app, ["load", "--help"], terminal_width=100)
    assert load.exit_code == 0, load.output
    assert "--master-port" in section(load.output, DISTRIBUTED_PANEL)
    assert "--master-port" not in section(load.output, MODEL_PANEL)
    assert "--stages" in section(load.output, MODEL_PANEL)
    assert section(load.output, DEFAULT_PANEL).split() == [
        "--help",
        "Show",
        "this",
        "message",
        "and",
        "exit.",
    ]
    accept = CliRunner().invoke(app, ["accept", "--help"], terminal_width=100)
    assert "--service-env" in section(accept.output, SERVICE_PANEL)
    assert "--ca-cert" in section(accept.output, TLS_PANEL)

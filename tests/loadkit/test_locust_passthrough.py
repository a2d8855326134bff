"""`loadkit load … -- <Locust args>`: what reaches Locust, and what is refused (exit 2 in one line,
before anything starts), and the plugin's check of what Locust parsed (an abbreviation, a key the
reading before the run missed). No Locust is started here: the run functions are replaced."""

from __future__ import annotations

import json
from argparse import Namespace
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from loadkit.cli import app
from loadkit.engines.locust.launch import (
    Headless,
    LocalWorkers,
    LocustLaunch,
    Users,
    WebUI,
    Worker,
)
from loadkit.engines.locust.locust_config import ConfigFile, LocustConfig
from loadkit.engines.locust.passthrough import check_locust_args, locust_usage_error
from loadkit.engines.locust.plugin.launch_check import launch_mismatch
from loadkit.exceptions import ConfigError


@pytest.mark.parametrize(
    ("args", "named", "instead"),
    [
        (["--run-time", "5s"], "--run-time", "use --duration"),
        (["--run-time=5s"], "--run-time", "use --duration"),
        (["-t", "5s"], "-t (Locust's --run-time)", "use --duration"),
        (["-t5s"], "-t (Locust's --run-time)", "use --duration"),
        (["--users=3"], "--users", "use --concurrency"),
        (["-u10"], "-u (Locust's --users)", "use --concurrency"),
        (["-r", "2"], "-r (Locust's --spawn-rate)", "use --spawn-rate"),
        (["-H", "http://x"], "-H (Locust's --host)", "use --host"),
        (["-f", "x.py"], "-f (Locust's --locustfile)", "use --scenario"),
        (["--headless"], "--headless", "`loadkit load`"),
        (["--autostart"], "--autostart", "`loadkit ui`"),
        (["--reset-stats"], "--reset-stats", "loadkit measures the whole run"),
        (["--json"], "--json", "use --out"),
        (["--json-file", "f"], "--json-file", "use --out"),
        (["--csv=f", "--csv-full-history"], "--csv", "use --out"),
        (["--html", "r.html"], "--html", "use --out"),
        (["--processes", "2"], "--processes", "use --processes"),
        (["--master-host", "h"], "--master-host", "use --master-host"),
        (["--expect-workers-max-wait", "3"], "--expect-workers-max-wait", "--expect-workers"),
        (["-P8090"], "-P (Locust's --web-port)", "--web-port"),
        (["--exit-code-on-error", "1"], "--exit-code-on-error", "`loadkit gate`"),
        (["--config", "x.conf"], "--config", "configuration files itself"),
        (["--loadkit-out", "x"], "--loadkit-out (loadkit's plugin option)", "sets it itself"),
        (["--list"], "--list", "run `locust -f <scenario> --list`"),
        (["--tags", "a", "--only-summary"], "--only-summary", "use --quiet"),
        # Abbreviations of what Locust acts on before the plugin's check of its parsed options.
        (["--lis"], "--lis (Locust's --list)", "run `locust -f <scenario> --list`"),
        (["--proc", "2"], "--proc (Locust's --processes)", "use --processes"),
        (["--work"], "--work (Locust's --worker)", "`loadkit load --worker`"),
        (["--autoq=3"], "--autoq (Locust's --autoquit)", "`loadkit ui`"),
        (["--loadkit-o", "x"], "--loadkit-o (loadkit's plugin option)", "sets it itself"),
    ],
)
def test_an_option_loadkit_sets_itself_is_exit_2_naming_it_and_what_to_use(
    monkeypatch: pytest.MonkeyPatch, args: list[str], named: str, instead: str
) -> None:
    monkeypatch.setattr("loadkit.run.load.run_load", _never_called)
    result = CliRunner().invoke(app, ["load", "http://127.0.0.1:1/", "--", *args])
    assert result.exit_code == 2, result.output
    (line,) = result.output.strip().splitlines()
    assert line.startswith(f"error: {named} cannot be passed to Locust after `--`: "), line
    assert instead in line


def test_locusts_other_options_and_the_locustfiles_own_go_through_as_they_are() -> None:
    args = ["--tags", "a", "-T", "b", "--exclude-tags=c", "-E", "d", "--loglevel", "DEBUG"]
    args += ["-LWARNING", "--stop-timeout", "3", "--my-arg", "x", "--my-flag", "MyUser"]
    args += ["--web-host-display-name", "n", "--config-users", "{}", "--equal-weights"]
    assert check_locust_args(args) == tuple(args)
    # After a second `--`, argparse reads user class names only: nothing there is an option.
    assert check_locust_args(["--", "--headless"]) == ("--", "--headless")


def test_an_abbreviation_is_left_to_locusts_parser_and_the_plugins_check() -> None:
    # Before: `--user` was refused as --users, though a locustfile's own --user wins in
    # Locust's parser (exact match); an abbreviation that does reach --users or --run-time is
    # caught by the plugin once Locust parsed it (plugin/launch_check.py).
    args = ["--user", "bob", "--run", "5s", "--spawn=3", "--h"]
    assert check_locust_args(args) == tuple(args)


def test_the_url_argument_never_takes_the_first_word_after_the_separator(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = _capture(monkeypatch, "run_load")
    result = CliRunner().invoke(app, ["load", "--", "--tags", "checkout", "--my-arg", "x"])
    assert result.exit_code == 0, result.output
    assert calls[-1]["target"] == "http://127.0.0.1:8000"
    assert calls[-1]["locust_args"] == ("--tags", "checkout", "--my-arg", "x")
    command = ["load", "http://127.0.0.1:9/api", "--engine", "locust", "--duration", "3"]
    command += ["--", "MyUser", "--", "x"]
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 0, result.output
    assert calls[-1]["target"] == "http://127.0.0.1:9/api"
    assert calls[-1]["profile"].duration_s == 3
    assert calls[-1]["locust_args"] == ("MyUser", "--", "x")
    # A `--` that is an option's value is not the separator (click takes it as the value).
    result = CliRunner().invoke(app, ["load", "--out", "--", "--", "--tags", "a"])
    assert result.exit_code == 0, result.output
    assert calls[-1]["out"] == Path("--") and calls[-1]["locust_args"] == ("--tags", "a")


def test_workers_and_the_web_ui_take_locust_args_too(monkeypatch: pytest.MonkeyPatch) -> None:
    workers = _capture(monkeypatch, "run_worker")
    result = CliRunner().invoke(app, ["load", "--worker", "--", "--loglevel", "DEBUG"])
    assert result.exit_code == 0, result.output
    assert workers[-1]["locust_args"] == ("--loglevel", "DEBUG")
    uis = _capture(monkeypatch, "run_ui")
    result = CliRunner().invoke(app, ["ui", "--scenario", "login", "--", "--tags", "a"])
    assert result.exit_code == 0, result.output
    assert uis[-1]["locust_args"] == ("--tags", "a")
    refused = CliRunner().invoke(app, ["ui", "--", "--web-port", "9000"])
    assert refused.exit_code == 2, refused.output
    assert "use --web-port of `loadkit ui`" in refused.output


@pytest.mark.parametrize("command", [["smoke"], ["accept"], ["serve"]])
def test_other_commands_say_that_they_take_nothing_after_the_separator(
    command: list[str],
) -> None:
    result = CliRunner().invoke(app, [*command, "--", "--tags", "a"])
    assert result.exit_code == 2, result.output
    assert "`--` passes arguments to Locust, which only `loadkit load` and `loadkit ui`" in (
        " ".join(result.output.split())
    )


def test_the_help_explains_the_separator() -> None:
    result = CliRunner().invoke(app, ["load", "--help"])
    assert "[-- LOCUST_ARGS...]" in result.output
    assert "Everything after `--` goes to Locust" in " ".join(result.output.split())


def test_locusts_own_refusal_is_found_in_its_output() -> None:
    output = (
        "[2026-12-01 10:00:00] INFO/locust.main: Starting Locust 2.47.0\n"
        "locust: error: unrecognized arguments: --tagz a\n"
        "Did you mean '--tags'?\n"
    )
    assert locust_usage_error(2, output) == (
        "locust: error: unrecognized arguments: --tagz a Did you mean '--tags'?"
    )
    unknown = "[2026-12-01 10:00:00] ERROR/locust.main: Unknown User(s): Nobody\n"
    assert locust_usage_error(1, unknown) == "Unknown User(s): Nobody"
    # The plugin's own refusal of what Locust parsed has the same form.
    plugin = "loadkit: error: `--run` after `--` sets Locust's --run-time, which would ...\n"
    assert locust_usage_error(2, output + plugin) == plugin.strip()
    # The same words at another exit code are not a refusal of the command line.
    assert locust_usage_error(4, output) is None
    assert locust_usage_error(2, "Traceback ...\nboom\n") is None


def test_refusals_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="--duration"):
        check_locust_args(["--tags", "a", "-t", "1m"])


def _never_called(**_kwargs: Any) -> None:
    raise AssertionError("the run must not start")


def _capture(monkeypatch: pytest.MonkeyPatch, name: str) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []

    def fake(**kwargs: Any) -> Any:
        calls.append(kwargs)
        if name == "run_load":
            from tests.loadkit.crafted import crafted_load

            return crafted_load(errors=())
        return 0

    monkeypatch.setattr(f"loadkit.run.load.{name}", fake)
    return calls


# --- inside Locust: its parsed options against what loadkit's launch needs ---------------------

LAUNCH = LocustLaunch(
    scenario=Path("/s/shop.py"),
    role=Headless(
        users=Users(host="http://h:1/api", count=3, spawn_rate=1 / 3, scenario_label="shop"),
        duration_s=2,
        out=Path("/r/load.json"),
        status=Path("/t/status.json"),
        run_id="r",
    ),
    parent_pid=1,
    locust_args=("--run", "5s", "--user", "bob"),
    locust_config=LocustConfig(
        files=(ConfigFile(path="locust.conf", keys=("tags", "reset")),), env=("LOCUST_HTML",)
    ),
)


def parsed(launch: LocustLaunch, **changed: object) -> Namespace:
    """Locust's parsed options as loadkit's command line leaves them, but for ``changed``."""
    options = Namespace(**launch.expected_options(), loglevel="INFO", user="bob")
    for name, value in changed.items():
        setattr(options, name, value)
    return options


def record(launch: LocustLaunch) -> dict[str, Any]:
    return dict(json.loads(launch.argv()[launch.argv().index("--loadkit-launch") + 1]))


@pytest.mark.parametrize(
    ("changed", "line"),
    [
        (
            {"run_time": 5},
            "`--run` after `--` sets Locust's --run-time, which would change the run loadkit "
            "measures: loadkit sets it itself; use --duration",
        ),
        ({"num_users": 7}, "Locust's configuration sets Locust's --users"),
        ({"reset_stats": True}, "locust.conf: key 'reset' sets Locust's --reset-stats"),
        ({"html_file": "r.html"}, "environment variable LOCUST_HTML sets Locust's --html"),
        ({"headless": False}, "sets Locust's --headful, which would change"),
        ({"spawn_rate": 0.33}, "sets Locust's --spawn-rate"),
        ({"exit_code_on_error": 1}, "use `loadkit gate` (its criteria judge errors)"),
    ],
)
def test_an_option_locust_parsed_otherwise_is_named_with_what_set_it(
    changed: dict[str, object], line: str
) -> None:
    found = launch_mismatch(parsed(LAUNCH, **changed), record(LAUNCH))
    assert found is not None
    assert line in found.describe()


def test_options_as_loadkit_set_them_pass_in_every_role() -> None:
    roles: list[Headless | WebUI | Worker] = [
        LAUNCH.role,
        WebUI(users=Users(host="http://h", count=1, spawn_rate=1, scenario_label="s"), port=9,
              results_dir=Path("/r")),
        Worker(master_host="10.0.0.5", master_port=5557, processes=2),
    ]  # fmt: skip
    for role in roles:
        launch = replace(LAUNCH, role=role)
        assert launch_mismatch(parsed(launch), record(launch)) is None
    # A worker forked by --processes has worker=True where its headless parent has not: the
    # parent checks the options they share.
    assert isinstance(LAUNCH.role, Headless)
    forked = replace(LAUNCH, role=replace(LAUNCH.role, workers=LocalWorkers(count=2, port=9)))
    assert launch_mismatch(parsed(forked, worker=True, master=False), record(forked)) is None
    # Locust run by hand with the plugin: nothing to compare with.
    assert launch_mismatch(parsed(LAUNCH, run_time=5), {}) is None


def test_an_option_the_library_caller_gave_as_spelled_is_left_to_it() -> None:
    # run_load(locust_args=["--json-file", ...]) (tests, benchmarks) wants Locust's JSON beside
    # loadkit's: the CLI refuses that spelling, so only such a caller can pass it.
    launch = replace(LAUNCH, locust_args=("--json-file", "/t/locust"))
    assert "json_file" not in launch.expected_options()
    assert launch_mismatch(parsed(launch, json_file="/t/locust"), record(launch)) is None

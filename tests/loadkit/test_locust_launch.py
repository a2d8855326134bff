"""The Locust command line of every role loadkit starts it in, built from one value (pure: no
Locust is started or imported here)."""

from __future__ import annotations

import ast
import json
import sys
from argparse import Namespace
from dataclasses import replace
from pathlib import Path
from typing import Any

import configargparse  # type: ignore[import-untyped]  # Locust's own parser

from loadkit.engines.http_request import RequestSpec
from loadkit.engines.locust.launch import (
    PLUGIN_PATH,
    URL_REQUEST_ENV,
    Headless,
    LocalWorkers,
    LocustLaunch,
    RemoteWorkers,
    Schedule,
    Users,
    WebUI,
    Worker,
)
from loadkit.engines.locust.locust_config import ConfigFile, LocustConfig
from loadkit.engines.locust.plugin.launch_check import launch_mismatch
from loadkit.stages import Stage

SCENARIO = Path("/s/login.py")
USERS = Users(host="http://127.0.0.1:8000", count=4, spawn_rate=2.0, scenario_label="login")
PREFIX = [
    sys.executable, "-m", "locust", "-f", f"{SCENARIO},{PLUGIN_PATH}",
    "--loadkit-parent-pid", "77",
]  # fmt: skip
HEADLESS = Headless(
    users=USERS,
    duration_s=2.5,
    out=Path("/r/load.json"),
    status=Path("/t/status.json"),
    run_id="abc",
)


def launch(role: Headless | WebUI | Worker, *extra: str) -> LocustLaunch:
    return LocustLaunch(scenario=SCENARIO, role=role, parent_pid=77, locust_args=extra)


def after(argv: list[str], flag: str) -> str:
    """The value that follows ``flag`` (which must appear once)."""
    assert argv.count(flag) == 1, (flag, argv)
    return argv[argv.index(flag) + 1]


NOTHING_PASSED = {"locust_args": [], "locust_config": {"files": [], "env": []}}


def recorded(argv: list[str]) -> dict[str, object]:
    """The launch record for the results (``--loadkit-launch``, last of loadkit's own), without
    what the plugin checks Locust's parsed options against (``expect``)."""
    record = dict(json.loads(after(argv, "--loadkit-launch")))
    assert isinstance(record.pop("expect"), dict)
    return record


def test_headless_run_in_one_process() -> None:
    assert launch(HEADLESS).argv() == [
        *PREFIX,
        "--headless",
        "--users", "4", "--spawn-rate", "2",
        "--exit-code-on-error", "0", "--loadkit-scenario", "login",
        "--only-summary",
        "--loadkit-out", "/r/load.json", "--loadkit-status", "/t/status.json",
        "--loadkit-duration", "2.5", "--loadkit-run-id", "abc", "--loadkit-keep-exit-code",
        "--loadkit-launch", after(launch(HEADLESS).argv(), "--loadkit-launch"),
    ]  # fmt: skip
    assert recorded(launch(HEADLESS).argv()) == NOTHING_PASSED
    assert launch(HEADLESS).environ() == {"LOCUST_HOST": "http://127.0.0.1:8000"}


def test_a_password_in_the_target_is_in_locusts_environment_never_its_command_line() -> None:
    # Every user of the machine reads a process's command line (ps); its environment, only
    # its own user. The launch record the plugin checks Locust's options against masks it.
    users = replace(USERS, host="http://bob:Pa55word@127.0.0.1:8000/v2")
    for role in (
        replace(HEADLESS, users=users),
        replace(HEADLESS, users=users, workers=LocalWorkers(count=2, port=1)),
        replace(HEADLESS, users=users, workers=RemoteWorkers(expect=1, bind_host="h", bind_port=1)),
        WebUI(users=users, port=8089, results_dir=Path("/r")),
    ):
        argv = launch(role).argv()
        assert not any("Pa55word" in arg for arg in argv), argv
        assert launch(role).environ() == {"LOCUST_HOST": "http://bob:Pa55word@127.0.0.1:8000/v2"}
        expect = json.loads(after(argv, "--loadkit-launch"))["expect"]
        assert expect["host"] == "http://bob:***@127.0.0.1:8000/v2"
    # A worker takes the host from its master, over Locust's transport.
    assert launch(Worker(master_host="h", master_port=1)).environ() == {}


def test_the_plugin_checks_the_host_locust_parsed_against_the_masked_record() -> None:
    users = replace(USERS, host="http://bob:Pa55word@127.0.0.1:8000")
    started = launch(replace(HEADLESS, users=users), "--ho", "http://elsewhere")
    record = json.loads(after(started.argv(), "--loadkit-launch"))
    options = Namespace(**started.expected_options())
    options.host = "http://bob:Pa55word@127.0.0.1:8000"  # as Locust reads it from LOCUST_HOST
    assert launch_mismatch(options, record) is None
    options.host = "http://elsewhere"  # what the abbreviation after `--` made of it
    found = launch_mismatch(options, record)
    assert found is not None and found.source == "`--ho` after `--`"


def test_the_plugin_refuses_a_host_with_another_password_that_masks_alike() -> None:
    # The record carries the host masked (it is on the command line): `http://bob:other@h`
    # masks as loadkit's does. The plugin compares with LOCUST_HOST, password and all.
    users = replace(USERS, host="http://bob:Pa55word@127.0.0.1:8000")
    started = launch(replace(HEADLESS, users=users), "--hos", "http://bob:other@127.0.0.1:8000")
    record = json.loads(after(started.argv(), "--loadkit-launch"))
    options = Namespace(**started.expected_options())
    options.host = "http://bob:other@127.0.0.1:8000"  # what the abbreviation made of it
    found = launch_mismatch(options, record, started.environ())
    assert found is not None and found.option == "--host"
    assert found.source == "`--hos` after `--`"
    assert "other" not in found.describe() and "Pa55word" not in found.describe()
    options.host = "http://bob:Pa55word@127.0.0.1:8000"  # as Locust reads LOCUST_HOST
    assert launch_mismatch(options, record, started.environ()) is None


def test_a_headless_run_has_no_locust_run_time_to_count_the_test_start_hooks() -> None:
    # Locust's --run-time clock starts before the locustfile's test_start hooks, the plugin's
    # after them: a 10 s hook made a 10 s run "incomplete". The plugin alone stops the test.
    for workers in (
        None,
        LocalWorkers(count=2, port=1),
        RemoteWorkers(expect=1, bind_host="h", bind_port=1),
    ):
        argv = launch(replace(HEADLESS, workers=workers)).argv()
        assert not {"--run-time", "-t"} & set(argv)
        assert after(argv, "--loadkit-duration") == "2.5"


def test_the_locust_args_and_configuration_are_recorded_for_the_results() -> None:
    config = LocustConfig(
        files=(ConfigFile(path="locust.conf", keys=("tags",)),), env=("LOCUST_TAGS",)
    )
    argv = LocustLaunch(
        scenario=SCENARIO,
        role=HEADLESS,
        parent_pid=77,
        locust_args=("--tags", "a"),
        locust_config=config,
    ).argv()
    assert recorded(argv) == {
        "locust_args": ["--tags", "a"],
        "locust_config": {
            "files": [{"path": "locust.conf", "keys": ["tags"]}],
            "env": ["LOCUST_TAGS"],
        },
    }
    assert argv[-2:] == ["--tags", "a"]


def test_headless_with_workers_forked_here_talks_over_a_loopback_port() -> None:
    argv = launch(replace(HEADLESS, workers=LocalWorkers(count=2, port=40123))).argv()
    assert after(argv, "--processes") == "2"
    assert after(argv, "--master-bind-host") == "127.0.0.1"
    assert after(argv, "--master-bind-port") == after(argv, "--master-port") == "40123"
    assert "--master" not in argv and "--worker" not in argv


def test_headless_master_waits_for_remote_workers_where_told() -> None:
    workers = RemoteWorkers(expect=3, bind_host="0.0.0.0", bind_port=5557, wait_s=7)
    argv = launch(replace(HEADLESS, workers=workers)).argv()
    assert "--master" in argv and "--headless" in argv
    assert after(argv, "--expect-workers") == "3"
    # Locust gives up (and loadkit says so) when they have not all come by then.
    assert after(argv, "--expect-workers-max-wait") == "7"
    assert after(argv, "--master-bind-host") == "0.0.0.0"
    assert after(argv, "--master-bind-port") == "5557"
    assert "--processes" not in argv


def test_web_ui_on_loopback_writes_one_file_per_test_in_its_folder() -> None:
    role = WebUI(users=USERS, port=8089, results_dir=Path("/r"))
    assert launch(role).argv() == [
        *PREFIX,
        "--web-host", "127.0.0.1", "--web-port", "8089",
        "--users", "4", "--spawn-rate", "2",
        "--exit-code-on-error", "0", "--loadkit-scenario", "login",
        "--loadkit-dir", "/r", "--loadkit-launch", after(launch(role).argv(), "--loadkit-launch"),
    ]  # fmt: skip
    assert recorded(launch(role).argv()) == NOTHING_PASSED


def test_worker_of_a_master_elsewhere() -> None:
    one = launch(Worker(master_host="10.0.0.5", master_port=5557)).argv()
    assert one[:-2] == [*PREFIX, "--worker", "--master-host", "10.0.0.5", "--master-port", "5557"]
    several = launch(Worker(master_host="10.0.0.5", master_port=5557, processes=3)).argv()
    assert several[:-2] == [*one[:-2], "--processes", "3"]
    # Workers get the launch record too: the plugin checks their parsed options against it.
    assert recorded(one) == recorded(several) == NOTHING_PASSED


def test_the_url_scenario_gets_its_path_in_its_environment_and_others_do_not() -> None:
    url_users = Users(
        host="http://h:1", count=1, spawn_rate=1, scenario_label="url", url_path="/a?b=1"
    )
    for role in (
        replace(HEADLESS, users=url_users),
        WebUI(users=url_users, port=1, results_dir=Path("/r")),
    ):
        assert launch(role).environ() == {"LOCUST_HOST": "http://h:1", "LOCUST_URL_PATH": "/a?b=1"}
        assert not [arg for arg in launch(role).argv() if arg.startswith("--url-")]
    assert launch(HEADLESS).environ() == {"LOCUST_HOST": "http://127.0.0.1:8000"}
    assert "from_env" not in json.loads(after(launch(HEADLESS).argv(), "--loadkit-launch"))


TOKEN = "Bearer t0ken-5ecret"
BODY = '{"password": "b0dy-5ecret", "list": [1, 2]}'
QUERY_SECRET = "qu3ry-5ecret"
URL_REQUEST = RequestSpec(
    url=f"http://127.0.0.1:8000/private?token={QUERY_SECRET}",
    method="POST",
    headers=(("Authorization", TOKEN), ("X-Tags", "a, b=c, [d]")),
    body=BODY.encode(),
)
URL_USERS = Users(
    host="http://127.0.0.1:8000",
    count=1,
    spawn_rate=1,
    scenario_label="url",
    url_path=f"/private?token={QUERY_SECRET}",
    url_request=URL_REQUEST,
)


URL_SCENARIO = Path(__file__).parents[2] / "scenarios" / "url.py"


def url_parser() -> configargparse.ArgumentParser:
    """The url scenario's options as scenarios/url.py declares them, on Locust's parser class's
    base: its ``_add_arguments`` listener and the constants it reads, run from the file's own
    source (importing it would import Locust, which monkey-patches the process with gevent), so
    that a renamed option or variable there fails here."""
    module = ast.parse(URL_SCENARIO.read_text())
    kept: list[ast.stmt] = [
        node
        for node in module.body
        if isinstance(node, ast.Assign)
        or (isinstance(node, ast.FunctionDef) and node.name == "_add_arguments")
    ]
    for node in kept:
        if isinstance(node, ast.FunctionDef):
            node.decorator_list = []  # Locust's event hook: the parser is called directly here
    assert any(isinstance(node, ast.FunctionDef) for node in kept), URL_SCENARIO
    namespace: dict[str, Any] = {"Any": Any}
    exec(compile(ast.Module(body=kept, type_ignores=[]), str(URL_SCENARIO), "exec"), namespace)
    parser = configargparse.ArgumentParser()
    namespace["_add_arguments"](parser)
    return parser


def test_the_variables_loadkit_passes_are_those_of_the_url_scenarios_options() -> None:
    variables = {action.dest: getattr(action, "env_var", None) for action in url_parser()._actions}
    for dest, variable in URL_REQUEST_ENV.items():
        assert variables.get(dest) == variable, (dest, variables)


def test_a_url_runs_headers_body_and_query_are_in_locusts_environment_never_its_command_line() -> (
    None
):
    # Every user of the machine reads a process's command line (ps); its environment, only its
    # own user. The launch record (on the command line) names the variables, not their values.
    for role in (
        replace(HEADLESS, users=URL_USERS),
        replace(HEADLESS, users=URL_USERS, workers=LocalWorkers(count=2, port=1)),
        replace(
            HEADLESS, users=URL_USERS, workers=RemoteWorkers(expect=1, bind_host="h", bind_port=1)
        ),
        WebUI(users=URL_USERS, port=8089, results_dir=Path("/r")),
    ):
        started = launch(role)
        argv = started.argv()
        for secret in ("t0ken-5ecret", "b0dy-5ecret", QUERY_SECRET):
            assert not any(secret in arg for arg in argv), (secret, argv)
        assert after(argv, "--url-method") == "POST"  # no secret: stays where ps shows it
        environ = started.environ()
        assert json.loads(environ["LOCUST_URL_HEADER"]) == [
            f"Authorization: {TOKEN}",
            "X-Tags: a, b=c, [d]",
        ]
        assert environ["LOCUST_URL_BODY"] == BODY
        assert environ["LOCUST_URL_PATH"] == f"/private?token={QUERY_SECRET}"
        assert json.loads(after(argv, "--loadkit-launch"))["from_env"] == {
            "url_body": "LOCUST_URL_BODY",
            "url_header": "LOCUST_URL_HEADER",
            "url_path": "LOCUST_URL_PATH",
        }
        # Locust's parser (configargparse) makes of the variables what the command line said.
        parsed = url_parser().parse_args(["--url-method", "POST"], env_vars=environ)
        assert parsed.url_header == [f"Authorization: {TOKEN}", "X-Tags: a, b=c, [d]"]
        assert parsed.url_body == BODY and parsed.url_path == f"/private?token={QUERY_SECRET}"
        assert launch_mismatch(parsed, json.loads(after(argv, "--loadkit-launch")), environ) is None
    # A worker gets them from its master with each spawn (Locust sends its parsed options).
    assert launch(Worker(master_host="h", master_port=1)).environ() == {}


def test_a_body_no_variable_can_carry_goes_in_a_file_named_on_the_command_line() -> None:
    request = replace(URL_REQUEST, body=b"\0\xff")
    users = replace(URL_USERS, url_request=request, url_body_file=Path("/tmp/run/url-body"))
    started = launch(replace(HEADLESS, users=users))
    assert after(started.argv(), "--url-body-file") == "/tmp/run/url-body"
    assert "LOCUST_URL_BODY" not in started.environ()


def test_a_url_run_owns_the_url_scenarios_variables_in_locusts_environment() -> None:
    # A user's own LOCUST_URL_BODY (exported for plain Locust) must not add a body to a URL run
    # given none; other variables, and other scenarios' runs, keep the user's environment.
    users = replace(URL_USERS, url_request=RequestSpec(url="http://127.0.0.1:8000/"))
    mine = {"LOCUST_URL_BODY": "stray", "LOCUST_URL_HEADER": "X: stray", "LOCUST_TAGS": "a"}
    child = launch(replace(HEADLESS, users=users)).child_environ({**mine, "HOME": "/h"})
    assert child == {
        "HOME": "/h",
        "LOCUST_TAGS": "a",
        "LOCUST_HOST": "http://127.0.0.1:8000",
        "LOCUST_URL_PATH": f"/private?token={QUERY_SECRET}",
    }
    assert launch(HEADLESS).child_environ(mine) == {**mine, "LOCUST_HOST": "http://127.0.0.1:8000"}


def test_the_plugin_refuses_an_option_that_undoes_a_variable_loadkit_passed() -> None:
    # configargparse skips a variable whose option is on the command line: a --url-header
    # after `--` would drop the headers loadkit was given, unseen. The plugin says so instead.
    started = launch(replace(HEADLESS, users=URL_USERS), "--url-header", "X-Mine: 1")
    record = json.loads(after(started.argv(), "--loadkit-launch"))
    environ = started.environ()
    parsed = url_parser().parse_args(["--url-header", "X-Mine: 1"], env_vars=environ)
    assert parsed.url_header == ["X-Mine: 1"]
    found = launch_mismatch(parsed, record, environ)
    assert found is not None and found.option == "--url-header"
    assert found.source == "`--url-header` after `--`"
    assert "LOCUST_URL_HEADER" in found.describe() and "--header" in found.describe()
    assert "t0ken" not in found.describe()
    # A configuration file's key for an option loadkit passes none of (here: no body).
    no_body = replace(URL_USERS, url_request=replace(URL_REQUEST, body=b""))
    config = LocustConfig(files=(ConfigFile(path="locust.conf", keys=("url-body",)),))
    started = LocustLaunch(
        scenario=SCENARIO,
        role=replace(HEADLESS, users=no_body),
        parent_pid=77,
        locust_config=config,
    )
    record = json.loads(after(started.argv(), "--loadkit-launch"))
    parsed = url_parser().parse_args(["--url-body=from-the-file"], env_vars=started.environ())
    found = launch_mismatch(parsed, record, started.environ())
    assert found is not None and found.option == "--url-body"
    assert found.source == "locust.conf: key 'url-body'"
    parsed = url_parser().parse_args([], env_vars=started.environ())
    assert launch_mismatch(parsed, record, started.environ()) is None


def test_the_callers_locust_args_come_last_so_they_win() -> None:
    argv = launch(HEADLESS, "--json-file", "/t/locust", "--users", "9").argv()
    assert argv[-4:] == ["--json-file", "/t/locust", "--users", "9"]


def test_only_a_headless_run_has_a_live_status_file() -> None:
    assert launch(HEADLESS).status_path == Path("/t/status.json")
    assert launch(WebUI(users=USERS, port=1, results_dir=Path("/r"))).status_path is None
    assert launch(Worker(master_host="h", master_port=1)).status_path is None


def test_an_open_run_and_its_stages_reach_the_plugin() -> None:
    # The timetable lives in the plugin: loadkit passes it the rate, the bound and the stages
    # (JSON), and Locust's users are the slots (launcher: one user per iteration at once).
    stages = (Stage(duration_s=30.0, target=50.0), Stage(duration_s=0.5, target=0, name="down"))
    schedule = Schedule(rate=1_234_567.5, max_in_flight=40, stages=stages)
    argv = launch(replace(HEADLESS, schedule=schedule)).argv()
    assert after(argv, "--loadkit-rate") == "1234567.5"  # exact, not 1.23457e+06
    assert after(argv, "--loadkit-max-in-flight") == "40"
    assert json.loads(after(argv, "--loadkit-stages")) == [
        {"duration_s": 30.0, "target": 50.0, "name": None},
        {"duration_s": 0.5, "target": 0.0, "name": "down"},
    ]
    closed_stages = launch(replace(HEADLESS, schedule=Schedule(stages=stages))).argv()
    assert "--loadkit-stages" in closed_stages
    assert not {"--loadkit-rate", "--loadkit-max-in-flight"} & set(closed_stages)
    plain = launch(HEADLESS).argv()
    assert not [arg for arg in plain if arg in {"--loadkit-rate", "--loadkit-stages"}]

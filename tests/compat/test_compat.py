"""Each compatibility locustfile through plain Locust and through ``loadkit load``, at once.

loadkit promises that a team's existing locustfiles run unchanged and are measured as Locust
runs them: the same requests, the same failures, under the same endpoint names. Every test
first checks that plain Locust did the locustfile's planned work (so a comparison of two empty
runs cannot pass), then that loadkit's results say the same, and that loadkit called the run
what plain Locust's run was.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.compat.answering_server import answering_server
from tests.compat.two_tools import (
    Counts,
    assert_plain_counts,
    assert_same_counts,
    assert_valid,
    run_both,
)

pytestmark = pytest.mark.slow

SECONDS = 1
"""loadkit's --duration (plain Locust's -t is a second longer): every locustfile's work, a few
dozen requests on loopback, is done well inside it."""


@pytest.fixture(scope="module")
def host() -> Iterator[str]:
    """The answering server, shared by the module's tests (its answers depend on the path only)."""
    with answering_server() as url:
        yield url


def test_nested_tasksets_and_sequential_taskset(host: str, tmp_path: Path) -> None:
    users, journeys = 3, 3
    plain, loadkit = run_both("tasksets.py", host, tmp_path, users=users, seconds=SECONDS)
    each = users * journeys
    assert_plain_counts(
        plain,
        {
            "GET /catalogue": Counts(each, 0),
            "GET /products/[id]": Counts(2 * each, 0),
            "POST /basket": Counts(each, 0),
            "POST /fail-payment": Counts(each, each),
            "GET /missing-receipt": Counts(each, each),
            "GET /goodbye": Counts(each, 0),
        },
    )
    assert_same_counts(plain, loadkit)
    assert_valid(loadkit)


def test_user_classes_weights_and_fixed_count(host: str, tmp_path: Path) -> None:
    # 5 users: 1 Admin (fixed_count), then 3 Readers and 1 Writer (weights 3:1), 2 rounds each.
    plain, loadkit = run_both("user_classes.py", host, tmp_path, users=5, seconds=SECONDS)
    assert_plain_counts(
        plain,
        {
            "GET /admin/report": Counts(2, 0),
            "GET /articles": Counts(6, 0),
            "POST /articles": Counts(2, 0),
            "GET /missing-draft": Counts(2, 2),
        },
    )
    assert_same_counts(plain, loadkit)
    assert_valid(loadkit)


def test_command_line_as_plain_locust_gets_it(host: str, tmp_path: Path) -> None:
    # Locust's own arguments (--tags) and the locustfile's (--catalogue), after -- for loadkit,
    # and a --host with a path, under which Locust requests (and names) every path.
    plain, loadkit = run_both(
        "tags_and_arguments.py", f"{host}/api/v1", tmp_path, users=2, seconds=SECONDS,
        extra_args=["--tags", "checkout", "--catalogue", "spring"],
    )  # fmt: skip
    assert_plain_counts(
        plain,
        {
            "GET /api/v1/catalogues/spring": Counts(6, 0),
            "POST /api/v1/fail-order": Counts(6, 6),
        },
    )
    assert_same_counts(plain, loadkit)
    assert_valid(loadkit)


def test_custom_client_firing_request_events(host: str, tmp_path: Path) -> None:
    plain, loadkit = run_both("custom_client.py", host, tmp_path, users=2, seconds=SECONDS)
    rounds = 2 * 4
    assert_plain_counts(
        plain, {"KV get user": Counts(2 * rounds, rounds), "KV set user": Counts(rounds, 0)}
    )
    assert_same_counts(plain, loadkit)
    assert_valid(loadkit)


def test_catch_response_and_rest_validations(host: str, tmp_path: Path) -> None:
    # 4 users: 2 ProfileUsers (HttpUser), 2 OrderUsers (FastHttpUser), 2 rounds each.
    plain, loadkit = run_both("validations.py", host, tmp_path, users=4, seconds=SECONDS)
    assert_plain_counts(
        plain,
        {
            "GET /profile": Counts(4, 0),
            "GET /invalid-profile": Counts(4, 4),  # a 200 the locustfile rejected
            "GET /missing-avatar": Counts(4, 0),  # a 404 the locustfile accepted
            "GET /fail-stats": Counts(4, 4),
            "POST /orders": Counts(4, 0),
            "POST /invalid-orders": Counts(4, 4),
        },
    )
    assert_same_counts(plain, loadkit)
    assert_valid(loadkit)


def test_interrupt_reschedule_and_stop_user(host: str, tmp_path: Path) -> None:
    # 3 users, 2 rounds each, then every user stops itself (StopUser); the run goes on, empty.
    plain, loadkit = run_both("control_flow.py", host, tmp_path, users=3, seconds=SECONDS)
    assert_plain_counts(
        plain,
        {
            "GET /inbox": Counts(12, 0),
            "POST /drafts": Counts(6, 0),
            "POST /fail-send": Counts(6, 6),
            "POST /logout": Counts(6, 0),
        },
    )
    assert_same_counts(plain, loadkit)
    assert_valid(loadkit)


def test_request_listener_raising_reschedule_task_drops_no_failure(
    host: str, tmp_path: Path
) -> None:
    # The listener ends the task at the failed checkout and skips every listener after it.
    plain, loadkit = run_both("reschedule_on_failure.py", host, tmp_path, users=3, seconds=SECONDS)
    assert_plain_counts(plain, {"GET /account": Counts(9, 0), "POST /fail-checkout": Counts(9, 9)})
    assert_same_counts(plain, loadkit)
    assert_valid(loadkit)


def test_load_test_shape_runs_to_its_end(host: str, tmp_path: Path) -> None:
    # The shape lasts 2 s: 2 users, then 4 (-u and --concurrency are the shape's to decide).
    # Plain Locust ignores -t and runs the shape to its end; loadkit runs it to its end too (its
    # --duration, longer here, is only the shape's cap) and calls the finished shape complete.
    plain, loadkit = run_both("shape.py", host, tmp_path, users=1, seconds=5)
    assert "Shape test completed" in plain.output, plain.tail()
    assert_plain_counts(plain, {"GET /jobs": Counts(8, 0), "POST /fail-jobs": Counts(8, 8)})
    assert_same_counts(plain, loadkit)
    assert_valid(loadkit)


def test_hooks_and_custom_messages(host: str, tmp_path: Path) -> None:
    plain, loadkit = run_both("hooks_and_messages.py", host, tmp_path, users=2, seconds=SECONDS)
    assert_plain_counts(
        plain, {"GET /reports/daily": Counts(4, 0), "GET /reports/weekly": Counts(4, 0)}
    )
    assert_same_counts(plain, loadkit)
    hooks = ["init", "test_start", "plan 2 paths", "plan_received 2", "test_stop", "quitting"]
    for run in (plain, loadkit):
        seen = (run.workdir / "hooks.log").read_text()
        assert seen.splitlines() == hooks, f"{run.tool} ran the hooks as\n{seen}\n{run.tail()}"
    assert_valid(loadkit)


def test_exceptions_in_tasks_are_counted_by_both(host: str, tmp_path: Path) -> None:
    plain, loadkit = run_both(
        "task_exception.py", host, tmp_path, users=2, seconds=SECONDS, plain_exceptions=True
    )
    assert_plain_counts(plain, {"GET /login-page": Counts(6, 0)}, exit_code=1)  # exceptions: 1
    # One row in Locust's table: 2 users x 3 visits, the same traceback each time.
    message = "'NoneType' object has no attribute 'group'"
    assert plain.exceptions is not None, plain.tail()
    assert [(row.count, row.msg) for row in plain.exceptions] == [(6, message)], plain.exceptions
    [row] = plain.exceptions
    assert_same_counts(plain, loadkit)
    exceptions = loadkit.results.get("exceptions")
    assert exceptions, f"loadkit's results have no exceptions\n{loadkit.tail()}"
    assert [(e["type"], e["count"]) for e in exceptions] == [("AttributeError", 6)], exceptions
    [exception] = exceptions
    # Where: the innermost frame of the locustfile in Locust's traceback, as "file.py:LINE in f".
    frames = re.findall(r'File "[^"]*/(task_exception\.py)", line (\d+), in (\w+)', row.traceback)
    assert frames, row.traceback
    file, line, function = frames[-1]
    assert exception["where"] == f"{file}:{line} in {function}", exception
    assert exception["traceback"].rstrip().endswith(f"AttributeError: {message}"), exception
    # Requests were sent: a valid measurement (the gate's load.exceptions criterion fails it).
    assert_valid(loadkit)


def test_locustfile_quitting_on_threshold_is_a_stopped_run(host: str, tmp_path: Path) -> None:
    # The locustfile quits with exit code 1 once all 3 users' rounds are counted: a stopped run,
    # with Locust's exit code, not an incomplete one.
    plain, loadkit = run_both("quit_on_threshold.py", host, tmp_path, users=3, seconds=10)
    assert_plain_counts(plain, {"GET /search": Counts(9, 0), "GET /fail-search": Counts(9, 9)})
    assert_same_counts(plain, loadkit)
    stopped = loadkit.results.get("stopped") or {}
    assert stopped.get("by") == "locustfile", f"stopped: {stopped}\n{loadkit.tail()}"
    assert_valid(loadkit, exit_code=1)

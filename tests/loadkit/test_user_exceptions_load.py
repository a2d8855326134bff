"""Exceptions raised by a locustfile's code, through ``loadkit load`` end to end: in tasks, and
outside them (a ``test_start`` listener, a TaskSet's ``on_stop``, a shape's ``tick()``): counted
with where and a traceback, shown in the summary; a run that sent nothing is invalid (exit 4),
one that did is valid and fails the seed criterion of acceptance.toml (exit 1 at the gate)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from loadkit.cli import app
from loadkit.measure.results import LoadResults, read_results
from tests.compat.answering_server import answering_server

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
RAISING_LOCUSTFILE = REPO / "tests" / "scenarios" / "raising_locustfile.py"


def line_of(text: str) -> int:
    """The line of the raising locustfile that holds ``text``."""
    lines = RAISING_LOCUSTFILE.read_text().splitlines()
    return next(number for number, line in enumerate(lines, 1) if text in line)


TOKEN = f"raising_locustfile.py:{line_of('page.form.token')} in csrf_token"
NO_TASKS = f"raising_locustfile.py:{line_of('class NoTaskUser')} in class NoTaskUser"
CART = f"raising_locustfile.py:{line_of('cart[')} in checkout"
SET_UP = f"raising_locustfile.py:{line_of('setup failed')} in set_up"
ON_STOP = f"raising_locustfile.py:{line_of('cannot leave')} in on_stop"
TICK = f"raising_locustfile.py:{line_of('self.stages[int(run_time)]')} in tick"


def load(
    case: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    *,
    processes: int = 1,
    seconds: float = 1.0,
) -> tuple[int, str, Path]:
    """``loadkit load`` of one case of the raising locustfile: (exit code, output, results)."""
    monkeypatch.setenv("LOCUSTFILE_CASE", case)  # inherited by Locust's process
    out = tmp_path / "load.json"
    with answering_server() as url:
        command = ["load", "--host", url, "--scenario", str(RAISING_LOCUSTFILE)]
        command += ["--concurrency", "2", "--duration", f"{seconds:g}", "--out", str(out)]
        command += ["--quiet"]
        command += ["--processes", str(processes)]
        result = CliRunner().invoke(app, command)
    return result.exit_code, result.output, out


def read_load(out: Path) -> LoadResults:
    results = read_results(out)
    assert isinstance(results, LoadResults)
    return results


@pytest.mark.parametrize("processes", [1, 2])
def test_every_task_raising_is_counted_shown_and_invalid(
    processes: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With 2 processes, each worker ships its exceptions to the master, which merges them.
    code, output, out = load("all", tmp_path, monkeypatch, processes=processes)
    assert code == 4, output
    results = read_load(out)
    (group,) = results.exceptions
    assert (group.type, group.where) == ("AttributeError", TOKEN)
    assert group.count >= 2
    assert "return str(page.form.token)" in group.traceback
    assert group.traceback.rstrip().endswith("has no attribute 'token'")
    assert [r.code for r in results.invalid_reasons] == ["no_requests"]
    assert f"AttributeError at {TOKEN}" in output
    assert "exceptions raised by user code:" in output and "return str(page.form.token)" in output


def test_a_user_class_without_tasks_is_counted_and_invalid(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, output, out = load("no_tasks", tmp_path, monkeypatch)
    assert code == 4, output
    results = read_load(out)
    (group,) = results.exceptions
    assert group.type == "Exception"
    assert group.where == NO_TASKS
    assert "No tasks defined on NoTaskUser" in group.traceback
    assert [r.code for r in results.invalid_reasons] == ["no_requests"]
    assert "No tasks defined on NoTaskUser" in output


def test_some_tasks_raising_is_a_valid_run_the_seed_criterion_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, output, out = load("some", tmp_path, monkeypatch)
    assert code == 0, output
    results = read_load(out)
    assert results.valid and results.totals.requests > 0 and results.totals.errors == 0
    (group,) = results.exceptions
    assert (group.type, group.where) == ("KeyError", CART)
    gate = CliRunner().invoke(app, ["gate", str(out), "--config", str(REPO / "acceptance.toml")])
    assert gate.exit_code == 1, gate.output
    assert "✗ no exceptions in user code" in gate.output
    assert "KeyError" in gate.output and CART in gate.output


@pytest.mark.parametrize("processes", [1, 2])
def test_exceptions_in_a_test_start_hook_and_on_stop_are_counted(
    processes: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Locust catches and logs these (its exit code becomes 2); they never reach user_error.
    # The test_start hook runs before the plugin's own, so before the test exists for it; with
    # 2 processes it raises in the master and in each worker, which ships its count.
    code, output, out = load("outside_tasks", tmp_path, monkeypatch, processes=processes)
    results = read_load(out)
    assert results.valid and results.totals.requests > 0, results.invalid_reasons
    groups = {(group.type, group.where): group for group in results.exceptions}
    assert set(groups) == {("ValueError", SET_UP), ("RuntimeError", ON_STOP)}
    assert groups["ValueError", SET_UP].count == 1 + (processes if processes > 1 else 0)
    assert groups["RuntimeError", ON_STOP].count == 2  # once per user, as each stops
    assert 'raise ValueError("setup failed")' in groups["ValueError", SET_UP].traceback
    # Locust's own exit code for it (plain Locust exits 2 too), which loadkit load exits with.
    assert results.locust_exit_code == 2
    assert code == 2, output
    assert SET_UP in output and ON_STOP in output  # the summary's table of exceptions
    gate = CliRunner().invoke(app, ["gate", str(out), "--config", str(REPO / "acceptance.toml")])
    assert gate.exit_code == 1, gate.output
    assert "✗ no exceptions in user code" in gate.output


def test_an_exception_in_a_shapes_tick_is_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The shape's greenlet dies (Locust logs it and ends the shape run): before, the run was
    # only "incomplete", with no word of why.
    # Its tick raises once the run is past its first second.
    code, output, out = load("shape", tmp_path, monkeypatch, seconds=1.5)
    results = read_load(out)
    (group,) = results.exceptions
    assert (group.type, group.where, group.count) == ("IndexError", TICK, 1)
    assert group.traceback.rstrip().endswith("IndexError: tuple index out of range")
    assert results.locust_exit_code == 2
    assert code == 4 and not results.valid, output
    assert f"IndexError at {TICK}" in output

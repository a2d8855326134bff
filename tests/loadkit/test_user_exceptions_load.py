"""Exceptions raised by a locustfile's tasks, through ``loadkit load`` end to end: counted with
where and a traceback, shown in the summary; a run that sent nothing is invalid (exit 4), one
that did is valid and fails the seed criterion of acceptance.toml (exit 1 at the gate)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from loadkit.cli import app
from loadkit.measure.results import LoadResults, read_results
from tests.loadkit.failing_server import failing_server

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


def load(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, processes: int = 1
) -> tuple[int, str, Path]:
    """``loadkit load`` of one case of the raising locustfile: (exit code, output, results)."""
    monkeypatch.setenv("LOCUSTFILE_CASE", case)  # inherited by Locust's process
    out = tmp_path / "load.json"
    with failing_server() as url:
        command = ["load", "--host", url, "--scenario", str(RAISING_LOCUSTFILE)]
        command += ["--concurrency", "2", "--duration", "1.5", "--out", str(out), "--quiet"]
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
    assert "no exceptions in user code" in gate.output
    assert "KeyError" in gate.output and CART in gate.output

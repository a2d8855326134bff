"""One table maps every error of loadkit.exceptions to its exit code (DESIGN.md, "Exit codes")."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
from typer.testing import CliRunner

import loadkit.exceptions as exceptions
from loadkit.cli import app, exit_code_for
from loadkit.measure.results import LoadResults

EXPECTED = {
    "LoadkitError": 2,
    "ConfigError": 2,
    "GeneratorStartError": 2,
    "InputError": 2,
    "TargetUnreachableError": 3,
    "ServiceStartError": 3,
    "InvalidRunError": 4,
    "InvalidLoadRunError": 4,
    "GeneratorCrashedError": 4,
    "WorkersNotConnectedError": 4,
    "CriteriaNotMetError": 1,
    "LoadInterrupted": 130,
}


def test_every_error_class_has_its_documented_exit_code() -> None:
    classes = {
        name: cls
        for name, cls in vars(exceptions).items()
        if inspect.isclass(cls) and issubclass(cls, BaseException)
    }
    assert set(classes) == set(EXPECTED), "a new error class needs its exit code here and in DESIGN"
    for name, cls in classes.items():
        assert issubclass(cls, (exceptions.LoadkitError, KeyboardInterrupt)), name
        error = cls.__new__(cls)  # the class decides the code, not what it carries
        assert exit_code_for(error) == EXPECTED[name], name
    assert exit_code_for(KeyboardInterrupt()) == 130


@pytest.mark.parametrize(
    ("error", "code", "line"),
    [
        (exceptions.ConfigError("bad key x"), 2, "error: bad key x"),
        (exceptions.LoadInterrupted(None, None), 130, "interrupted"),
        (KeyboardInterrupt(), 130, "interrupted"),
    ],
)
def test_a_command_exits_with_the_code_of_what_it_raised(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, error: BaseException, code: int, line: str
) -> None:
    def failing(**_kwargs: object) -> LoadResults:
        raise error

    monkeypatch.setattr("loadkit.run.load.run_load", failing)
    result = CliRunner().invoke(app, ["load", "--out", str(tmp_path / "load.json")])
    assert result.exit_code == code, result.output
    assert result.output.strip().splitlines()[-1] == line


def test_workers_not_connected_says_how_to_start_one_with_an_address_a_worker_can_use() -> None:
    from loadkit.exceptions import WorkersNotConnectedError

    wildcard = str(WorkersNotConnectedError.waited(expect=2, address="0.0.0.0:6000", wait_s=3))
    assert "--master-host MASTER_ADDRESS --master-port 6000" in wildcard
    named = str(WorkersNotConnectedError.waited(expect=2, address="10.0.0.5:5557", wait_s=3))
    assert "--master-host 10.0.0.5 --master-port 5557" in named

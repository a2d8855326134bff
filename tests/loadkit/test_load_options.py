"""`loadkit load` and `loadkit ui` options that cannot go together: exit 2 in one line, at once.

A worker takes the target, users, duration and results from its master, so those options given
to a worker would be ignored silently; `--master --worker` used to leave a worker waiting for a
master that never came.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from loadkit.cli import app
from loadkit.run.bundled_service import free_port


def test_master_and_worker_together_is_exit_2_not_a_hang(tmp_path: Path) -> None:
    # A process of its own with a time limit: before the fix it waited for a master forever.
    command = [sys.executable, "-m", "loadkit", "load", "--master", "--worker"]
    command += ["--master-port", str(free_port())]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=30, cwd=tmp_path)
    assert completed.returncode == 2, completed.stderr
    assert completed.stderr.strip().splitlines() == [
        "error: --master and --worker cannot go together: run `loadkit load --master` on one "
        "machine and `loadkit load --worker --master-host H` on each of the others"
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--worker", "--host", "http://127.0.0.1:8000"], "give --host to `loadkit load --master`"),
        (["--worker", "http://127.0.0.1:8000/"], "give the URL to `loadkit load --master`"),
        (["--worker", "--out", "x.json", "--duration", "5"], "give --duration, --out to"),
        (["--worker", "--concurrency", "3"], "give --concurrency to"),
        (["--expect-workers", "2"], "--expect-workers is for --master only"),
        (["--master-bind-host", "0.0.0.0"], "--master-bind-host is for --master only"),
        (["--master", "--master-host", "10.0.0.5"], "--master-host is for --worker only"),
        (["--master-port", "5600"], "--master-port is for --master or --worker only"),
    ],
)
def test_an_option_the_role_would_ignore_is_exit_2(
    tmp_path: Path, args: list[str], message: str
) -> None:
    result = CliRunner().invoke(app, ["load", *args])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "x.json").exists()


@pytest.mark.parametrize(
    "args",
    [
        ["load", "--master", "--expect-workers", "0"],
        ["load", "--worker", "--master-port", "70000"],
        ["ui", "--web-port", "70000"],
        ["ui", "--web-port", "0"],
    ],
)
def test_numbers_out_of_range_are_exit_2(args: list[str]) -> None:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "Invalid value" in result.output

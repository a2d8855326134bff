"""How a load run ends when something other than its duration ends it: a ``LoadTestShape`` that
finishes (or is cut at ``--duration``), a locustfile that quits on purpose, a signal mid-shape.

Each runs ``loadkit load`` (and, where the exit code is the point, plain ``locust``) for a few
seconds against a loopback server of this test.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from loadkit.config import LoadProfile
from loadkit.exceptions import InvalidLoadRunError
from loadkit.measure.results import LoadResults, read_results
from loadkit.report.load import render_load_table
from loadkit.run.load import run_load
from tests.loadkit.child_processes import wait_until_connected
from tests.loadkit.misbehaving_servers import answers, serve

pytestmark = pytest.mark.slow

SCENARIOS = Path(__file__).parent.parent / "scenarios"
STOP_ON_THRESHOLD = SCENARIOS / "stop_on_threshold_locustfile.py"
SHAPE = SCENARIOS / "shape_locustfile.py"
QUITTING_VERDICT = SCENARIOS / "quitting_verdict_locustfile.py"
ACCEPTANCE = Path(__file__).parent.parent.parent / "acceptance.toml"
TASK_STOP = SCENARIOS / "task_stop_locustfile.py"
START_HOOK_STOP = SCENARIOS / "start_hook_stop_locustfile.py"
FAILS = answers(500, b'{"error": {"kind": "internal_error"}}')
ANSWERS = answers(200, b"{}")


def loadkit_load(
    scenario: Path,
    target: str,
    out: Path,
    *,
    duration: int,
    env: dict[str, str],
    more: tuple[str, ...] = (),
) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable, "-m", "loadkit", "load", "--scenario", str(scenario), "--host", target,
        "--concurrency", "2", "--duration", str(duration), "--out", str(out), "--quiet", *more,
    ]  # fmt: skip
    return subprocess.run(
        command, capture_output=True, text=True, env={**os.environ, **env}, timeout=60
    )


@dataclass(frozen=True)
class BothRuns:
    """``loadkit load`` and plain ``locust`` of one locustfile, run at the same time."""

    loadkit: subprocess.CompletedProcess[str]
    took_s: float
    """How long ``loadkit load`` took, start to exit."""
    plain_returncode: int
    plain_stderr: str


def load_beside_plain_locust(
    scenario: Path, target: str, out: Path, *, duration: int, plain_seconds: int,
    env: dict[str, str],
) -> BothRuns:  # fmt: skip
    """``loadkit load`` and plain ``locust --headless`` of ``scenario`` at once (each run is a
    separate one against the same server): their exit codes are compared."""
    plain = subprocess.Popen(
        [sys.executable, "-m", "locust", "-f", str(scenario), "--headless",
         "-u", "2", "-t", f"{plain_seconds}s", "--host", target, "--only-summary"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env={**os.environ, **env},
    )  # fmt: skip
    try:
        started = time.monotonic()
        done = loadkit_load(scenario, target, out, duration=duration, env=env)
        took_s = time.monotonic() - started
        _, plain_stderr = plain.communicate(timeout=60)
    finally:
        if plain.poll() is None:
            plain.kill()
            plain.wait()
    return BothRuns(done, took_s, plain.returncode, plain_stderr)


def test_a_locustfile_quitting_at_a_threshold_is_stopped_with_locusts_exit_code(
    tmp_path: Path,
) -> None:
    env = {"LOADKIT_TEST_EXIT_CODE": "1"}
    with serve(FAILS) as target:
        both = load_beside_plain_locust(
            STOP_ON_THRESHOLD, target, tmp_path / "load.json", duration=20, plain_seconds=20,
            env=env,
        )  # fmt: skip
    done = both.loadkit
    assert both.plain_returncode == 1, both.plain_stderr[-2000:]
    assert done.returncode == both.plain_returncode, done.stdout + done.stderr
    results = read_results(tmp_path / "load.json")
    assert isinstance(results, LoadResults)
    assert results.valid, results.invalid_reasons
    assert results.stopped is not None and results.stopped.by == "locustfile"
    assert results.locust_exit_code == 1
    assert 0 < results.stopped.at_s < 20 and results.duration_s < 20
    assert results.totals.errors == results.totals.requests > 0
    assert "by the locustfile" in done.stdout and "Locust's exit code: 1" in done.stdout


def test_a_locustfile_stopping_without_an_exit_code_exits_0_and_ends_locust(
    tmp_path: Path,
) -> None:
    # runner.stop() alone: Locust would idle until the run's end; loadkit ends it once the
    # results are written.
    env = {"LOADKIT_TEST_STOP_HOW": "stop"}
    started = time.monotonic()
    with serve(FAILS) as target:
        done = loadkit_load(STOP_ON_THRESHOLD, target, tmp_path / "load.json", duration=40, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert time.monotonic() - started < 30
    results = read_results(tmp_path / "load.json")
    assert isinstance(results, LoadResults) and results.valid, results.invalid_reasons
    assert results.stopped is not None and results.stopped.by == "locustfile"
    assert results.locust_exit_code == 0


def test_a_locustfiles_own_verdict_in_its_quitting_listener_is_locusts_exit_code(
    tmp_path: Path,
) -> None:
    # The run is not stopped and has no failure: only the quitting listener says it failed,
    # after the plugin wrote the results. loadkit load used to exit 0 and its gate to pass.
    out = tmp_path / "load.json"
    with serve(ANSWERS) as target:
        both = [
            subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for command in (
                [sys.executable, "-m", "loadkit", "load", "--scenario", str(QUITTING_VERDICT),
                 "--host", target, "--concurrency", "2", "--duration", "1", "--out", str(out),
                 "--quiet"],
                [sys.executable, "-m", "locust", "-f", str(QUITTING_VERDICT), "--headless",
                 "-u", "2", "-t", "2s", "--host", target, "--only-summary"],
            )
        ]  # fmt: skip
        try:
            (done_out, done_err), (_, plain_err) = (p.communicate(timeout=60) for p in both)
        finally:
            for process in both:
                if process.poll() is None:
                    process.kill()
                    process.wait()
    done, plain = both
    assert plain.returncode == 1, plain_err[-2000:]
    assert done.returncode == plain.returncode, done_out + done_err
    results = read_results(out)
    assert isinstance(results, LoadResults)
    assert results.valid and results.stopped is None, results.invalid_reasons
    assert results.totals.requests > 0 and results.totals.errors == 0
    assert results.locust_exit_code == 1
    assert "Locust's exit code: 1" in done_out
    gate = subprocess.run(
        [sys.executable, "-m", "loadkit", "gate", str(out), "--config", str(ACCEPTANCE)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert gate.returncode == 1, gate.stdout + gate.stderr
    assert "✗ Locust's own verdict (exit code 0): 1" in gate.stdout


@pytest.mark.parametrize(("how", "exit_code"), [("quit", "1"), ("stop", None)])
def test_a_task_ending_the_test_is_a_stopped_run_that_ends_at_once(
    tmp_path: Path, how: str, exit_code: str | None
) -> None:
    # Locust's stop() kills the greenlet that called it: called from a task, it died part-way
    # (no test_stop, no quit) and Locust idled until loadkit's time bound, 60 s + duration
    # + 30 s later: "aborted", exit 4.
    env = {
        "LOADKIT_TEST_STOP_HOW": how,
        **({"LOADKIT_TEST_EXIT_CODE": exit_code} if exit_code else {}),
    }
    # Plain Locust's -t 3s (was 2 s when it ran alone): its run timer starts on a loop clock its
    # imports left stale, and they take longer beside loadkit's; the task ends it in ~0.2 s.
    with serve(ANSWERS) as target:
        both = load_beside_plain_locust(
            TASK_STOP, target, tmp_path / "load.json", duration=30, plain_seconds=3, env=env
        )
    done = both.loadkit
    assert both.took_s < 30  # returned before the planned end, not at a time bound
    assert done.returncode == both.plain_returncode == int(exit_code or 0), (
        done.stdout + done.stderr + both.plain_stderr[-2000:]
    )
    results = read_results(tmp_path / "load.json")
    assert isinstance(results, LoadResults)
    assert results.valid, results.invalid_reasons
    assert results.stopped is not None and results.stopped.by == "locustfile"
    assert results.totals.requests >= 20 and results.totals.errors == 0
    assert results.stopped.at_s < 30 and results.duration_s < 30


def test_a_task_quitting_on_one_worker_stops_the_whole_run(tmp_path: Path) -> None:
    # Plain Locust quits that worker alone (or, its quit() killed part-way, leaves it with no
    # users) and runs on; loadkit ends the run there, as one process would, with its exit code.
    env = {"LOADKIT_TEST_STOP_WORKER": "0", "LOADKIT_TEST_EXIT_CODE": "5"}
    with serve(ANSWERS) as target:
        started = time.monotonic()
        done = loadkit_load(
            TASK_STOP, target, tmp_path / "load.json", duration=30, env=env,
            more=("--processes", "2"),
        )  # fmt: skip
        took_s = time.monotonic() - started
    assert took_s < 30
    assert done.returncode == 5, done.stdout + done.stderr
    results = read_results(tmp_path / "load.json")
    assert isinstance(results, LoadResults)
    assert results.valid, results.invalid_reasons
    assert results.config["processes"] == 2
    assert results.stopped is not None and results.stopped.by == "locustfile"
    assert results.totals.requests >= 20
    assert results.stopped.at_s < 30 and results.duration_s < 30


@pytest.mark.parametrize("processes", [1, 2])
def test_stop_test_in_a_test_start_hook_is_an_invalid_run_the_locustfile_stopped(
    tmp_path: Path, processes: int
) -> None:
    # The hook is registered before the plugin's listener, which StopTest then skips: there
    # were no results at all ("generator_crashed"); a master's headless start died with the
    # StopTest and Locust idled until loadkit's time bound.
    more = ("--processes", str(processes)) if processes > 1 else ()
    with serve(ANSWERS) as target:
        started = time.monotonic()
        done = loadkit_load(
            START_HOOK_STOP, target, tmp_path / "load.json", duration=30, env={}, more=more
        )
        took_s = time.monotonic() - started
    assert took_s < 30
    assert done.returncode == 4, done.stdout + done.stderr
    results = read_results(tmp_path / "load.json")
    assert isinstance(results, LoadResults)
    (reason,) = results.invalid_reasons
    assert reason.code == "no_requests"
    assert "stopped the test in its test_start hook (StopTest: no test data)" in reason.detail
    assert results.stopped is not None and results.stopped.by == "locustfile"
    assert results.totals.requests == 0


def shape_run(target: str, tmp_path: Path, *, duration_s: float, processes: int = 1) -> LoadResults:
    return run_load(
        target=target,
        profile=LoadProfile(scenario=str(SHAPE), concurrency=1, duration_s=duration_s),
        out=tmp_path / "load.json",
        processes=processes,
        quiet=True,
    )


@pytest.mark.parametrize("processes", [1, 2])
def test_a_shape_that_ends_before_the_duration_is_a_complete_run(
    tmp_path: Path, processes: int
) -> None:
    with serve(ANSWERS) as target:
        results = shape_run(target, tmp_path, duration_s=8, processes=processes)
    assert results.valid, results.invalid_reasons
    assert results.stopped is None
    assert results.config["shape"] == {"class": "TwoSteps", "completed": True}
    assert results.config["concurrency"] == 4  # the shape's peak, not --concurrency
    assert results.config["duration_s"] == 8  # the cap it was given
    assert 1.5 < results.duration_s < 8
    assert results.totals.requests > 0 and results.totals.errors == 0
    assert "shape: TwoSteps drove the users and ran to its end" in render_load_table(results)


def test_a_shape_still_running_at_the_duration_is_cut_and_incomplete(tmp_path: Path) -> None:
    with serve(ANSWERS) as target, pytest.raises(InvalidLoadRunError) as raised:
        shape_run(target, tmp_path, duration_s=1)
    results = raised.value.results
    (reason,) = results.invalid_reasons
    assert reason.code == "incomplete"
    assert "TwoSteps" in reason.detail and "--duration 1 s" in reason.detail
    assert results.config["shape"] == {"class": "TwoSteps", "completed": False}
    assert "shape: TwoSteps drove the users and did not finish" in render_load_table(results)


def test_sigint_during_a_shape_writes_partial_results_and_exits_130(tmp_path: Path) -> None:
    # Locust installs its SIGTERM handler only after a headless shape: the SIGTERM loadkit
    # forwards for a Ctrl-C used to kill it with no results.
    out = tmp_path / "load.json"
    with serve(ANSWERS) as target:
        port = int(target.rsplit(":", 1)[1])
        process = subprocess.Popen(
            [sys.executable, "-m", "loadkit", "load", "--scenario", str(SHAPE), "--host", target,
             "--duration", "60", "--out", str(out), "--quiet"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "LOADKIT_TEST_STEP_S": "30"},
        )  # fmt: skip
        try:
            wait_until_connected(process.pid, port)
            time.sleep(1.0)
            process.send_signal(signal.SIGINT)
            stdout, stderr = process.communicate(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert process.returncode == 130, stdout + stderr
    results = read_results(out)
    assert isinstance(results, LoadResults)
    assert results.aborted and results.totals.requests > 0
    assert results.config["shape"] == {"class": "TwoSteps", "completed": False}

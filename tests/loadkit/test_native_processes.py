"""The native engine on several processes of this machine (``processes=N``): each runs a share
(closed: the connections split; open: the timetable interleaved) and the parent merges their
recorders' shares exactly into one results file."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import psutil
import pytest

from loadkit.config import DeclarativeScenario, LoadProfile
from loadkit.engines.declarative import describe
from loadkit.engines.http_request import RequestSpec
from loadkit.engines.native.processes import (
    ProcessesCrashed,
    ProcessesRun,
    ProcessShare,
    run_processes,
)
from loadkit.engines.native.share import SharePlan
from loadkit.engines.url_request import request_spec
from loadkit.exceptions import ConfigError, InvalidLoadRunError, LoadInterrupted
from loadkit.measure.recorder import LatencyRecorder
from loadkit.measure.results import LoadResults, read_results
from loadkit.run.native import run_native_load
from tests.loadkit import native_children
from tests.loadkit.misbehaving_servers import read_request, serve
from tests.loadkit.native_servers import scheduled_server_process

MIX = (0.0,) * 8 + (0.15, 0.3)
OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"

STARTED_S = 2.0
"""Past the spawn, children have imported loadkit and begun (a busy machine takes over a
second to import; the start follows a quarter of a second after the last is ready)."""


def test_two_processes_of_an_open_run_keep_the_whole_timetable_and_merge_exactly(
    tmp_path: Path,
) -> None:
    out = tmp_path / "load.json"
    with scheduled_server_process(mix=MIX) as url:
        results = run_native_load(
            request=RequestSpec(url=url),
            profile=LoadProfile(rate=100, duration_s=1.5, max_in_flight=40),
            out=out,
            processes=2,
            quiet=True,
        )
    assert read_results(out) == results
    assert results.valid, results.invalid_reasons
    assert results.config["processes"] == 2
    schedule = results.schedule
    assert schedule is not None
    # Both halves of the timetable ran (k, k + 2, ...): 150 due at 100/s over 1.5 s.
    assert schedule.target_rate == pytest.approx(100.0)
    assert abs(schedule.iterations_due - 150) <= 2 and schedule.max_in_flight == 40
    # The merged histogram holds every request; the mix's truth survives the merge.
    assert results.totals.requests == schedule.iterations_dispatched
    assert results.latency_ms.count == results.totals.requests
    assert results.latency_ms.p99 == pytest.approx(300.0, rel=0.05)
    assert sum(point.completions for point in results.timeline) == results.totals.requests


def test_two_processes_of_a_closed_run_split_the_connections(tmp_path: Path) -> None:
    with scheduled_server_process(hold_s=0.05) as url:
        results = run_native_load(
            request=RequestSpec(url=url),
            profile=LoadProfile(concurrency=3, duration_s=1.0),
            out=tmp_path / "load.json",
            processes=2,
            quiet=True,
        )
    # Three connections, each answered in 50 ms: about 60 a second in all.
    assert 45 <= results.totals.requests <= 62
    assert results.latency_ms.p50 == pytest.approx(50.0, abs=5.0)


def test_more_processes_than_connections_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--processes 4"):
        run_native_load(
            request=RequestSpec(url="http://127.0.0.1:9/"),
            profile=LoadProfile(concurrency=3, duration_s=1.0),
            out=tmp_path / "load.json",
            processes=4,
            quiet=True,
        )


def test_the_in_flight_bound_is_split_so_that_the_shares_add_up_to_it(tmp_path: Path) -> None:
    # --max-in-flight 5 over 2 processes is 3 + 2 at most at once, never 3 + 3.
    with scheduled_server_process(hold_s=0.5) as url:
        results = run_native_load(
            request=RequestSpec(url=url),
            profile=LoadProfile(rate=40, duration_s=1.0, max_in_flight=5),
            out=tmp_path / "load.json",
            processes=2,
            quiet=True,
        )
    schedule = results.schedule
    assert schedule is not None
    assert schedule.max_in_flight == 5 == results.config["max_in_flight"]


def test_a_process_that_dies_leaves_an_invalid_file_with_what_the_others_measured(
    tmp_path: Path,
) -> None:
    out = tmp_path / "load.json"
    out.write_text('{"stale": "an earlier run"}')
    html = tmp_path / "load.html"
    with scheduled_server_process(hold_s=0.01) as url:
        command = [
            sys.executable, "-m", "loadkit", "load", url, "--concurrency", "2",
            "--duration", "4", "--processes", "2", "--out", str(out), "--quiet",
            "--html", str(html),
        ]  # fmt: skip
        run = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            engines = _engine_processes(psutil.Process(run.pid), count=2)
            time.sleep(STARTED_S + 1.0)  # both have measured for a second
            engines[0].kill()
            stdout, stderr = run.communicate(timeout=60)
        finally:
            run.kill()
    assert run.returncode == 4, stderr
    results = read_results(out)
    assert isinstance(results, LoadResults)
    assert [reason.code for reason in results.invalid_reasons] == ["generator_crashed"]
    assert results.totals.requests > 0  # the other process's share, measured and kept
    # --html: the merged run's report, written for an invalid run too, named last.
    assert stdout.rstrip().splitlines()[-1] == f"HTML report: {html}"
    page = html.read_text()
    assert f'<td class="n" data-metric="requests">{results.totals.requests:,}</td>' in page
    assert "INVALID: generator_crashed" in page


def _engine_processes(parent: psutil.Process, *, count: int) -> list[psutil.Process]:
    """The native engine's children of ``parent`` (spawned interpreters), once all are up."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        children = [
            child
            for child in parent.children()
            if "multiprocessing" in " ".join(child.cmdline())
            and "resource_tracker" not in " ".join(child.cmdline())
        ]
        if len(children) >= count:
            return children
        time.sleep(0.05)
    raise AssertionError(f"no {count} engine processes under {parent.pid}")


def test_a_process_whose_own_code_failed_makes_the_merged_run_invalid(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # A child's own bug stops its share (ShareOutcome.crashed); its parent must not merge that
    # share into a run that passes. (The children's bug cannot be planted across the spawn:
    # their shares are made here, as the children would send them.)
    def shares(plans: Any, **_kwargs: Any) -> ProcessesRun:
        made = []
        start = time.time()
        for k, _plan in enumerate(plans):
            recorder = LatencyRecorder(start=start, source=f"process-{k + 1}")
            recorder.record(endpoint="GET /", latency_s=0.01, end=start + 0.5)
            recorder.finish(end=start + 1.0)
            crashed = "RuntimeError: a bug" if k == 1 else None
            made.append(ProcessShare(recorder.to_share(), 0, 10.0, False, crashed=crashed))
        return ProcessesRun(start=start, shares=made)

    monkeypatch.setattr("loadkit.run.native.run_processes", shares)
    with scheduled_server_process(hold_s=0.01) as url, pytest.raises(InvalidLoadRunError) as bad:
        run_native_load(
            request=RequestSpec(url=url),
            profile=LoadProfile(concurrency=2, duration_s=1.0),
            out=tmp_path / "load.json",
            processes=2,
            quiet=True,
        )
    results = bad.value.results
    assert results is not None and results.totals.requests == 2
    assert [reason.code for reason in results.invalid_reasons] == ["generator_crashed"]
    assert "RuntimeError: a bug" in results.invalid_reasons[0].detail


def _wait_for_spawned(pid: int, count: int) -> None:
    """Until the process ``pid`` has spawned ``count`` children of multiprocessing (which
    start by importing loadkit), or 30 s."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            spawned = [
                child
                for child in psutil.Process(pid).children()
                if "spawn_main" in " ".join(child.cmdline())
            ]
        except psutil.Error:
            spawned = []  # a child gone between listing and reading its command line
        if len(spawned) >= count:
            return
        time.sleep(0.02)
    raise AssertionError(f"process {pid} never spawned {count} children")


@pytest.mark.parametrize(
    "after_spawn_s", [0.0, STARTED_S + 0.5], ids=["while-starting", "while-running"]
)
def test_ctrl_c_stops_every_process_as_an_interruption_never_a_crash(
    after_spawn_s: float, tmp_path: Path
) -> None:
    # Ctrl-C reaches the whole process group: children still importing, running or sending
    # their shares, and the parent, which passes it on. The run is interrupted (130, aborted).
    out = tmp_path / "load.json"
    with scheduled_server_process(hold_s=0.01) as url:
        command = [
            sys.executable, "-m", "loadkit", "load", url, "--concurrency", "2",
            "--duration", "3", "--processes", "2", "--out", str(out), "--quiet",
        ]  # fmt: skip
        run = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            start_new_session=True,
        )  # fmt: skip
        try:
            # Timed from the spawn, not the launch: a busy machine takes a second or more
            # to import loadkit, and a Ctrl-C before the run began is another test's case.
            _wait_for_spawned(run.pid, 2)
            time.sleep(after_spawn_s)
            os.killpg(run.pid, signal.SIGINT)
            _, stderr = run.communicate(timeout=60)
        finally:
            run.kill()
    assert run.returncode == 130, stderr
    results = read_results(out)
    assert isinstance(results, LoadResults)
    assert [reason.code for reason in results.invalid_reasons] in (
        ["aborted"],
        ["no_requests", "aborted"],
    ), results.invalid_reasons


def test_processes_not_ready_within_the_bound_are_a_crash_not_a_wait_forever(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The common start is sent once every process said it is ready; one that never does (here:
    # none within a bound of 0 s) must not hold the run: the others are stopped, none began.
    monkeypatch.setattr("loadkit.engines.native.processes.READY_TIMEOUT_S", 0.0)
    plan = SharePlan(
        request=RequestSpec(url="http://127.0.0.1:9/"), model="closed", start=None, duration_s=5.0
    )
    with pytest.raises(ProcessesCrashed, match="process 1 was not ready after 0 s") as crash:
        run_processes([plan, plan])
    assert not crash.value.interrupted
    assert all(part.share.endpoints == {} for part in crash.value.shares)


def test_a_process_stopped_during_its_setup_ends_the_run_as_interrupted_at_once(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # A process stopped while its users log in sends its share and never says it is ready:
    # the others must not wait for it until the ready bound and call the run crashed. Its stop
    # is the run's: interrupted (exit 130), the others stopped too.
    monkeypatch.setattr("loadkit.engines.native.processes.READY_TIMEOUT_S", 15.0)
    logins: list[float] = []
    both_logging_in = threading.Event()
    release = threading.Event()

    def held_login(conn: socket.socket) -> None:
        while request := read_request(conn):
            if request.startswith(b"POST /login"):
                logins.append(time.monotonic())
                if len(logins) >= 2:
                    both_logging_in.set()
                release.wait(10.0)
            conn.sendall(OK)

    def stop_one_child() -> None:
        if both_logging_in.wait(30.0):
            children = [
                child
                for child in psutil.Process().children()
                if "spawn_main" in " ".join(child.cmdline())
            ]
            os.kill(children[0].pid, signal.SIGTERM)
            # The logins in flight are drained as any request (up to their timeout): answered
            # once the stop surely came, they end the drain.
            time.sleep(0.5)
        release.set()

    scenario = DeclarativeScenario.model_validate(
        {
            "setup": [{"method": "POST", "path": "/login", "json": {}, "expect_status": 200}],
            "requests": [{"path": "/items", "expect_status": 200}],
        }
    )
    stopper = threading.Thread(target=stop_one_child, daemon=True)
    with serve(held_login) as url:
        stopper.start()
        try:
            with pytest.raises(LoadInterrupted) as interrupted:
                run_native_load(
                    request=request_spec(url),
                    profile=LoadProfile(scenario="s", rate=20, duration_s=1, max_in_flight=2),
                    out=tmp_path / "load.json",
                    processes=2,
                    quiet=True,
                    scenario=describe("s", scenario, {}),
                )
        finally:
            release.set()
            stopper.join(timeout=5)
    results = interrupted.value.results
    assert results is not None
    assert [reason.code for reason in results.invalid_reasons] in (
        ["aborted"],
        ["no_requests", "aborted"],
    ), results.invalid_reasons
    assert "generator_crashed" not in {reason.code for reason in results.invalid_reasons}


def test_a_process_whose_own_code_failed_during_its_setup_ends_the_run_as_crashed_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Its share comes before any start, crashed: the others are stopped at once (no wait for a
    # ready that never comes), and the run is the crash, with its message, not an interruption
    # of the user's.
    monkeypatch.setattr("loadkit.engines.native.processes.READY_TIMEOUT_S", 15.0)
    monkeypatch.setattr(
        "loadkit.engines.native.processes._child", native_children.crash_in_setup_or_wait
    )
    plan = SharePlan(
        request=RequestSpec(url="http://127.0.0.1:9/"), model="open", start=None, duration_s=5.0
    )
    run = run_processes([plan, replace(plan, worker_index=1, worker_count=2)])
    # The other process sends its share once stopped, or, stopped while still importing, dies of
    # the SIGTERM: neither is a crash of its own.
    crashed = [part.crashed for part in run.shares]
    assert crashed in ([native_children.SETUP_CRASH, None], [native_children.SETUP_CRASH])
    assert not any(part.interrupted for part in run.shares)

"""A native run across machines, on Locust's transport: `loadkit load URL --engine native
--master` and `loadkit load --worker --engine native`, each a process of its own on loopback
(each test on a free port, never Locust's 5557), against a truth server of known latencies."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from loadkit.cli import EXIT_INVALID_RUN, EXIT_USAGE, app, exit_code_for
from loadkit.config import DeclarativeScenario, LoadProfile
from loadkit.engines.declarative import describe
from loadkit.engines.http_request import RequestSpec, TlsOptions
from loadkit.engines.native.distributed import (
    WorkersNotReadyError,
    plan_from_wire,
    plan_to_wire,
)
from loadkit.engines.native.share import SharePlan
from loadkit.exceptions import InputError
from loadkit.measure.results import LoadResults, read_results
from loadkit.run.bundled_service import free_port
from loadkit.run.native import NativeMaster, run_native_load
from loadkit.stages import Stage
from tests.loadkit.misbehaving_servers import read_request, serve
from tests.loadkit.native_servers import scheduled_server_process
from tests.loadkit.scheduled_server import scheduled_server
from tests.loadkit.test_abort_on_fail import ABORT, FAILS_FROM_S, could_first_fail_s, failing_later

MIX = (0.0,) * 8 + (0.1, 0.2)
"""Eight answers at once, then one of 100 ms and one of 200 ms: P95 and P99 are known."""
RUN_BOUND_S = 90.0
SUMMARY = re.compile(r"(worker-\d) of 2: (\d+) requests, (\d+) errors")


LOGIN_S = 0.6
"""A slow login: more than twice the quarter-second lead a worker's setup used to have."""
OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"


def _logins(released: threading.Event) -> Callable[[socket.socket], None]:
    def answer(conn: socket.socket) -> None:
        # /login answers after LOGIN_S, /hang once the module is done; anything else at once.
        while request := read_request(conn):
            if request.startswith(b"POST /login"):
                time.sleep(LOGIN_S)
            elif request.startswith(b"POST /hang"):
                released.wait()
            conn.sendall(OK)

    return answer


@pytest.fixture(scope="module")
def login_api() -> Iterator[str]:
    released = threading.Event()
    with serve(_logins(released)) as url:
        try:
            yield url
        finally:
            released.set()


def _scenario(login: str) -> str:
    return describe(
        "login",
        DeclarativeScenario.model_validate(
            {
                "setup": [{"method": "POST", "path": login, "json": {}, "expect_status": 200}],
                "requests": [{"path": "/items", "expect_status": 200}],
            }
        ),
        {},
    )


@contextmanager
def native_workers(port: int, count: int = 1) -> Iterator[list[subprocess.Popen[str]]]:
    """``count`` native workers of the master on ``port`` (the master runs in this process)."""
    worker = ("--worker", "--engine", "native", "--master-host", "127.0.0.1", "-q")
    started = [loadkit(*worker, "--master-port", str(port)) for _ in range(count)]
    try:
        yield started
    finally:
        for process in started:
            if process.poll() is None:
                process.kill()
            process.communicate()


def loadkit(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "loadkit", "load", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@contextmanager
def cluster(
    url: str, out: Path, *load: str, workers: int = 2, worker_args: tuple[str, ...] = ()
) -> Iterator[tuple[subprocess.Popen[str], list[subprocess.Popen[str]]]]:
    """A native master for ``url`` with ``load`` options, and its workers, all on one port."""
    port = str(free_port())
    master = loadkit(
        url,
        *("--engine", "native", "--master", "--expect-workers", str(workers)),
        *("--master-bind-host", "127.0.0.1", "--master-port", port),
        *("--out", str(out), "-q", *load),
    )
    worker = ("--worker", "--engine", "native", "--master-host", "127.0.0.1", "-q")
    started = [loadkit(*worker, "--master-port", port, *worker_args) for _ in range(workers)]
    try:
        yield master, started
    finally:
        for process in [master, *started]:
            if process.poll() is None:
                process.kill()
            process.communicate()


def finished(
    master: subprocess.Popen[str], workers: list[subprocess.Popen[str]]
) -> tuple[int, dict[str, int]]:
    """The master's exit code and each worker's request count from its summary line."""
    master.communicate(timeout=RUN_BOUND_S)
    counts = {}
    for worker in workers:
        stdout, stderr = worker.communicate(timeout=RUN_BOUND_S)
        assert worker.returncode == 0, stderr[-2000:]
        found = SUMMARY.search(stdout)
        assert found, stdout
        counts[found.group(1)] = int(found.group(2))
    return master.returncode, counts


def test_a_closed_run_splits_the_connections_and_merges_every_workers_share(
    tmp_path: Path,
) -> None:
    out = tmp_path / "load.json"
    with (
        scheduled_server_process(hold_s=0.05) as url,
        cluster(url, out, "--concurrency", "3", "--duration", "2") as (master, workers),
    ):
        code, counts = finished(master, workers)
    assert code == 0
    results = read_results(out)
    assert isinstance(results, LoadResults)
    assert results.valid, results.invalid_reasons
    assert results.config["engine"] == "native"
    assert results.config["distributed"] is True and results.config["processes"] == 2
    # Every request of each worker's share is in the merge, once.
    assert results.totals.requests == sum(counts.values())
    assert results.latency_ms.count == results.totals.requests
    assert sum(point.completions for point in results.timeline) == results.totals.requests
    # Three connections (2 + 1), 50 ms each: about 60 a second, split two to one.
    assert 100 <= results.totals.requests <= 124
    assert counts["worker-1"] == pytest.approx(2 * counts["worker-2"], rel=0.15)


def test_an_open_run_holds_the_total_rate_and_its_percentiles_match_one_process(
    tmp_path: Path,
) -> None:
    out = tmp_path / "load.json"
    with scheduled_server_process(mix=MIX) as url:
        with cluster(url, out, "--rate", "100", "--duration", "2", "--max-in-flight", "40") as (
            master,
            workers,
        ):
            code, counts = finished(master, workers)
        alone = run_native_load(
            request=RequestSpec(url=url),
            profile=LoadProfile(rate=100, duration_s=2, max_in_flight=40),
            out=tmp_path / "alone.json",
            quiet=True,
        )
    assert code == 0
    results = read_results(out)
    assert isinstance(results, LoadResults)
    assert results.valid, results.invalid_reasons
    schedule = results.schedule
    assert schedule is not None
    # Both halves of the timetable ran (k, k + 2, ...) from one start: 200 due at 100/s.
    assert schedule.target_rate == pytest.approx(100.0)
    assert abs(schedule.iterations_due - 200) <= 2
    assert results.totals.requests == schedule.iterations_dispatched == sum(counts.values())
    assert abs(counts["worker-1"] - counts["worker-2"]) <= 1
    # The merged histogram tells the same truth as one process on the same server.
    for figure in ("p50", "p95", "p99"):
        merged, single = getattr(results.latency_ms, figure), getattr(alone.latency_ms, figure)
        assert merged == pytest.approx(single, rel=0.05, abs=1.0), figure
    # Each second's service times crossed from the workers too: one per completion.
    busy = [p for p in results.timeline if p.completions]
    assert busy and all(
        p.service_histogram is not None and p.service_histogram.count == p.completions for p in busy
    )


def test_a_worker_killed_mid_run_makes_the_run_invalid(tmp_path: Path) -> None:
    out = tmp_path / "load.json"
    with (
        scheduled_server(hold_s=0.01) as (url, server),
        cluster(url, out, "--concurrency", "2", "--duration", "2") as (master, workers),
    ):
        # Killed once the run is under way (both workers start from one planned start), with
        # more than a second of the run still to go: timed from the first request the server
        # saw, not from the launch, which a busy machine makes take a second or more.
        deadline = time.monotonic() + RUN_BOUND_S
        while server.first_request is None and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.5)
        workers[1].send_signal(signal.SIGKILL)
        master.communicate(timeout=RUN_BOUND_S)
    assert master.returncode == EXIT_INVALID_RUN
    results = read_results(out)
    assert isinstance(results, LoadResults)
    assert [reason.code for reason in results.invalid_reasons] == ["worker_share_missing"]
    assert results.totals.requests > 0  # the other worker's share is in


def test_an_abort_on_fail_criterion_stops_a_run_across_machines_on_merged_figures(
    tmp_path: Path,
) -> None:
    config = tmp_path / "acceptance.toml"
    config.write_text(ABORT)
    out = tmp_path / "load.json"
    # 500s from 1.5 s after the first request: the workers send their figures every second,
    # the master judges them merged and stops every worker (their shares still come).
    with (
        failing_later() as url,
        cluster(
            f"{url}/", out, "--concurrency", "2", "--duration", "20", "--config", str(config)
        ) as (master, workers),
    ):
        code, _ = finished(master, workers)
    assert code == 1
    results = read_results(out)
    assert isinstance(results, LoadResults)
    assert results.valid, results.invalid_reasons  # every share came, no interruption
    stopped = results.stopped
    assert stopped is not None and stopped.by == "criterion", results
    assert stopped.measured is not None and stopped.measured >= 0.10
    late_s = 2.0 + 0.3  # one judging interval and one report interval, and a busy machine's
    assert FAILS_FROM_S <= stopped.at_s <= could_first_fail_s(results) + late_s, results.timeline
    assert results.duration_s < stopped.at_s + 1.0


def test_a_plan_crosses_as_plain_data_and_back() -> None:
    plan = SharePlan(
        request=RequestSpec(
            url="https://h:8443/p?q=1",
            method="POST",
            headers=(("X-A", "1"),),
            body=b"\x00\xffbody",
            tls=TlsOptions(verify=True, ca_cert=Path("/etc/ca.pem")),
        ),
        model="open",
        start=1_700_000_000.25,
        duration_s=3.0,
        rate=50.0,
        stages=(Stage(duration_s=1.0, target=10.0, name="warm"),),
        max_in_flight=7,
        worker_index=1,
        worker_count=2,
        source="worker-2",
        live_shares=True,
        scenario='{"format":"loadkit.declarative/1","name":"s","setup":[],"requests":[]}',
    )
    # All but the start, which the master sends once every worker is set up.
    assert plan_from_wire(plan_to_wire(plan)) == replace(plan, start=None)
    assert plan_from_wire(plan_to_wire(replace(plan, scenario=None))).scenario is None
    with pytest.raises(InputError, match="same loadkit"):
        plan_from_wire({**plan_to_wire(plan), "version": "loadkit.native_plan/0"})
    # A worker of the last version would wait for a start in its plan that never comes.
    with pytest.raises(InputError, match=r"native_plan/3.*same loadkit"):
        plan_from_wire({**plan_to_wire(plan), "version": "loadkit.native_plan/3"})


def test_a_worker_whose_tls_contradicts_its_master_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "load.json"
    with (
        scheduled_server_process(hold_s=0.01) as url,
        cluster(
            url,
            out,
            "--concurrency",
            "1",
            "--duration",
            "1",
            workers=1,
            worker_args=("--insecure",),
        ) as (master, workers),
    ):
        _, stderr = workers[0].communicate(timeout=RUN_BOUND_S)
        master.communicate(timeout=RUN_BOUND_S)
    assert workers[0].returncode == EXIT_USAGE
    assert "--insecure contradicts its master, which checks certificates" in stderr
    assert master.returncode == EXIT_INVALID_RUN
    results = read_results(out)
    assert isinstance(results, LoadResults)
    # A worker that ended before it was set up gives the run up at once (the others, had there
    # been any, stopped rather than started without it): nothing ran, the file says why.
    assert not results.valid and results.totals.requests == 0
    reason = str(results.invalid_reasons[0])
    assert "could not start" in reason and "ended before they were set up" in reason, reason


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--worker", "--engine", "native", "--processes", "2"], "one `loadkit load --worker"),
        (["http://127.0.0.1:9/", "--master", "--processes", "2"], "--master cannot be combined"),
        (["http://127.0.0.1:9/", "--engine", "native", "--spawn-rate", "5"], "at once"),
    ],
)
def test_what_a_native_master_or_worker_cannot_do_is_refused(
    args: list[str], message: str, tmp_path: Path
) -> None:
    out = [] if "--worker" in args else ["--out", str(tmp_path / "o.json")]
    result = CliRunner().invoke(app, ["load", *args, *out])
    assert result.exit_code == EXIT_USAGE, result.output
    assert message in result.output


def test_a_worker_whose_users_log_in_slowly_still_starts_on_the_common_timetable(
    login_api: str, tmp_path: Path
) -> None:
    port = free_port()
    rate, duration_s, users = 40.0, 1.0, 4
    with native_workers(port) as workers:
        results = run_native_load(
            request=RequestSpec(url=login_api),
            profile=LoadProfile(
                scenario="login", rate=rate, duration_s=duration_s, max_in_flight=users
            ),
            out=tmp_path / "load.json",
            quiet=True,
            master=NativeMaster(expect=1, bind_host="127.0.0.1", bind_port=port, wait_s=30),
            scenario=_scenario("/login"),
        )
        _, stderr = workers[0].communicate(timeout=RUN_BOUND_S)
    assert workers[0].returncode == 0, stderr[-2000:]
    # Every user logged in before the start: the timetable ran whole from it, on time.
    assert results.valid, results.invalid_reasons
    schedule = results.schedule
    assert schedule is not None
    assert (schedule.lag_ms.max or 0.0) < LOGIN_S * 1000 / 10
    assert abs(schedule.iterations_due - rate * duration_s) <= 1
    assert results.duration_s == pytest.approx(duration_s, abs=0.1)
    counts = {e.name: e.requests for e in results.endpoints}
    assert counts["POST /login"] == users
    assert counts["GET /items"] == schedule.iterations_dispatched
    assert "the scenario's setup ended" not in stderr


def test_a_worker_never_set_up_ends_the_run_after_the_bound_naming_it(
    login_api: str, tmp_path: Path
) -> None:
    port = free_port()
    out = tmp_path / "load.json"
    with native_workers(port) as workers:
        with pytest.raises(WorkersNotReadyError) as raised:
            run_native_load(
                request=RequestSpec(url=login_api),
                profile=LoadProfile(scenario="hang", rate=20, duration_s=1, max_in_flight=2),
                out=out,
                quiet=True,
                master=NativeMaster(
                    expect=1, bind_host="127.0.0.1", bind_port=port, wait_s=30, ready_wait_s=1.0
                ),
                scenario=_scenario("/hang"),
            )
        # Told why, the worker leaves at once: neither a start nor its stuck login (out until
        # its 60 s timeout) is waited for.
        _, stderr = workers[0].communicate(timeout=10)
    error = raised.value
    assert exit_code_for(error) == EXIT_INVALID_RUN
    (worker,) = error.not_ready
    assert worker.startswith(socket.gethostname())  # Locust's id for it, as the logs name it
    assert worker in str(error) and "not set up within 1 s" in str(error)
    # Nothing ran: an aborted file replaces --out, saying why.
    results = read_results(out)
    assert isinstance(results, LoadResults)
    assert not results.valid and results.totals.requests == 0
    assert "could not start" in str(results.invalid_reasons[0]), results.invalid_reasons
    assert workers[0].returncode == EXIT_INVALID_RUN, stderr[-2000:]
    assert "gave the run up before it started" in stderr and worker in stderr

"""Abort on fail (issue #17): a `load.*` criterion with `abort_on_fail = true` stops a run as
soon as it fails on the live figures (after `delay_s`), on either engine, in one process or in
two (judged on their figures merged); the run is a valid, failing measurement (`stopped: {by:
"criterion"}`, exit 1) that the gate then fails."""

from __future__ import annotations

import contextlib
import math
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from loadkit.config import DEFAULT_ABORT_DELAY_S, Criterion, parse_config
from loadkit.exceptions import ConfigError
from loadkit.gate.abort import abort_criteria, first_failure, named_endpoints
from loadkit.measure.load_results import live_results
from loadkit.measure.recorder import LatencyRecorder
from loadkit.measure.results import LoadResults, read_results
from tests.loadkit.crafted import T0

ABORT = """
[[criteria]]
metric = "load.error_rate"
op = "<"
threshold = 0.10
abort_on_fail = true
delay_s = 1
"""


def criteria(text: str) -> tuple[Criterion, ...]:

    return parse_config(tomllib.loads(text), source="acceptance.toml").criteria


def live(errors: int, ok: int) -> LoadResults:
    recorder = LatencyRecorder(start=T0)
    for index in range(errors + ok):
        failed = index < errors
        recorder.record(
            endpoint="GET /",
            latency_s=0.01,
            end=T0 + 0.01 * index,
            error_kind="internal_error" if failed else None,
            status=500 if failed else 200,
        )
    return live_results(recorder, target="http://127.0.0.1:1")


def test_the_first_failing_criterion_stops_after_its_delay() -> None:
    crits = abort_criteria(criteria(ABORT))
    failing = live(errors=3, ok=7)
    assert first_failure(crits, failing, elapsed_s=0.9) is None  # still in its delay
    stop = first_failure(crits, failing, elapsed_s=1.2)
    assert stop is not None
    assert (stop.by, stop.at_s, stop.criterion) == ("criterion", 1.2, "load.error_rate < 0.1")
    assert stop.measured == pytest.approx(0.3)
    assert first_failure(crits, live(errors=0, ok=10), elapsed_s=5) is None


def test_nothing_measured_yet_cannot_fail() -> None:
    crits = abort_criteria(
        criteria(
            '[[criteria]]\nmetric = "load.p95_ms"\nop = "<"\nthreshold = 1\nabort_on_fail = true\n'
            "delay_s = 0\n"
        )
    )
    empty = live_results(LatencyRecorder(start=T0), target="http://127.0.0.1:1")
    assert first_failure(crits, empty, elapsed_s=3) is None


def test_without_delay_s_a_criterion_waits_ten_seconds() -> None:
    (crit,) = criteria(ABORT.replace("delay_s = 1\n", ""))
    assert crit.delay_s is None and crit.abort_delay_s == DEFAULT_ABORT_DELAY_S == 10.0
    failing = live(errors=3, ok=7)
    assert first_failure([crit], failing, elapsed_s=9.9) is None
    assert first_failure([crit], failing, elapsed_s=10.0) is not None


def test_an_endpoint_criterion_is_judged_on_that_endpoint_which_the_snapshot_holds() -> None:
    crits = abort_criteria(
        criteria(ABORT.replace("delay_s = 1", 'delay_s = 1\nendpoint = "POST /login"'))
    )
    recorder = LatencyRecorder(start=T0)
    for index in range(20):
        failed = index % 4 == 0  # POST /login: 5 of 20 fail
        recorder.record(
            endpoint="POST /login",
            latency_s=0.01,
            end=T0 + 0.01 * index,
            error_kind="internal_error" if failed else None,
        )
        recorder.record(endpoint="GET /", latency_s=0.01, end=T0 + 0.01 * index)
    named = named_endpoints(crits)
    assert named == {"POST /login"}
    snapshot = live_results(recorder, target="http://127.0.0.1:1", endpoints=named)
    assert [e.name for e in snapshot.endpoints] == ["POST /login"]  # only what is judged
    stop = first_failure(crits, snapshot, elapsed_s=2)
    assert stop is not None and stop.measured == pytest.approx(0.25)
    # Not in the snapshot (not seen yet, or not asked for): nothing to measure, no stop.
    bare = live_results(recorder, target="http://127.0.0.1:1")
    assert first_failure(crits, bare, elapsed_s=2) is None


def test_http2_resets_on_one_endpoint_stop_the_run_from_the_live_snapshot() -> None:
    crits = abort_criteria(
        criteria(
            '[[criteria]]\nmetric = "load.http2_internal_errors"\nop = "<"\nthreshold = 1\n'
            'endpoint = "POST /login"\nabort_on_fail = true\ndelay_s = 0\n'
        )
    )
    recorder = LatencyRecorder(start=T0)
    recorder.record(
        endpoint="GET /", latency_s=0.01, end=T0 + 0.01, error_kind="http2_internal_error"
    )
    recorder.record(endpoint="POST /login", latency_s=0.01, end=T0 + 0.02)
    snapshot = live_results(recorder, target="http://127.0.0.1:1", endpoints=named_endpoints(crits))
    assert first_failure(crits, snapshot, elapsed_s=1) is None  # the reset was on another one
    recorder.record(
        endpoint="POST /login", latency_s=0.01, end=T0 + 0.03, error_kind="http2_internal_error"
    )
    snapshot = live_results(recorder, target="http://127.0.0.1:1", endpoints=named_endpoints(crits))
    stop = first_failure(crits, snapshot, elapsed_s=1)
    assert stop is not None and stop.measured == 1


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        (
            'metric = "load.rps"\nop = ">"\nthreshold = 1\nabort_on_fail = true\n',
            "abort_on_fail applies to load metrics the run watches live",
        ),
        (
            'metric = "load.p95_ms"\nop = "<"\nthreshold = 1\ndelay_s = 5\n',
            "delay_s delays abort_on_fail",
        ),
        (
            'metric = "load.requests"\nop = ">="\nthreshold = 1000\nabort_on_fail = true\n',
            "abort_on_fail applies to load metrics the run watches live",
        ),
        (
            'metric = "load.errors.timeout"\nop = ">"\nthreshold = 5\nabort_on_fail = true\n',
            "a count only grows during the run",
        ),
        (
            'metric = "load.p95_ms"\nop = "<"\nthreshold = 1\nabort_on_fail = true\n'
            'window = "steady"\n',
            "abort_on_fail judges the run so far, not window 'steady'",
        ),
    ],
)
def test_abort_keys_are_checked(entry: str, expected: str) -> None:
    with pytest.raises(ConfigError) as error:
        criteria("[[criteria]]\n" + entry)
    assert expected in str(error.value)


# --- a run stopped -------------------------------------------------------------------------------


FAILS_FROM_S = 1.5
"""When the failing server starts answering 500s (after its first request): past the criterion's
delay (1 s), so it is judged and holds first, and early enough that the run stops at about 2 s."""


class _FailingLater(BaseHTTPRequestHandler):
    """200 until ``fail_from_s`` after the server's first request, 500 from then on."""

    protocol_version = "HTTP/1.1"
    first: float | None = None
    fail_from_s = FAILS_FROM_S
    hold_s = 0.0

    def do_GET(self) -> None:
        now = time.monotonic()
        cls = type(self)
        if cls.first is None:
            cls.first = now
        status = 500 if now - cls.first >= cls.fail_from_s else 200
        time.sleep(cls.hold_s)
        self.send_response(status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, format: str, *args: object) -> None:
        pass


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client that hangs up at the end of its run is no news


@contextlib.contextmanager
def failing_later(fail_from_s: float = FAILS_FROM_S, hold_s: float = 0.0) -> Iterator[str]:
    handler = type("Handler", (_FailingLater,), {"fail_from_s": fail_from_s, "hold_s": hold_s})
    server = _QuietServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def load(url: str, tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    config = tmp_path / "acceptance.toml"
    config.write_text(ABORT)
    out = tmp_path / "load.json"
    done = subprocess.run(
        [
            *(sys.executable, "-m", "loadkit", "load", f"{url}/", "--concurrency", "2"),
            *("--quiet", "--config", str(config), "--out", str(out), *args),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done, out


def could_first_fail_s(results: LoadResults, delay_s: float = 1.0) -> float:
    """When the error-rate criterion could first fail, read from the run's own timeline: the
    first whole second from its delay on (or the run's end) at which the errors so far are 10 %
    of the requests so far."""
    ends = [*range(math.ceil(delay_s), math.ceil(results.duration_s)), results.duration_s]
    for end in ends:
        seconds = [p for p in results.timeline if p.t_s < end]
        requests = sum(p.completions for p in seconds)
        if requests and sum(p.errors for p in seconds) / requests >= 0.10:
            return float(end)
    raise AssertionError(f"the criterion never failed in the run's timeline: {results.timeline}")


JUDGED_EVERY_S = 1.0
SLACK_S = 0.3
"""A busy machine's scheduling: a judgement a little after its second."""


@pytest.mark.parametrize(
    ("engine", "processes", "late_s"),
    [
        ("native", 1, JUDGED_EVERY_S),
        ("locust", 1, JUDGED_EVERY_S),
        # The figures reach the judge once a second (each process's, each worker's report).
        ("native", 2, JUDGED_EVERY_S + 1.0),
        ("locust", 2, JUDGED_EVERY_S + 1.0),
    ],
)
def test_a_failing_criterion_stops_the_run_and_the_gate_fails_it(
    tmp_path: Path, engine: str, processes: int, late_s: float
) -> None:
    # 200s for the first 1.5 s of requests, 500s from then on: past the delay (1 s), so the
    # criterion is judged, and holds, before it fails.
    with failing_later() as url:
        done, out = load(
            url, tmp_path, "--duration", "20", "--engine", engine, "--processes", str(processes)
        )
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    # The summary says when and on what (and so does the error line, on stderr).
    assert "stopped early at" in done.stdout and "load.error_rate" in done.stdout, output
    results = read_results(out)
    assert isinstance(results, LoadResults)
    assert results.valid, results.invalid_reasons  # a failing measurement, never invalid
    stopped = results.stopped
    assert stopped is not None and stopped.by == "criterion", output
    assert stopped.criterion == "load.error_rate < 0.1"
    assert stopped.measured is not None and stopped.measured >= 0.10
    # Stopped once the failures began, within a judging interval (with two processes, one
    # report interval more) of when the figures first failed, far before its planned 20 s.
    assert stopped.at_s >= FAILS_FROM_S, stopped
    assert stopped.at_s <= could_first_fail_s(results) + late_s + SLACK_S, results.timeline
    assert results.duration_s < stopped.at_s + 1.0
    if processes == 1 and engine == "native":
        gate = subprocess.run(
            [
                sys.executable,
                "-m",
                "loadkit",
                "gate",
                str(out),
                "--config",
                str(tmp_path / "acceptance.toml"),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert gate.returncode == 1, gate.stdout + gate.stderr
        assert "it stopped the run at" in gate.stdout


@pytest.mark.parametrize("engine", ["native", "locust"])
def test_a_healthy_run_with_the_same_criteria_runs_to_its_end(tmp_path: Path, engine: str) -> None:
    with failing_later(fail_from_s=3600.0) as url:
        # 2 s: judged once its delay (1 s) is over, and again at the end.
        done, out = load(url, tmp_path, "--duration", "2", "--engine", engine)
    assert done.returncode == 0, done.stdout + done.stderr
    results = read_results(out)
    assert isinstance(results, LoadResults)
    assert results.valid and results.stopped is None, results.invalid_reasons
    assert results.duration_s >= 1.9


def test_failures_that_complete_in_the_drain_never_stop_a_run_that_ran_its_course(
    tmp_path: Path,
) -> None:
    # Every answer takes 1.2 s, and those to requests arriving from 1.4 s on are 500s: they
    # complete after the planned 2 s, in the drain. The run ran as planned: it is not "stopped
    # early", and the requests still in flight are waited for, not cut (the gate judges them).
    with failing_later(fail_from_s=1.4, hold_s=1.2) as url:
        config, out = tmp_path / "acceptance.toml", tmp_path / "load.json"
        config.write_text(ABORT)
        done = subprocess.run(
            [
                *(sys.executable, "-m", "loadkit", "load", f"{url}/", "--rate", "20"),
                *("--duration", "2", "--quiet", "--config", str(config), "--out", str(out)),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    results = read_results(out)
    assert isinstance(results, LoadResults)
    assert results.stopped is None, done.stdout + done.stderr
    assert results.schedule is not None
    assert results.totals.requests == results.schedule.iterations_dispatched
    assert results.totals.error_rate >= 0.10  # the drain's 500s are counted
    assert done.returncode == 0, done.stdout + done.stderr

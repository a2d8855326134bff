"""Abort on fail (issue #17): a `load.*` criterion with `abort_on_fail = true` stops a
single-process run as soon as it fails on the live figures (after `delay_s`); the run is a valid,
failing measurement (`stopped: {by: "criterion"}`, exit 1) that the gate then fails."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from loadkit.config import Criterion, parse_config
from loadkit.exceptions import ConfigError
from loadkit.gate.abort import abort_criteria, first_failure
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
        )
    )
    empty = live_results(LatencyRecorder(start=T0), target="http://127.0.0.1:1")
    assert first_failure(crits, empty, elapsed_s=3) is None


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


class _FailingLater(BaseHTTPRequestHandler):
    """200 until ``fail_from_s`` after the server's first request, 500 from then on."""

    protocol_version = "HTTP/1.1"
    first: float | None = None
    fail_from_s = 2.0

    def do_GET(self) -> None:
        now = time.monotonic()
        cls = type(self)
        if cls.first is None:
            cls.first = now
        status = 500 if now - cls.first >= cls.fail_from_s else 200
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
def failing_later() -> Iterator[str]:
    handler = type("Handler", (_FailingLater,), {})
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


@pytest.mark.parametrize("engine", ["native", "locust"])
def test_a_failing_criterion_stops_the_run_and_the_gate_fails_it(
    tmp_path: Path, engine: str
) -> None:
    config = tmp_path / "acceptance.toml"
    config.write_text(ABORT)
    out = tmp_path / "load.json"
    with failing_later() as url:
        done = subprocess.run(
            [
                *(sys.executable, "-m", "loadkit", "load", f"{url}/", "--engine", engine),
                *("--concurrency", "2", "--duration", "10", "--quiet"),
                *("--config", str(config), "--out", str(out)),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "stopped early at" in output and "load.error_rate" in output, output
    results = read_results(out)
    assert isinstance(results, LoadResults)
    assert results.valid, results.invalid_reasons
    stopped = results.stopped
    assert stopped is not None and stopped.by == "criterion", output
    assert stopped.measured is not None and stopped.measured >= 0.10
    # The service failed from 2 s after its first request; the criterion is checked once a
    # second: the run stopped after the failures began and within a few checks of them, far
    # before its planned 10 s.
    assert 2.0 <= stopped.at_s <= 5.0, stopped
    assert results.duration_s < 7.0
    gate = subprocess.run(
        [sys.executable, "-m", "loadkit", "gate", str(out), "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert gate.returncode == 1, gate.stdout + gate.stderr
    assert "it stopped the run at" in gate.stdout

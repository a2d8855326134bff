"""The pure parts of loadkit load: results from a recorder, the summary, the progress line,
targets, scenarios and profiles. No Locust here (it would monkey-patch the test process)."""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path

import pytest

from loadkit.exceptions import ConfigError, TargetUnreachableError
from loadkit.measure.live_status import LiveStatus, read_status, write_status
from loadkit.measure.load_results import build_load_results, mark_aborted
from loadkit.measure.recorder import LatencyRecorder
from loadkit.measure.results import GeneratorHealth, LoadResults
from loadkit.measure.validity import InvalidReason
from loadkit.report.load import ProgressPrinter, format_progress, render_load_table
from loadkit.run.load import (
    BUNDLED_SCENARIOS,
    Target,
    check_reachable,
    resolve_scenario,
)

START = 1_000_000.0


def _results(*, overloaded: bool = False, stall: bool = False) -> LoadResults:
    recorder = LatencyRecorder(start=START)
    for i in range(200):
        recorder.record(endpoint="POST /api/auth/login", latency_s=0.004, end=START + i * 0.01)
    recorder.record(
        endpoint="POST /api/auth/login",
        latency_s=0.02,
        end=START + 2.5,
        error_kind="storage_lock_timeout",
        status=503,
        trace_id="t-123",
        message="storage busy",
    )
    if stall:
        recorder.record(endpoint="GET /api/items", latency_s=1.5, end=START + 4.0)
    recorder.finish(end=START + 5.0)
    return build_load_results(
        recorder,
        target="http://127.0.0.1:8000",
        config={"scenario": "login", "concurrency": 10, "processes": 1},
        generator=GeneratorHealth(overloaded=overloaded, cpu_warnings=int(overloaded)),
    )


def test_results_carry_totals_endpoints_errors_and_validity() -> None:
    results = _results()
    assert results.valid
    assert results.totals.requests == 201
    assert results.totals.errors == 1
    assert [e.name for e in results.endpoints] == ["POST /api/auth/login"]
    assert results.errors[0].kind == "storage_lock_timeout"
    assert results.errors[0].example_trace_id == "t-123"
    assert len(results.timeline) == 5


def test_an_overloaded_generator_makes_the_run_invalid_with_a_reason() -> None:
    results = _results(overloaded=True)
    assert not results.valid
    (reason,) = results.invalid_reasons
    assert reason.code == "generator_overloaded"
    assert reason.detail.startswith("a load generator process ran above 90 % CPU (1 warning(s)")


def test_mark_aborted_is_idempotent() -> None:
    once = mark_aborted(_results(), "interrupted")
    twice = mark_aborted(once, "interrupted again")
    assert once.aborted and not once.valid
    assert twice is once
    assert once.invalid_reasons == [InvalidReason(code="aborted", detail="interrupted")]


def test_an_aborted_overloaded_run_keeps_both_reasons_in_the_order_they_arose() -> None:
    results = mark_aborted(_results(overloaded=True), "interrupted")
    assert [r.code for r in results.invalid_reasons] == ["generator_overloaded", "aborted"]


def test_summary_shows_tables_error_kinds_stall_and_path() -> None:
    text = render_load_table(_results(stall=True), path="results/load.json")
    assert "POST /api/auth/login" in text
    assert "storage_lock_timeout" in text and "503×1" in text and "t-123" in text
    assert "longest stall: 1.50 s" in text and "from 2.50 s to 4.00 s" in text
    assert "results: results/load.json" in text
    assert "INVALID" not in text


@pytest.mark.parametrize(("peak", "warned"), [(40.0, False), (74.9, False), (82.0, True)])
def test_summary_warns_when_the_generator_may_be_what_limits_the_run(
    peak: float, warned: bool
) -> None:
    results = _results().model_copy(update={"generator": GeneratorHealth(max_cpu_percent=peak)})
    text = render_load_table(results)
    assert ("warning: a load generator process ran near its CPU limit" in text) is warned


def test_summary_says_invalid_and_why() -> None:
    text = render_load_table(mark_aborted(_results(overloaded=True), "interrupted"))
    assert "INVALID" in text and "ABORTED" in text
    assert "  - generator_overloaded: a load generator process ran above 90 % CPU" in text
    assert "  - aborted: interrupted" in text


def test_progress_line_shows_bar_users_rps_errors_p95() -> None:
    status = LiveStatus(
        state="running",
        elapsed_s=30.0,
        users=10,
        requests=12_345,
        rps=812.4,
        error_rate=0.0125,
        p95_ms=11.44,
    )
    line = format_progress(status, duration_s=60, width=10)
    assert line.startswith("[#####.....]  30.0/60 s")
    assert "users 10" in line and "rps 812" in line and "1.25 %" in line and "11.4 ms" in line


def test_progress_printer_redraws_only_on_a_terminal() -> None:
    stream = io.StringIO()
    printer = ProgressPrinter(duration_s=10, stream=stream)
    for elapsed in (1.0, 2.0, 3.0):
        printer(LiveStatus("running", elapsed, 1, 10, 5.0, 0.0, None))
    printer(LiveStatus("done", 10.0, 0, 50, 5.0, 0.0, 1.0))
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2  # the first running line, then the final one; no \r redraws
    assert "(done)" in lines[-1]


def test_status_file_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "status.json"
    assert read_status(path) is None
    status = LiveStatus("running", 1.5, 3, 100, 66.7, 0.01, 4.2, None)
    write_status(path, status)
    assert read_status(path) == status


def test_target_parsing() -> None:
    target = Target.parse("http://127.0.0.1:8080/index.html?x=1")
    assert target.host == "http://127.0.0.1:8080"
    assert target.path == "/index.html?x=1"
    assert target.url == "http://127.0.0.1:8080/index.html?x=1"  # Locust's --host, as written
    assert target.address == ("127.0.0.1", 8080)
    assert Target.parse("https://example.test").address == ("example.test", 443)
    with pytest.raises(ConfigError, match="not an http"):
        Target.parse("ftp://127.0.0.1/")


def test_unreachable_target_is_refused_before_the_run() -> None:
    from loadkit.run.bundled_service import free_port

    with pytest.raises(TargetUnreachableError, match="cannot connect"):
        check_reachable(Target.parse(f"http://127.0.0.1:{free_port()}"), timeout_s=1.0)


def test_scenarios_resolve_by_name_or_path(tmp_path: Path) -> None:
    assert resolve_scenario("login") == (BUNDLED_SCENARIOS / "login.py").resolve()
    custom = tmp_path / "mine.py"
    custom.write_text("")
    assert resolve_scenario(str(custom)) == custom.resolve()
    with pytest.raises(ConfigError, match=r"known: .*api.*login.*url"):
        resolve_scenario("nope")


def test_web_tab_rows_show_exact_latency_and_error_kinds() -> None:
    from loadkit.report.load_webui import ERRORS_TAB, LATENCY_TAB, web_tab_rows

    assert web_tab_rows(None) == [
        {"key": LATENCY_TAB, "data": []},
        {"key": ERRORS_TAB, "data": []},
    ]
    recorder = LatencyRecorder(start=START)
    recorder.record(endpoint="POST /api/auth/login", latency_s=1.04, end=START + 1.1)
    recorder.record(
        endpoint="POST /api/auth/login",
        latency_s=0.01,
        end=START + 1.2,
        error_kind="storage_lock_timeout",
        status=503,
        trace_id="t-1",
    )
    latency, errors = web_tab_rows(recorder)
    row, aggregated = latency["data"]
    assert row["requests"] == 2 and row["errors"] == 1
    assert row["max"] == 1040.0  # exact, not Locust's bucket of 1000
    assert aggregated == {**row, "endpoint": "Aggregated"}  # one endpoint: the same figures
    assert errors["data"] == [
        {
            "endpoint": "POST /api/auth/login",
            "kind": "storage_lock_timeout",
            "count": 1,
            "status": "503x1",
            "trace_id": "t-1",
        }
    ]


def test_an_open_runs_progress_line_shows_target_and_achieved_rate_and_queue() -> None:
    # The plugin's status of an open run carries the target rate now (a ramp's too), the
    # iterations started per second and the queue (a master's: no queue); without them the line
    # falls back to the profile's fixed rate and the requests per second.
    status = LiveStatus("running", 12.0, 40, 2_400, 198.4, 0.0, 11.44)
    line = format_progress(status, duration_s=60, open_model=True, rate=200)
    assert "rate 198/s of 200/s" in line and "p95 11.4 ms" in line
    assert "users" not in line and "queue" not in line
    with_fields = replace(status, target_rate=150.0, achieved_rate=149.6, queue=17)
    line = format_progress(with_fields, duration_s=60, open_model=True, rate=None)
    assert "rate 150/s of 150/s  queue 17  p95 11.4 ms" in line
    master = replace(status, target_rate=150.0, achieved_rate=120.2)
    line = format_progress(master, duration_s=60, open_model=True, rate=None)
    assert "rate 120/s of 150/s  p95" in line
    assert "users 40" in format_progress(status, duration_s=60)  # a closed run: as before


def test_an_open_runs_progress_line_shows_the_service_p95_beside_the_response_p95() -> None:
    # Response time from the due time, service time from the send: the gap is the queue.
    status = LiveStatus("running", 12.0, 40, 2_400, 198.4, 0.0, 811.44, service_p95_ms=2.14)
    line = format_progress(status, duration_s=60, open_model=True, rate=200)
    assert "p95 811.4 ms  service p95 2.1 ms  errors" in line
    # No completion in the last second: neither figure, both said so.
    quiet = replace(status, p95_ms=None, service_p95_ms=None)
    line = format_progress(quiet, duration_s=60, open_model=True, rate=200)
    assert "p95 —  service p95 —  errors" in line
    # A closed run's line is as it was: its service time is its response time.
    closed = LiveStatus("running", 30.0, 10, 12_345, 812.4, 0.0125, 11.44)
    assert format_progress(closed, duration_s=60, width=10) == (
        "[#####.....]  30.0/60 s  users 10  rps 812  errors 1.25 %  p95 11.4 ms  requests 12,345"
    )


def test_the_live_service_p95_is_the_last_seconds_and_crosses_the_status_file(
    tmp_path: Path,
) -> None:
    open_run = LatencyRecorder(start=START)
    for n in range(100):  # second 0: 1 s waits before the send, services of 1-100 ms
        end = START + 0.5 + n * 1e-3
        open_run.record(
            endpoint="GET /", latency_s=1.0 + (n + 1) / 1000, service_s=(n + 1) / 1000, end=end
        )
    open_run.record(endpoint="GET /", latency_s=0.01, service_s=0.01, end=START + 1.5)
    last = open_run.last_second
    assert last is not None and last.t == 0
    assert last.p95_ms == pytest.approx(1095.0, rel=1e-3)
    assert last.service_p95_ms == pytest.approx(95.0, rel=1e-3)
    closed_run = LatencyRecorder(start=START)
    for end in (START + 0.5, START + 1.5):
        closed_run.record(endpoint="GET /", latency_s=0.01, end=end)
    assert closed_run.last_second is not None and closed_run.last_second.service_p95_ms is None
    status = LiveStatus("running", 1.5, 1, 101, 100.0, 0.0, last.p95_ms, service_p95_ms=95.0)
    write_status(tmp_path / "status.json", status)
    assert read_status(tmp_path / "status.json") == status


def test_summary_names_the_engine_that_ran_and_what_it_ran() -> None:
    # Gate, compare and report never know which engine ran; the user reading the summary must.
    native = _results().model_copy(
        update={"config": {"scenario": "url", "concurrency": 5, "engine": "native"}}
    )
    locust = _results().model_copy(
        update={"config": {"scenario": "login", "concurrency": 10, "engine": "locust"}}
    )
    assert "engine native  scenario url  5 connections" in render_load_table(native)
    assert "engine locust  scenario login  10 users" in render_load_table(locust)

"""Windows judge service times (DESIGN, "Windows"): over a window of seconds, an open run's
service criteria read the seconds' ``service_histogram`` merged exactly; a closed run's service
time is its response time; an open file without them is refused, never judged on less."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from loadkit.cli import app
from loadkit.config import parse_config
from loadkit.exceptions import InputError
from loadkit.gate.evaluate import SlowestSeconds
from loadkit.measure.histogram import LatencyHistogram
from loadkit.measure.recorder import LatencyRecorder
from loadkit.measure.results import LoadResults, write_results
from loadkit.report.gate import render_gate_table
from tests.loadkit.crafted import criterion, judge, only
from tests.loadkit.open_runs import (
    STAGES,
    T0,
    Request,
    freeze_timetable,
    open_results,
    record_open,
    schedule_of,
)
from tests.loadkit.test_windows import slow_start_run

SERVICE_METRICS = ("service_p50_ms", "service_p90_ms", "service_p95_ms", "service_p99_ms")


@pytest.fixture(scope="module")
def frozen_open_run() -> LoadResults:
    """Due every 10 ms, one user, 2 ms answers, nothing completes from 1 s to 2 s: the request
    in flight then completes at 2.002 s with a second of service time; the hundred queued behind
    it wait up to a second (response time) and are served in 2 ms each (service time)."""
    requests = freeze_timetable()
    recorder = LatencyRecorder(start=T0)
    record_open(recorder, requests)
    return open_results(recorder, end=T0 + 3.0, schedule=schedule_of(requests, rate=100, lags_s=[]))


def test_a_window_judges_the_service_time_of_the_requests_that_completed_in_it(
    frozen_open_run: LoadResults,
) -> None:
    # The truth: the service times of the requests that completed from second 2 on, in one
    # histogram, as the recorder took them.
    truth = LatencyHistogram()
    for request in freeze_timetable():
        if request.end >= 2.0:
            truth.record_us(request.service_s * 1e6)
    expected = truth.summary()
    for metric in SERVICE_METRICS:
        verdict = only(
            judge(criterion(f"load.{metric}", "<=", 1e9, window="from 2s"), frozen_open_run)
        )
        assert verdict.measured == getattr(
            expected, metric.removeprefix("service_").removesuffix("_ms")
        )
    # The queue after the freeze shows in the response time only: the service was fast.
    service = only(
        judge(criterion("load.service_p95_ms", "<", 10, window="from 2s"), frozen_open_run)
    )
    response = only(judge(criterion("load.p95_ms", "<", 10, window="from 2s"), frozen_open_run))
    assert service.status == "passed" and service.measured is not None and service.measured < 3
    assert response.status == "failed" and response.measured is not None and response.measured > 500
    assert service.window is not None and service.window.startswith("from 2s (2 s-")


def test_every_seconds_service_histograms_merged_are_the_runs_own(
    frozen_open_run: LoadResults,
) -> None:
    # A window over every second is the whole run by another road: the seconds' histograms
    # merged must give the figures the recorder kept for the run, exactly.
    seconds = len(frozen_open_run.timeline)
    run = frozen_open_run.service_time_ms
    assert run is not None and seconds >= 3
    for metric in SERVICE_METRICS:
        crit = criterion(f"load.{metric}", "<=", 1e9, window=f"0s-{seconds}s")
        field = metric.removeprefix("service_").removesuffix("_ms")
        assert only(judge(crit, frozen_open_run)).measured == getattr(run, field)


def test_an_open_file_without_service_times_per_second_is_refused_saying_what_to_judge(
    frozen_open_run: LoadResults, tmp_path: Path
) -> None:
    older = frozen_open_run.model_copy(
        update={
            "timeline": [
                p.model_copy(update={"service_histogram": None}) for p in frozen_open_run.timeline
            ]
        }
    )
    windowed = criterion("load.service_p95_ms", "<", 10, window="from 2s")
    with pytest.raises(InputError, match=r"second 2 of window from 2s .* has no service_histogram"):
        judge(windowed, older)
    # What it says to do can be done: the whole run's service time, the window's response time.
    assert only(judge(criterion("load.service_p95_ms", "<", 1e9), older)).status == "passed"
    assert only(judge(criterion("load.p95_ms", "<", 1e9, window="from 2s"), older)).measured
    # Through the CLI: a configuration the results cannot answer, exit 2, the file named.
    write_results(tmp_path / "older.json", older)
    (tmp_path / "acc.toml").write_text(
        '[[criteria]]\nmetric = "load.service_p95_ms"\nop = "<"\nthreshold = 10\n'
        'window = "from 2s"\n'
    )
    result = CliRunner().invoke(
        app, ["gate", str(tmp_path / "older.json"), "--config", str(tmp_path / "acc.toml")]
    )
    assert result.exit_code == 2, result.output
    assert "older.json" in result.output and 'window = "all"' in result.output


def test_a_failed_service_criterions_slowest_seconds_are_ranked_by_service_time() -> None:
    # Second 0: 50 ms services, sent on time. Second 1: 2 ms services after a 500 ms wait in a
    # queue. By response time second 1 is the slowest; by service time, second 0.
    requests = [Request(due=i * 0.01, sent=i * 0.01, end=i * 0.01 + 0.05) for i in range(50)]
    requests += [
        Request(due=0.55 + i * 0.01, sent=1.05 + i * 0.01, end=1.052 + i * 0.01) for i in range(50)
    ]
    recorder = LatencyRecorder(start=T0)
    record_open(recorder, requests)
    results = open_results(
        recorder, end=T0 + 2.0, schedule=schedule_of(requests, rate=50, lags_s=[])
    )
    report = judge(criterion("load.service_p95_ms", "<", 10, window="0s-2s"), results)
    verdict = only(report)
    assert verdict.status == "failed"
    [slowest] = [e for e in verdict.evidence if isinstance(e, SlowestSeconds)]
    assert [p.t_s for p in slowest.seconds] == [0, 1]
    assert slowest.service_p95_ms is not None
    assert slowest.service_p95_ms[0] == pytest.approx(50.0, rel=1e-3)
    assert slowest.service_p95_ms[1] == pytest.approx(2.0, rel=1e-3)
    assert "service p95 ms" in render_gate_table(report)
    # A response-time criterion still ranks by response time: the queued second first.
    response = only(judge(criterion("load.p95_ms", "<", 10, window="0s-2s"), results))
    [by_response] = [e for e in response.evidence if isinstance(e, SlowestSeconds)]
    assert [p.t_s for p in by_response.seconds] == [1, 0] and by_response.service_p95_ms is None


def test_a_closed_runs_service_time_over_a_window_is_its_response_time() -> None:
    results = slow_start_run()
    for window in ("from 10s", "2s-6s", "steady"):
        service = only(judge(criterion("load.service_p95_ms", "<", 1e9, window=window), results))
        response = only(judge(criterion("load.p95_ms", "<", 1e9, window=window), results))
        assert service.measured == response.measured and service.window == response.window


def test_the_acceptance_file_takes_a_service_criterion_with_a_window_of_seconds() -> None:
    criteria = [
        {"metric": "load.service_p95_ms", "op": "<", "threshold": 50, "window": window}
        for window in ("from 10s", "10s-40s", "steady", "stage:2")
    ]
    parsed = parse_config({"criteria": criteria}, source="acceptance.toml")
    assert [c.window for c in parsed.criteria] == ["from 10s", "10s-40s", "steady", "stage:2"]


def _without_service_times(results: LoadResults) -> LoadResults:
    """``results`` as a file written before open runs kept service times: its timetable, but no
    service figure anywhere (run, endpoints, stages, seconds)."""
    gone = {"service_time_ms": None, "service_histogram": None}
    return results.model_copy(
        update={
            **gone,
            "endpoints": [e.model_copy(update=gone) for e in results.endpoints],
            "stages": [s.model_copy(update=gone) for s in results.stages]
            if results.stages is not None
            else None,
            "timeline": [
                p.model_copy(update={"service_histogram": None}) for p in results.timeline
            ],
        }
    )


def test_an_open_file_without_any_service_times_is_refused_for_the_run_and_its_stages_too() -> None:
    # One rule for the whole run, its stages and its seconds: a closed run's service time is its
    # response time, an open run's never is. The whole run and its stages were judged on their
    # response times (the queue's wait included) while its windows of seconds were refused, and
    # that refusal sent the user to window = "all", which then judged the wrong figure.
    recorder = LatencyRecorder(start=T0, stages=STAGES)
    recorder.start_stages_at(T0)
    requests = freeze_timetable()
    record_open(recorder, requests)
    older = _without_service_times(
        open_results(recorder, end=T0 + 3.0, schedule=schedule_of(requests, rate=100, lags_s=[]))
    )
    assert older.schedule is not None and older.stages
    for window in (None, "all", "stage:1", "stage:warm"):
        extra = {} if window is None else {"window": window}
        crit = criterion("load.service_p95_ms", "<", 1e9, **extra)
        with pytest.raises(InputError, match="holds no service times") as refused:
            judge(crit, older)
        assert "load.p95_ms" in str(refused.value)  # what can be judged instead
    with pytest.raises(InputError, match="has no service_histogram") as seconds:
        judge(criterion("load.service_p95_ms", "<", 1e9, window="from 2s"), older)
    assert 'window = "all"' not in str(seconds.value)
    assert "stage:N" not in str(seconds.value)
    assert "load.p95_ms" in str(seconds.value)
    # The response time is still judged, over the run and over a window.
    assert only(judge(criterion("load.p95_ms", "<", 1e9), older)).status == "passed"
    assert only(judge(criterion("load.p95_ms", "<", 1e9, window="stage:1"), older)).measured

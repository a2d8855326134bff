"""An open-model run through the gate and the summary: service-time metrics, not_sent as an
error kind, the response time first with the service time beside it, the schedule line, the
stage table."""

from __future__ import annotations

import pytest

from loadkit.exceptions import InputError
from loadkit.gate.evaluate import SlowestEndpoints
from loadkit.measure.kinds import NOT_SENT_ENDPOINT
from loadkit.measure.recorder import LatencyRecorder
from loadkit.measure.results import LoadResults
from loadkit.report.gate_evidence import evidence_tables
from loadkit.report.load import render_load_table
from loadkit.stages import Stage
from tests.loadkit.crafted import crafted_load, criterion, judge, only
from tests.loadkit.open_runs import (
    ENDPOINT,
    STAGES,
    T0,
    Request,
    freeze_timetable,
    open_results,
    record_open,
    schedule_of,
)


def frozen_open_run(*, not_sent: int = 2) -> LoadResults:
    """The 1 s freeze through a 100/s timetable (see test_open_recorder), two stages."""
    requests = freeze_timetable()
    recorder = LatencyRecorder(start=T0, stages=STAGES)
    record_open(recorder, requests)
    due = [T0 + 2.99 - 0.01 * i for i in range(not_sent)]
    recorder.record_not_sent(count=not_sent, due=due, end=T0 + 3.0)
    schedule = schedule_of(requests, rate=100, lags_s=[0.0005] * 100, not_sent=not_sent)
    results = open_results(recorder, end=T0 + 3.0, schedule=schedule)
    return results.model_copy(update={"config": {"scenario": "url", "model": "open"}})


@pytest.mark.parametrize(
    ("metric", "measured"),
    [("load.service_p99_ms", 2.0), ("load.service_p50_ms", 2.0), ("load.p99_ms", 978.0)],
)
def test_service_metrics_read_the_service_time_and_latency_metrics_the_response_time(
    metric: str, measured: float
) -> None:
    verdict = only(judge(criterion(metric, "<", 100), frozen_open_run()))
    assert verdict.measured == pytest.approx(measured, rel=0.002)


def test_a_failed_service_metric_shows_the_endpoints_by_service_time() -> None:
    run = frozen_open_run()
    verdict = only(judge(criterion("load.service_p95_ms", "<", 1), run))
    assert verdict.status == "failed"
    slowest = next(e for e in verdict.evidence if isinstance(e, SlowestEndpoints))
    assert slowest.service and slowest.endpoints[0].name == ENDPOINT
    table = evidence_tables(slowest)[0]
    assert "service time" in table.title
    assert table.rows[0][4] == pytest.approx(2.0, abs=0.002)  # service P95, not response's 882


def test_service_metrics_per_endpoint_and_in_closed_runs() -> None:
    run = frozen_open_run()
    per_endpoint = criterion("load.service_p99_ms", "<", 5, endpoint=ENDPOINT)
    assert only(judge(per_endpoint, run)).status == "passed"
    unsent = criterion("load.service_p99_ms", "<", 5, endpoint=NOT_SENT_ENDPOINT)
    with pytest.raises(InputError, match="no request was sent, so there is no service time"):
        judge(unsent, run)
    # A closed run's service time is its response time (also in files older than open runs).
    closed = crafted_load()
    assert closed.service_time_ms is None
    assert only(judge(criterion("load.service_p95_ms", "<", 1e6), closed)).measured == (
        closed.latency_ms.p95
    )


def test_not_sent_is_an_error_kind_the_gate_knows() -> None:
    assert only(judge(criterion("load.errors.not_sent", "==", 0), frozen_open_run())).measured == 2
    assert only(judge(criterion("load.errors.not_sent", "==", 0), crafted_load())).status == (
        "passed"
    )
    verdict = only(judge(criterion("load.error_rate", "<", 0.001), frozen_open_run()))
    assert verdict.measured == 2 / 302


def test_the_summary_puts_the_response_time_first_and_says_why_service_time_differs() -> None:
    text = render_load_table(frozen_open_run(), path="load.json")
    assert "open model 100.0/s" in text.splitlines()[0]
    response = text.index("response time (from the due time)")
    service = text.index("service time (from the send)")
    assert response < service
    assert "882." in text[response:service] and "978." in text[response:service]
    assert "response time counts from when each request was due: requests waited" in text
    assert "and 2 were never sent (at most 1 iteration run at once)" in text
    assert (
        "open model: target 100.0/s, achieved 100.0/s; scheduler lag P99 0.5 ms "
        "(max 0.5 ms, bound 20 ms); iterations due 302, dispatched 300, not sent 2; "
        "longest queue 7; drain 0.25 s"
    ) in text
    assert "svc P95 ms" in text


def test_the_summary_shows_the_event_loop_delay_beside_the_scheduler_lag() -> None:
    requests = freeze_timetable()
    recorder = LatencyRecorder(start=T0)
    record_open(recorder, requests)
    schedule = schedule_of(requests, rate=100, lags_s=[0.0005] * 100)
    for i in range(100):
        schedule.record_loop_delay(0.004 if i % 5 == 0 else 0.0005)
    text = render_load_table(open_results(recorder, end=T0 + 3.0, schedule=schedule))
    assert (
        "scheduler lag P99 0.5 ms (max 0.5 ms, bound 20 ms); event-loop delay P90 4.0 ms "
        "(max 4.0 ms, bound 2 ms); iterations due"
    ) in text
    assert "the generator's event loop lagged" in text


def test_the_summary_mentions_the_queue_only_when_iterations_queued() -> None:
    run = frozen_open_run()
    text = render_load_table(run)
    assert (
        "on average between their due time and their send (up to 7 iterations queued for a "
        "free user)"
    ) in text
    assert run.schedule is not None
    never_queued = run.model_copy(
        update={"schedule": run.schedule.model_copy(update={"max_queue": 0})}
    )
    text = render_load_table(never_queued)
    assert "on average between their due time and their send, and 2 were never sent" in text
    assert "free user" not in text


def test_the_summary_says_whose_wait_time_an_open_run_ignored() -> None:
    run = frozen_open_run()
    config = {**run.config, "wait_time_ignored": ["LoginUser", "Browse"]}
    text = render_load_table(run.model_copy(update={"config": config}))
    assert "wait_time ignored: LoginUser, Browse (in an open run the timetable decides" in text
    assert "wait_time" not in render_load_table(run)


def test_a_run_whose_requests_never_waited_prints_one_time() -> None:
    requests = [Request(due=0.01 * i, sent=0.01 * i, end=0.01 * i + 0.002) for i in range(100)]
    recorder = LatencyRecorder(start=T0)
    record_open(recorder, requests)
    results = open_results(
        recorder, end=T0 + 1.0, schedule=schedule_of(requests, rate=100, lags_s=[])
    )
    text = render_load_table(results)
    assert "service time" not in text and "svc P95" not in text
    assert "open model: target 100.0/s" in text
    closed = render_load_table(crafted_load())
    assert "open model" not in closed and "stages" not in closed


def test_the_stage_table_shows_where_the_knee_is() -> None:
    text = render_load_table(frozen_open_run())
    lines = text.splitlines()
    header = next(line for line in lines if line.startswith("stage "))
    assert "target rate /s" in header and "not sent" in header and "svc P99 ms" in header
    warm = next(line for line in lines if line.startswith("warm "))
    second = next(line for line in lines if line.startswith("stage 2 "))
    assert "0–1" in warm and "100.0" in warm
    assert "1–3" in second and "922." in second  # the freeze shows in the stage it hit


def test_a_closed_run_with_stages_targets_users() -> None:
    recorder = LatencyRecorder(start=T0, stages=(Stage(1.0, 5), Stage(1.0, 10, "peak")))
    for i in range(20):
        recorder.record(endpoint=ENDPOINT, latency_s=0.01, end=T0 + 0.1 * i + 0.01)
    results = open_results(recorder, end=T0 + 2.0)
    assert results.stages is not None and [s.requests for s in results.stages] == [10, 10]
    text = render_load_table(results)
    assert "target users" in text and "peak " in text and "svc" not in text

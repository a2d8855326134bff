"""The recorder in an open-model run: response time from the due time, service time from the
send, not_sent iterations, per-stage figures and the timetable's own figures, exact and
mergeable."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from loadkit.exceptions import InputError
from loadkit.measure.kinds import NOT_SENT_ENDPOINT
from loadkit.measure.recorder import LatencyRecorder
from loadkit.measure.results import LatencySummary, LoadResults, parse_results
from loadkit.measure.schedule import ScheduleStats, mean_rate
from loadkit.measure.validity import LAG_P99_BOUND_MS, LOOP_DELAY_P90_BOUND_MS
from loadkit.measure.worker_share import SHARE_VERSION, WorkerShare
from loadkit.stages import Stage
from tests.loadkit.open_runs import (
    ENDPOINT,
    STAGES,
    T0,
    Request,
    freeze_timetable,
    nearest_rank,
    open_results,
    record_open,
    schedule_of,
)

# HDR, 3 significant digits: a reported percentile is at most one bucket (1/1024) + 1 µs above.
BUCKET_SHARE = 1 / 1024


def assert_hdr(reported_ms: float | None, true_s: float) -> None:
    """``reported_ms`` is the true value to HDR precision: never below, at most a bucket above."""
    assert reported_ms is not None
    true_ms = true_s * 1000
    assert true_ms - 0.001 <= reported_ms <= true_ms * (1 + BUCKET_SHARE) + 0.002, (
        reported_ms,
        true_ms,
    )


def test_response_and_service_times_are_exact_from_due_send_and_end() -> None:
    recorder = LatencyRecorder(start=T0)
    requests = [
        Request(due=0.10, sent=0.10, end=0.13),  # on time: 30 ms both
        Request(due=0.20, sent=0.45, end=0.47),  # waited 250 ms for a user: 270 / 20 ms
        Request(due=0.30, sent=0.47, end=0.52),  # 220 / 50 ms
    ]
    record_open(recorder, requests)
    results = open_results(recorder, end=T0 + 1.0)
    (endpoint,) = results.endpoints
    assert endpoint.latency_ms.min == 30.0 and endpoint.latency_ms.max == 270.0
    assert endpoint.latency_ms.mean == round((30 + 270 + 220) / 3, 3)
    assert endpoint.service_time_ms is not None and endpoint.service_histogram is not None
    assert endpoint.service_time_ms.min == 20.0 and endpoint.service_time_ms.max == 50.0
    assert endpoint.service_time_ms.mean == round((30 + 20 + 50) / 3, 3)
    assert results.service_time_ms == endpoint.service_time_ms
    assert results.latency_ms == endpoint.latency_ms  # the headline is the response time
    # The timeline shows response times too: second 0's P95 is the 270 ms one.
    assert_hdr(results.timeline[0].p95_ms, 0.27)


def test_a_closed_run_keeps_one_time_and_writes_no_service_fields() -> None:
    recorder = LatencyRecorder(start=T0)
    recorder.record(endpoint=ENDPOINT, latency_s=0.03, end=T0 + 0.5)
    results = open_results(recorder, end=T0 + 1.0)
    assert results.service_time_ms is None and results.endpoints[0].service_time_ms is None
    assert results.schedule is None and results.stages is None
    data = orjson.loads(results.model_dump_json(by_alias=True))
    for absent in ("service_time_ms", "service_histogram", "schedule", "stages"):
        assert absent not in data
    assert "service_time_ms" not in data["endpoints"][0]


def test_freeze_through_a_timetable_shows_in_response_time_not_service_time() -> None:
    # Due every 10 ms for 3 s, one user, 2 ms answers, nothing completes from 1 s to 2 s. The
    # request due at 1.00 s is sent at once and answered at 2.002 s; the next 124 wait for the
    # user: the k-th is due at 1.00 + 0.01k and answered at 2.002 + 0.002k, a response time of
    # 1.002 - 0.008k s and a service time of 2 ms. So the n-th slowest response is
    # 1.002 - 0.008 (n - 1): P99 (rank 297 of 300, the 4th slowest) 0.978 s, P95 (rank 285,
    # the 16th slowest) 0.882 s; service time is 2 ms but for the one request sent into the
    # freeze.
    requests = freeze_timetable()
    assert len(requests) == 300
    recorder = LatencyRecorder(start=T0)
    record_open(recorder, requests)
    results = open_results(recorder, end=T0 + 3.0)
    latency, service = results.latency_ms, results.service_time_ms
    assert service is not None
    assert latency.p99 == pytest.approx(978.0, rel=0.05)
    assert latency.p95 == pytest.approx(882.0, rel=0.05)
    responses = [r.response_s for r in requests]
    assert_hdr(latency.p95, nearest_rank(responses, 95))
    assert_hdr(latency.p99, nearest_rank(responses, 99))
    assert_hdr(latency.max, 1.002)
    assert_hdr(service.p99, 0.002)
    assert_hdr(service.max, 1.002)
    # The freeze is a stall from the send of the one request in flight through it.
    stall = results.longest_stall
    assert stall is not None
    assert stall.start_s == pytest.approx(1.0, abs=1e-6)
    assert stall.end_s == pytest.approx(2.002, abs=1e-6)
    # The timeline (response time) shows the backlog in second 2.
    assert results.timeline[2].p95_ms is not None and results.timeline[2].p95_ms > 800


def test_the_stall_tracker_judges_in_flight_from_the_send_not_the_due_time() -> None:
    recorder = LatencyRecorder(start=T0)
    recorder.record(endpoint=ENDPOINT, latency_s=0.01, end=T0 + 0.05, service_s=0.01)
    # Due at 0.06 s, waited in the generator until 0.995 s, answered 5 ms later: nothing was in
    # flight from 0.05 s to 0.995 s, so that quiet span is no stall.
    recorder.record(endpoint=ENDPOINT, latency_s=0.94, end=T0 + 1.0, service_s=0.005)
    assert open_results(recorder, end=T0 + 1.0).longest_stall is None
    closed = LatencyRecorder(start=T0)
    closed.record(endpoint=ENDPOINT, latency_s=0.01, end=T0 + 0.05)
    closed.record(endpoint=ENDPOINT, latency_s=0.94, end=T0 + 1.0)
    assert open_results(closed, end=T0 + 1.0).longest_stall is not None


def test_requests_without_a_service_time_of_their_own_count_theirs_as_service_time() -> None:
    recorder = LatencyRecorder(start=T0)
    recorder.record(endpoint=ENDPOINT, latency_s=0.004, end=T0 + 0.1)  # before any open request
    recorder.record(endpoint=ENDPOINT, latency_s=0.300, end=T0 + 0.4, service_s=0.010)
    recorder.record(endpoint=ENDPOINT, latency_s=0.006, end=T0 + 0.5)  # an on_start request
    # A due time stamped after the send (clock jitter) counts from the send.
    recorder.record(endpoint=ENDPOINT, latency_s=0.001, end=T0 + 0.6, service_s=0.002)
    results = open_results(recorder, end=T0 + 1.0)
    service = results.endpoints[0].service_time_ms
    assert service is not None and service.count == 4
    assert (service.min, service.max) == (2.0, 10.0)
    assert service.mean == round((4 + 10 + 6 + 2) / 4, 3)
    assert results.latency_ms.min == 2.0 and results.latency_ms.max == 300.0


def test_not_sent_iterations_are_errors_on_their_pseudo_endpoint_with_their_wait() -> None:
    recorder = LatencyRecorder(start=T0)
    requests = [Request(due=0.1 * i, sent=0.1 * i, end=0.1 * i + 0.01) for i in range(8)]
    record_open(recorder, requests)
    recorder.record_not_sent(count=2, due=[T0 + 1.5, T0 + 1.9], end=T0 + 2.0)
    results = open_results(
        recorder, end=T0 + 2.0, schedule=schedule_of(requests, rate=10, lags_s=[], not_sent=2)
    )
    assert (results.totals.requests, results.totals.errors) == (10, 2)
    assert results.totals.error_rate == 0.2
    names = {e.name: e for e in results.endpoints}
    unsent = names[NOT_SENT_ENDPOINT]
    assert (unsent.requests, unsent.errors, unsent.service_time_ms) == (2, 2, None)
    # Their response time is their wait from the due time to the end: a lower bound.
    assert (unsent.latency_ms.min, unsent.latency_ms.max) == (100.0, 500.0)
    assert results.latency_ms.count == 10 and results.latency_ms.max == 500.0
    assert results.service_time_ms is not None and results.service_time_ms.count == 8
    (group,) = results.errors
    assert (group.endpoint, group.kind, group.count) == (NOT_SENT_ENDPOINT, "not_sent", 2)
    assert group.status_codes == {"none": 2}
    assert sum(p.completions for p in results.timeline) == 8  # never sent: no completion
    assert results.schedule is not None and results.schedule.not_sent == 2
    assert results.not_sent == 2


def test_not_sent_without_due_times_waits_zero_and_bad_counts_are_refused() -> None:
    recorder = LatencyRecorder(start=T0)
    recorder.record_not_sent(count=3, due=None, end=T0 + 1.0)
    recorder.record_not_sent(count=0, due=None, end=T0 + 1.0)
    assert recorder.requests == recorder.errors == recorder.not_sent == 3
    assert recorder.overall_histogram().max_us == 0.0
    with pytest.raises(ValueError, match="2 due times given for 3"):
        recorder.record_not_sent(count=3, due=[T0, T0], end=T0 + 1.0)
    with pytest.raises(ValueError, match="negative"):
        recorder.record_not_sent(count=-1, due=None, end=T0 + 1.0)


def test_stage_summaries_are_exact_by_the_time_each_response_time_began() -> None:
    # Stage "warm" (0-1 s): due every 100 ms, answered in 20 ms. Stage 2 (1-3 s): due every
    # 50 ms, sent 30 ms late and answered in 40 ms (response 70 ms), every 5th a timeout; the
    # last one completes after the stages ended (it stays in stage 2, where it was due); two
    # iterations due in stage 2 are never sent.
    recorder = LatencyRecorder(start=T0, stages=STAGES)
    warm = [Request(due=0.1 * i, sent=0.1 * i, end=0.1 * i + 0.02) for i in range(10)]
    busy = [Request(due=1 + 0.05 * i, sent=1.03 + 0.05 * i, end=1.07 + 0.05 * i) for i in range(40)]
    busy.append(Request(due=2.99, sent=2.995, end=3.2))
    record_open(recorder, warm)
    for index, request in enumerate(busy):
        recorder.record(
            endpoint=ENDPOINT,
            latency_s=request.response_s,
            end=T0 + request.end,
            service_s=request.service_s,
            error_kind="timeout" if index % 5 == 0 else None,
        )
    recorder.record_not_sent(count=2, due=[T0 + 2.9, T0 + 2.95], end=T0 + 3.0)
    schedule = schedule_of(warm + busy, rate=mean_rate(STAGES), lags_s=[], not_sent=2)
    results = open_results(recorder, end=T0 + 3.2, schedule=schedule)
    assert results.stages is not None
    first, second = results.stages
    assert (first.index, first.name, first.label(), first.start_s, first.end_s) == (
        1,
        "warm",
        "warm",
        0.0,
        1.0,
    )
    assert (second.index, second.label(), second.start_s, second.end_s) == (2, "stage 2", 1.0, 3.0)
    assert (first.requests, first.errors, first.rps) == (10, 0, 10.0)
    assert (second.requests, second.errors, second.not_sent) == (43, 9 + 2, 2)
    assert second.rps == 43 / 2 and second.error_rate == 11 / 43
    assert first.latency_ms.p99 == 20.0 and first.service_time_ms is not None
    responses = [r.response_s for r in busy] + [0.1, 0.05]  # the waits of the two not sent
    for percentile, figure in ((50, "p50"), (95, "p95"), (99, "p99")):
        assert_hdr(getattr(second.latency_ms, figure), nearest_rank(responses, percentile))
    services = [r.service_s for r in busy]
    assert second.service_time_ms is not None and second.service_time_ms.count == 41
    assert_hdr(second.service_time_ms.p95, nearest_rank(services, 95))
    assert second.service_time_ms.max == 205.0


def test_mean_rate_of_ramped_stages() -> None:
    stages = (Stage(duration_s=10, target=100), Stage(duration_s=10, target=100))
    assert mean_rate(stages) == 75.0  # 0 → 100 over 10 s (500), then 100 for 10 s (1000)


def _through_the_wire(share: WorkerShare) -> WorkerShare:
    return WorkerShare.from_wire(orjson.loads(orjson.dumps(share.to_wire())))


def _comparable(results: LoadResults) -> dict[str, Any]:
    data = results.model_dump(mode="json", by_alias=True)
    # Where stalls are, and the timeline's split into shares, depend on which process saw what.
    for key in ("longest_stall", "timeline", "duration_s"):
        data.pop(key)
    for group in data["errors"]:
        group.pop("trace_ids")
    return data


def test_worker_shares_merge_to_what_one_recorder_records() -> None:
    requests = freeze_timetable(users=3)
    not_sent_due = [T0 + 2.97, T0 + 2.98, T0 + 2.99]
    lags = [0.0001 * (i % 17) for i in range(len(requests))]

    single = LatencyRecorder(start=T0, stages=STAGES)
    record_open(single, requests, errors_every=7)
    single.record_not_sent(count=3, due=not_sent_due, end=T0 + 3.0)
    whole = schedule_of(requests, rate=100, lags_s=lags, not_sent=3)
    whole.max_in_flight = 6
    loop_delays = [0.0003 * k for k in range(10)]
    for delay in loop_delays:
        whole.record_loop_delay(delay)
    expected = open_results(single, end=T0 + 3.1, schedule=whole)

    master = LatencyRecorder(start=T0, source="master", stages=STAGES)
    for worker_index in range(2):
        worker = LatencyRecorder(start=T0, source=f"w{worker_index}", stages=STAGES)
        mine = requests[worker_index::2]
        stats = ScheduleStats(target_rate=50.0, duration_s=whole.duration_s, max_in_flight=3)
        stats.max_queue = 7 if worker_index else 3
        stats.drain_s = 0.25
        for delay in loop_delays[worker_index::2]:
            stats.record_loop_delay(delay)
        worker.set_schedule(stats)
        next_report = 0.5
        for index, request in enumerate(requests):
            if index % 2 != worker_index:
                continue
            while request.end >= next_report:
                master.merge_share(_through_the_wire(worker.drain_share()))
                next_report += 0.5
            stats.iterations_due += 1
            stats.iterations_dispatched += 1
            stats.record_lag(lags[index])
            record_open(worker, [request], errors_every=7 if index % 7 == 0 else 0)
        assert len(mine) == stats.iterations_dispatched
        if worker_index == 1:
            stats.iterations_due += 3
            worker.record_not_sent(count=3, due=not_sent_due, end=T0 + 3.0)
        worker.finish(end=T0 + 3.1)
        master.merge_share(_through_the_wire(worker.drain_share()))
    merged = open_results(master, end=T0 + 3.1)
    assert _comparable(merged) == _comparable(expected)
    assert merged.schedule is not None and merged.schedule.target_rate == 100.0
    assert merged.schedule.max_in_flight == 6 and merged.schedule.max_queue == 7
    assert merged.schedule.loop_delay_ms is not None
    assert merged.schedule.loop_delay_ms.count == 10


def test_a_share_of_another_version_or_other_stages_is_refused() -> None:
    worker = LatencyRecorder(start=T0, source="w", stages=STAGES)
    worker.record(endpoint=ENDPOINT, latency_s=0.1, end=T0 + 2.5)
    data = worker.drain_share().to_wire()
    with pytest.raises(InputError, match=f"reads version {SHARE_VERSION}"):
        WorkerShare.from_wire({**data, "version": SHARE_VERSION - 1})
    with pytest.raises(InputError, match="no stages"):
        LatencyRecorder(start=T0).merge_share(WorkerShare.from_wire(data))
    one_stage = LatencyRecorder(start=T0, stages=STAGES[:1])
    with pytest.raises(InputError, match="stage 2 but this run has 1"):
        one_stage.merge_share(WorkerShare.from_wire(data))


def _lagging_results(lag_s: float) -> LoadResults:
    requests = [Request(due=0.01 * i, sent=0.01 * i, end=0.01 * i + 0.002) for i in range(200)]
    recorder = LatencyRecorder(start=T0)
    record_open(recorder, requests)
    # 3 % of dispatches late by lag_s: the P99 is lag_s.
    lags = [lag_s if i % 33 == 0 else 0.0002 for i in range(200)]
    return open_results(
        recorder, end=T0 + 2.0, schedule=schedule_of(requests, rate=100, lags_s=lags)
    )


def test_a_generator_that_did_not_keep_its_timetable_makes_the_run_invalid() -> None:
    kept = _lagging_results(0.009)
    assert kept.valid, kept.invalid_reasons
    assert kept.schedule is not None and kept.schedule.lag_bound_ms == LAG_P99_BOUND_MS
    missed = _lagging_results(0.025)
    assert not missed.valid
    (reason,) = missed.invalid_reasons
    assert reason.code == "generator_overloaded"
    assert "timetable was not kept" in reason.detail and "25 ms" in reason.detail
    # Read back without the reason, the file gets it again: the lag is the fact.
    data = missed.model_dump(mode="json", by_alias=True)
    data["invalid_reasons"] = []
    assert not parse_results(data, source="f").valid


def _loop_delayed_results(delays_s: list[float]) -> LoadResults:
    """A run whose timetable was kept (no lag) while its event loop woke its probe late by
    ``delays_s``: every user busy, so the lag never saw the generator's own delay."""
    requests = [Request(due=0.01 * i, sent=0.01 * i, end=0.01 * i + 0.002) for i in range(200)]
    recorder = LatencyRecorder(start=T0)
    record_open(recorder, requests)
    stats = schedule_of(requests, rate=100, lags_s=[0.0002] * 200)
    for delay in delays_s:
        stats.record_loop_delay(delay)
    return open_results(recorder, end=T0 + 2.0, schedule=stats)


def test_a_generator_whose_event_loop_lagged_makes_the_run_invalid() -> None:
    # Healthy: 2 late wake-ups in 200 (a collection, a preemption) and the rest on time.
    healthy = _loop_delayed_results([0.030, 0.030] + [0.0005] * 198)
    assert healthy.valid, healthy.invalid_reasons
    schedule = healthy.schedule
    assert schedule is not None and schedule.loop_delay_bound_ms == LOOP_DELAY_P90_BOUND_MS
    assert schedule.loop_delay_ms is not None and schedule.loop_delay_over_bound == 2
    # Saturated: one wake-up in 5 late by 4 ms, while the lag stayed at 0.2 ms.
    saturated = _loop_delayed_results([0.004 if i % 5 == 0 else 0.0005 for i in range(200)])
    assert saturated.schedule is not None and not saturated.schedule.lag_exceeded
    (reason,) = saturated.invalid_reasons
    assert reason.code == "generator_overloaded"
    assert "event loop lagged" in reason.detail and "P90" in reason.detail
    # Read back without the reason, the file gets it again; a file cannot loosen the bound.
    data = saturated.model_dump(mode="json", by_alias=True)
    data["invalid_reasons"] = []
    data["schedule"]["loop_delay_bound_ms"] = 50.0
    assert not parse_results(data, source="f").valid
    # A file written before the probe has none of its fields, and stays as it was.
    older = healthy.model_dump(mode="json", by_alias=True)
    for name in ("loop_delay_ms", "loop_delay_histogram", "loop_delay_bound_ms"):
        del older["schedule"][name]
    del older["schedule"]["loop_delay_over_bound"]
    assert parse_results(older, source="f").valid


def test_a_run_without_loop_delays_writes_no_loop_fields() -> None:
    run = _loop_delayed_results([])
    assert run.schedule is not None
    written = run.model_dump(mode="json", by_alias=True)["schedule"]
    assert not any(name.startswith("loop_delay") for name in written)


def _short_run(late: int) -> LoadResults:
    """75 iterations (the P99 is the max), ``late`` of them dispatched 68 ms late."""
    requests = [Request(due=0.02 * i, sent=0.02 * i, end=0.02 * i + 0.002) for i in range(75)]
    recorder = LatencyRecorder(start=T0)
    record_open(recorder, requests)
    lags = [0.068 if i < late else 0.0002 for i in range(75)]
    return open_results(
        recorder, end=T0 + 1.5, schedule=schedule_of(requests, rate=50, lags_s=lags)
    )


def test_one_or_two_late_wake_ups_do_not_void_a_short_run_three_do() -> None:
    for late in (1, 2):
        results = _short_run(late)
        schedule = results.schedule
        assert schedule is not None and schedule.lag_ms.p99 is not None
        assert schedule.lag_ms.p99 > LAG_P99_BOUND_MS  # the P99 alone would have voided it
        assert schedule.lag_over_bound == late
        assert results.valid, (late, results.invalid_reasons)
    voided = _short_run(3)
    assert not voided.valid
    assert [r.code for r in voided.invalid_reasons] == ["generator_overloaded"]


def test_schedule_figures_reach_the_results() -> None:
    requests = freeze_timetable()
    recorder = LatencyRecorder(start=T0)
    record_open(recorder, requests)
    recorder.record_not_sent(count=1, due=[T0 + 2.995], end=T0 + 3.0)
    stats = schedule_of(requests, rate=100, lags_s=[0.001, 0.002, 0.003], not_sent=1)
    schedule = open_results(recorder, end=T0 + 3.0, schedule=stats).schedule
    assert schedule is not None
    assert (schedule.iterations_due, schedule.iterations_dispatched, schedule.not_sent) == (
        301,
        300,
        1,
    )
    assert schedule.duration_s == 3.0 and schedule.achieved_rate == 100.0
    assert schedule.lag_ms == LatencySummary(
        count=3, min=1.0, mean=2.0, p50=2.0, p90=3.0, p95=3.0, p99=3.0, p999=3.0, max=3.0
    )
    assert (schedule.max_queue, schedule.drain_s, schedule.max_in_flight) == (7, 0.25, 1)

"""Each second's service times in an open-model run (the timeline's ``service_histogram``): exact
against the values recorded, whatever the mix of requests with and without a service time of
their own, merged exactly across shares, absent in closed runs, validated when read."""

from __future__ import annotations

import copy
import random
from typing import Any

import orjson
import pytest

from loadkit.exceptions import InputError
from loadkit.measure.histogram import LatencyHistogram
from loadkit.measure.recorder import LatencyRecorder
from loadkit.measure.results import EncodedHistogram, LoadResults, TimelinePoint, parse_results
from loadkit.measure.worker_share import WorkerShare
from loadkit.report.timeline_figures import second_figures
from tests.loadkit.open_runs import (
    T0,
    Request,
    freeze_timetable,
    nearest_rank,
    open_results,
    record_open,
    schedule_of,
)
from tests.loadkit.report_runs import synthetic_run
from tests.loadkit.test_open_recorder import assert_hdr


def _decoded(encoded: EncodedHistogram | None) -> LatencyHistogram:
    assert encoded is not None
    return LatencyHistogram.decode(encoded)


def _service_by_second(results: LoadResults) -> dict[int, tuple[Any, ...]]:
    """Each second's service figures, all that the histogram knows exactly or to a bucket."""
    figures = {}
    for point in results.timeline:
        if point.service_histogram is None:
            continue
        histogram = _decoded(point.service_histogram)
        figures[point.t_s] = (
            histogram.count,
            histogram.min_us,
            histogram.max_us,
            histogram.sum_us,
            histogram.percentiles_us(),
        )
    return figures


def test_each_seconds_service_percentiles_are_the_values_recorded_in_it() -> None:
    # Due every 10 ms, 2 ms answers, nothing completes from 1 s to 2 s: the requests held by the
    # freeze complete at 2.002 s with service times up to a second, into second 2.
    requests = freeze_timetable()
    recorder = LatencyRecorder(start=T0)
    record_open(recorder, requests)
    results = open_results(
        recorder, end=T0 + 3.0, schedule=schedule_of(requests, rate=100, lags_s=[])
    )
    by_second: dict[int, list[float]] = {}
    for request in requests:
        by_second.setdefault(int(request.end), []).append(request.service_s)
    figures = {s.t_s: s for s in second_figures(results.timeline)}
    for t, values in by_second.items():
        point = results.timeline[t]
        assert point.service_histogram is not None
        assert point.service_histogram.count == point.completions == len(values)
        assert point.service_histogram.max_us == pytest.approx(max(values) * 1e6)
        assert point.service_histogram.min_us == pytest.approx(min(values) * 1e6)
        for percentile, shown in (
            (50.0, figures[t].service_p50_ms),
            (95.0, figures[t].service_p95_ms),
            (99.0, figures[t].service_p99_ms),
        ):
            assert_hdr(shown, nearest_rank(values, percentile))
    # Second 2 holds the requests the freeze held: the one in flight has a second's service
    # time, the ones queued behind it waited (response time) but were served in 2 ms.
    assert figures[2].p99_ms is not None and figures[2].p99_ms > 900
    assert figures[2].service_p99_ms == pytest.approx(2.0, abs=0.01)
    assert figures[2].service_max_ms == pytest.approx(1002.0, abs=0.01)
    assert figures[0].service_p99_ms == pytest.approx(2.0, abs=0.01) == figures[0].p99_ms
    assert results.timeline[1].completions == 0 and results.timeline[1].service_histogram is None


def _mixed_run(recorder: LatencyRecorder, indices: range, *, only: int | None = None) -> None:
    """An open run as the Locust plugin records one: an iteration's first request timed from its
    due time (a service time of its own; none before 1.9 s), its later requests not (service =
    response), one of their endpoints never timed at all (the closed model's path). ``only``:
    every other request, from ``only`` (one of two workers)."""
    for index in indices:
        rng = random.Random(index)
        end = T0 + index * 0.004 + 0.003
        service = rng.uniform(0.001, 0.02)
        wait = rng.uniform(0.0, 0.05) if index % 7 else 0.0
        kind = "timeout" if index % 11 == 0 else None
        if only is not None and index % 2 != only:
            continue
        endpoint = "GET /items" if index % 3 == 2 else "POST /login"
        if index % 3 == 0 and index >= 475:
            recorder.record(
                endpoint=endpoint,
                latency_s=service + wait,
                service_s=service,
                end=end,
                error_kind=kind,
            )
        else:
            recorder.record(endpoint=endpoint, latency_s=service, end=end, error_kind=kind)


def test_requests_without_a_service_time_of_their_own_count_their_response_time() -> None:
    recorder = LatencyRecorder(start=T0)
    _mixed_run(recorder, range(900))
    results = open_results(recorder, end=T0 + 4.0)
    total = LatencyHistogram()
    for point in results.timeline:
        # Every completion of the second, the closed-path endpoint's included; second 0, with
        # no service time of its own, has its response times.
        assert point.service_histogram is not None
        assert point.service_histogram.count == point.completions
        total.add(_decoded(point.service_histogram))
    assert results.timeline[0].service_histogram == results.timeline[0].histogram
    assert results.timeline[1].service_histogram != results.timeline[1].histogram
    # The seconds add up to the run's service times, exactly.
    assert total.summary() == results.service_time_ms
    assert total.encode() == results.service_histogram


def _through_the_wire(share: WorkerShare) -> WorkerShare:
    return WorkerShare.from_wire(orjson.loads(orjson.dumps(share.to_wire())))


def test_shares_merge_into_what_one_recorder_records() -> None:
    whole = LatencyRecorder(start=T0)
    _mixed_run(whole, range(900))
    master = LatencyRecorder(start=T0, source="master")
    for n in (0, 1):
        worker = LatencyRecorder(start=T0, source=f"w{n}")
        # A report mid-second (at 1.8 s): second 1 arrives in two parts from each worker, the
        # first before any request of it had a service time of its own.
        _mixed_run(worker, range(450), only=n)
        master.merge_share(_through_the_wire(worker.drain_share()))
        _mixed_run(worker, range(450, 900), only=n)
        worker.finish(end=T0 + 4.0)
        master.merge_share(_through_the_wire(worker.drain_share()))
    expected = open_results(whole, end=T0 + 4.0)
    merged = open_results(master, end=T0 + 4.0)
    assert _service_by_second(merged) == _service_by_second(expected)
    assert len(_service_by_second(expected)) == 4
    assert [p.histogram for p in merged.timeline] == [p.histogram for p in expected.timeline]


def test_a_closed_run_has_no_service_histogram_per_second() -> None:
    results = synthetic_run(duration_s=3, rate=50)
    data = orjson.loads(results.model_dump_json(by_alias=True))
    assert data["timeline"] and all("service_histogram" not in p for p in data["timeline"])
    assert all(s.service_p95_ms is None for s in second_figures(results.timeline))


@pytest.fixture(scope="module")
def open_dict() -> dict[str, Any]:
    recorder = LatencyRecorder(start=T0)
    waited = Request(due=0.10, sent=0.30, end=0.32)  # 220 ms response, 20 ms service
    record_open(recorder, [Request(0.2, 0.2, 0.25), waited, Request(2.1, 2.1, 2.13)])
    data: dict[str, Any] = orjson.loads(
        open_results(recorder, end=T0 + 3.0).model_dump_json(by_alias=True)
    )
    return data


def test_a_service_histogram_that_disagrees_is_refused_naming_the_second(
    open_dict: dict[str, Any],
) -> None:
    point = open_dict["timeline"][0]
    other = open_dict["timeline"][2]
    # A count other than the second's completions.
    wrong = copy.deepcopy(open_dict)
    wrong["timeline"][0]["service_histogram"] = other["service_histogram"]
    with pytest.raises(
        InputError, match=r"second 0: service_histogram count \(\d+\) != completions"
    ):
        parse_results(wrong, source="f.json")
    # Service times above the response times (swapped).
    swapped = copy.deepcopy(open_dict)
    swapped["timeline"][0]["service_histogram"] = point["histogram"]
    swapped["timeline"][0]["histogram"] = point["service_histogram"]
    with pytest.raises(
        InputError, match=r"second 0: service_histogram.min_us \(50000\) is above histogram.min_us"
    ):
        parse_results(swapped, source="f.json")
    # In a run without service times.
    closed = copy.deepcopy(open_dict)
    closed.pop("service_time_ms")
    closed.pop("service_histogram")
    for endpoint in closed["endpoints"]:
        endpoint.pop("service_time_ms")
        endpoint.pop("service_histogram")
    with pytest.raises(
        InputError, match="timeline second 0 has a service_histogram but the run has none"
    ):
        parse_results(closed, source="f.json")
    assert TimelinePoint.model_validate(point).service_histogram is not None


def test_the_histogram_budget_counts_both_histograms(monkeypatch: pytest.MonkeyPatch) -> None:
    recorder = LatencyRecorder(start=T0)
    record_open(recorder, freeze_timetable())
    recorder.finish(end=T0 + 3.0)
    first = recorder.timeline()[0]
    assert first.histogram is not None and first.service_histogram is not None
    # Room for second 0's response histogram but not for its service one too: neither is kept.
    monkeypatch.setattr(
        "loadkit.measure.timeline.TIMELINE_HISTOGRAM_BUDGET_BYTES", len(first.histogram.data)
    )
    bounded = recorder.timeline()
    assert all(p.histogram is None and p.service_histogram is None for p in bounded)
    assert bounded[0].p95_ms == first.p95_ms

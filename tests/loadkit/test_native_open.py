"""The native engine's open model end to end, against truth servers run in a child process:
response time from the due time through a freeze, service time from the send, iterations never
sent, and the scheduler's own lag (the same truths as the Locust path's open-model tests)."""

from __future__ import annotations

import gc
import math
from pathlib import Path

import pytest

from loadkit.config import LoadProfile
from loadkit.engines.http_request import RequestSpec
from loadkit.measure.results import LoadResults, read_results
from loadkit.run.native import LAG_P99_BOUND_MS, run_native_load
from tests.loadkit.native_servers import scheduled_server_process

RATE = 100.0
DURATION_S = 3.0
FREEZE = (1.0, 2.0)


def run_open(url: str, tmp_path: Path, profile: LoadProfile) -> LoadResults:
    out = tmp_path / "load.json"
    # The run shares this process with pytest's heap, a long session's, which `loadkit load`
    # never has: a full collection of it can hold the event loop for a few hundred ms (CI saw
    # lag P99 289 ms, an invalid run). Frozen, collections during the run skip it.
    gc.collect()
    gc.freeze()
    try:
        results = run_native_load(
            request=RequestSpec(url=url), profile=profile, out=out, quiet=True
        )
    finally:
        gc.unfreeze()
    assert read_results(out) == results
    return results


def nearest_rank(values: list[float], percentile: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(percentile / 100 * len(ordered)) - 1)]


def expected_response_times_ms(count: int) -> list[float]:
    """Iteration i is due at i/R; the server holds what arrives in the freeze until its end."""
    start, end = FREEZE
    return [(end - i / RATE) * 1000.0 if start <= i / RATE < end else 0.0 for i in range(count)]


def test_a_freeze_is_measured_from_the_due_time(tmp_path: Path) -> None:
    # 150 in flight at most: every iteration due in the freeze is sent on time and held.
    with scheduled_server_process(freeze_from_s=FREEZE[0], freeze_to_s=FREEZE[1]) as url:
        results = run_open(
            url, tmp_path, LoadProfile(rate=RATE, duration_s=DURATION_S, max_in_flight=150)
        )
    assert results.valid, results.invalid_reasons
    assert results.config["model"] == "open" and results.config["rate"] == RATE
    assert results.config["max_in_flight"] == 150 and results.config["engine"] == "native"
    assert results.totals.errors == 0
    assert abs(results.totals.requests - RATE * DURATION_S) <= 2
    expected = expected_response_times_ms(results.totals.requests)
    for name in ("p95", "p99"):
        measured = getattr(results.latency_ms, name)
        truth = nearest_rank(expected, float(name[1:]))
        assert measured == pytest.approx(truth, rel=0.03), (name, measured, truth)
    schedule = results.schedule
    assert schedule is not None and schedule.not_sent == 0
    assert schedule.iterations_dispatched == results.totals.requests
    # The engine's own bound, tighter than the Locust path's, and kept.
    assert schedule.lag_bound_ms == LAG_P99_BOUND_MS
    assert schedule.lag_ms.p99 is not None and schedule.lag_ms.p99 < LAG_P99_BOUND_MS
    assert schedule.loop_delay_ms is not None
    stall = results.longest_stall
    assert stall is not None and stall.duration_s == pytest.approx(1.0, abs=0.1)


def test_queued_requests_keep_their_due_time_and_show_a_short_service_time(
    tmp_path: Path,
) -> None:
    # Ten in flight at most: the freeze holds ten and queues the rest, which are sent when it
    # ends (a short service time) yet were due all along (a long response time).
    with scheduled_server_process(freeze_from_s=FREEZE[0], freeze_to_s=FREEZE[1]) as url:
        results = run_open(
            url, tmp_path, LoadProfile(rate=RATE, duration_s=DURATION_S, max_in_flight=10)
        )
    service, response = results.service_time_ms, results.latency_ms
    assert service is not None and service.p95 is not None and response.p95 is not None
    assert service.p95 < 100.0 < response.p95
    expected = expected_response_times_ms(results.totals.requests)
    assert response.p95 == pytest.approx(nearest_rank(expected, 95), rel=0.05)
    schedule = results.schedule
    assert schedule is not None and schedule.max_queue >= 80 and schedule.max_in_flight == 10


def test_iterations_still_queued_at_the_end_are_not_sent_and_in_flight_ones_drained(
    tmp_path: Path,
) -> None:
    # Every request is held 0.8 s; 4 in flight at most; 50/s for 1 s: 50 due, 4 sent.
    with scheduled_server_process(hold_s=0.8) as url:
        results = run_open(url, tmp_path, LoadProfile(rate=50, duration_s=1.0, max_in_flight=4))
    not_sent = [g for g in results.errors if g.kind == "not_sent"]
    assert [g.endpoint for g in not_sent] == ["(not sent)"]
    schedule = results.schedule
    assert schedule is not None
    # Those sent in the first second (the first 4, then 4 more once they answered at 0.8 s)
    # were waited for after the stop (the drain) and recorded; the rest were never sent.
    assert schedule.iterations_dispatched == 8
    assert schedule.not_sent == not_sent[0].count == schedule.iterations_due - 8
    assert 40 <= schedule.iterations_due <= 51
    assert 0.4 <= schedule.drain_s <= 1.0
    assert results.totals.requests == schedule.iterations_due
    [sent] = [e for e in results.endpoints if e.name == "GET /"]
    assert sent.requests == 8 and sent.errors == 0


def test_stages_ramp_the_rate_and_are_reported_per_stage(tmp_path: Path) -> None:
    from loadkit.config import StageConfig

    with scheduled_server_process() as url:
        stages = (StageConfig(duration_s=1.0, target=50), StageConfig(duration_s=1.0, target=150))
        results = run_open(url, tmp_path, LoadProfile(rate=50, stages=stages))
    assert results.valid, results.invalid_reasons
    # 50 in the first second, then a ramp from 50 to 150: 100 more.
    assert abs(results.totals.requests - 150) <= 2
    assert results.stages is not None and len(results.stages) == 2
    assert abs(results.stages[0].requests - 50) <= 2

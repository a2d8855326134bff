"""The measurement core against exact figures computed from the raw values."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from fractions import Fraction

import orjson
import pytest
from hdrh.histogram import HdrHistogram

from loadkit.exceptions import InputError
from loadkit.measure.error_groups import TRACE_ID_SAMPLE
from loadkit.measure.histogram import (
    HIGHEST_US,
    LOWEST_US,
    PERCENTILES,
    RAW_LIMIT,
    SIGNIFICANT_DIGITS,
    LatencyHistogram,
)
from loadkit.measure.recorder import LatencyRecorder
from loadkit.measure.results import EncodedHistogram
from loadkit.measure.stalls import STALL_FLOOR_S
from loadkit.measure.worker_share import WorkerShare

# HDR with 3 significant digits keeps 2048 sub-buckets: a bucket is at most 1/1024 of its value
# wide. Values are rounded up to whole µs before bucketing: one more µs.
BUCKET_SHARE = 1 / 1024


def exact_percentile(values: list[float], percentile: float) -> float:
    """Nearest rank: the smallest value with at least ``percentile`` % of values at or below."""
    ordered = sorted(values)
    rank = max(math.ceil(Fraction(str(percentile)) * len(ordered) / 100), 1)
    return ordered[rank - 1]


def histogram_of(values_us: list[float]) -> LatencyHistogram:
    histogram = LatencyHistogram()
    for value in values_us:
        histogram.record_us(value)
    return histogram


def assert_within_hdr_precision(values_us: list[float], histogram: LatencyHistogram) -> None:
    reported = histogram.percentiles_us()
    for percentile in PERCENTILES:
        true = exact_percentile(values_us, percentile)
        got = reported[percentile]
        assert got >= true, f"P{percentile}: {got} below the true {true}"
        assert got <= true * (1 + BUCKET_SHARE) + 1, f"P{percentile}: {got} vs true {true}"
        assert got <= max(values_us), f"P{percentile}: {got} above max {max(values_us)}"


def _lognormal(rng: random.Random, n: int) -> list[float]:
    return [rng.lognormvariate(9, 1.5) for _ in range(n)]


def _bimodal(rng: random.Random, n: int) -> list[float]:
    return [
        rng.gauss(2_000, 200) if rng.random() < 0.9 else rng.gauss(900_000, 50_000)
        for _ in range(n)
    ]


def _uniform(rng: random.Random, n: int) -> list[float]:
    return [rng.uniform(1, 5_000_000) for _ in range(n)]


@pytest.mark.parametrize("make", [_lognormal, _bimodal, _uniform])
@pytest.mark.parametrize("n", [1, 7, 11, 101, 1000, 20_000])
def test_percentiles_match_exact_values_on_random_data(
    make: Callable[[random.Random, int], list[float]], n: int
) -> None:
    rng = random.Random(n * 31 + len(make.__name__))
    values = [max(v, 1.0) for v in make(rng, n)]
    assert_within_hdr_precision(values, histogram_of(values))


@pytest.mark.parametrize(
    "values",
    [
        # 10 fast, 1 slow: nearest-rank P95 is the slow one (hdrh's half-up rank says fast).
        [1_000.0] * 10 + [1_000_000.0],
        # The gate's edge: a true P95 of 1.04 s must not be reported at 1.0 s.
        [900_000.0] * 94 + [1_040_000.0] * 6,
        # All equal: every percentile is that value, never above it.
        [123_456.789] * 1000,
        # Bucket edges and powers of two, where off-by-one bucketing shows.
        [float(2**k) for k in range(0, 25)] + [float(2**k - 1) for k in range(1, 25)],
        # One enormous outlier over many tiny values: P99 must stay below max.
        [3.0] * 999 + [59_999_999.0],
        # Sub-microsecond fractions.
        [1.2, 1.7, 2.5, 999.999, 1000.001],
    ],
    ids=["11-values", "gate-edge", "constant", "bucket-edges", "outlier", "fractions"],
)
def test_percentiles_on_adversarial_data(values: list[float]) -> None:
    assert_within_hdr_precision(values, histogram_of(values))


def test_summary_is_exact_where_it_can_be() -> None:
    values = [1_500.25, 2_000.5, 250_000.0, 999.0]
    summary = histogram_of(values).summary()
    assert summary.count == 4
    assert summary.min == 0.999
    assert summary.max == 250.0
    assert summary.mean == round(sum(values) / 4 / 1000, 3)
    assert summary.p50 is not None and summary.p99 is not None and summary.max is not None
    assert summary.p50 <= summary.p99 <= summary.max


def test_out_of_range_values_are_clamped_and_counted_never_dropped() -> None:
    histogram = histogram_of([0.0, -5.0, 0.4, 500.0, 61_000_000.0, 3_600_000_000.0])
    assert histogram.count == 6
    # 0.4 µs rounds up to 1 µs (the resolution) and is in range; 0 and below are not.
    assert histogram.clamped == 4
    assert histogram.max_us == 3_600_000_000.0  # exact max kept beside the histogram
    summary = histogram.summary()
    assert summary.p99 is not None and summary.max is not None
    assert summary.p99 <= summary.max
    assert histogram.percentiles_us()[99.0] >= HIGHEST_US  # clamped to the top, not lost


def test_buckets_are_hdrhs_own_over_the_whole_range_and_across_batches() -> None:
    # Values reach hdrh in bulk (batches of RAW_LIMIT, distinct values added by index): the
    # counts must be exactly what hdrh's record_value gives, in every bucket and at both ends.
    rng = random.Random(11)
    values = [2 ** rng.uniform(-1.0, 26.0) for _ in range(3 * RAW_LIMIT + 17)]
    values += [0.0, -1.0, 2047.0, 2048.0, 2049.5, 65_536.0, HIGHEST_US - 0.5, 7e7]
    histogram = histogram_of(values)
    reference = HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)
    for value in values:
        reference.record_value(min(max(math.ceil(max(value, 0.0)), LOWEST_US), HIGHEST_US))
    decoded = HdrHistogram.decode(histogram.encode().data.encode("ascii"))
    assert list(decoded.counts) == list(reference.counts)
    outside = [v for v in values if not LOWEST_US <= math.ceil(max(v, 0.0)) <= HIGHEST_US]
    assert histogram.count == len(values) and histogram.clamped == len(outside) >= 3
    assert histogram.min_us == 0.0 and histogram.max_us == 7e7
    assert histogram.sum_us == sum(round(max(v, 0.0) * 1000.0) for v in values) / 1000.0


def test_empty_histogram_has_no_percentiles() -> None:
    assert LatencyHistogram().percentiles_us() == {}
    assert LatencyHistogram().summary().p95 is None


def test_encode_decode_round_trip_and_refusals() -> None:
    values = [float(v) for v in range(1, 5000, 7)]
    histogram = histogram_of(values)
    decoded = LatencyHistogram.decode(
        EncodedHistogram.model_validate(histogram.encode().model_dump())
    )
    assert decoded.summary() == histogram.summary()
    assert decoded.percentiles_us() == histogram.percentiles_us()

    other_layout = histogram.encode().model_copy(update={"significant_digits": 2})
    with pytest.raises(InputError, match="layout"):
        LatencyHistogram.decode(other_layout)
    corrupt = histogram.encode().model_copy(update={"data": "bm90IGEgaGlzdG9ncmFt"})
    with pytest.raises(InputError, match="cannot be decoded"):
        LatencyHistogram.decode(corrupt)
    lying = histogram.encode().model_copy(update={"count": 3})
    with pytest.raises(InputError, match="holds"):
        LatencyHistogram.decode(lying)


# --- recorder: merge ------------------------------------------------------------------------

ENDPOINTS = ("GET /health", "POST /api/auth/login", "GET /api/items/{item_id}")
KINDS = ("storage_lock_timeout", "timeout", "invalid_credentials")


def synthetic_run(seed: int, n: int = 3000) -> list[tuple[float, float, str, str | None, int]]:
    """Requests as (end, latency, endpoint, kind, status), sorted by end, with a freeze from
    t=3.0 to t=5.5 s that one slow request spans."""
    rng = random.Random(seed)
    requests = []
    for _ in range(n):
        sent = rng.uniform(0, 8)
        if 3.0 <= sent < 5.5:
            continue
        latency = rng.lognormvariate(-4, 1)
        failed = rng.random() < 0.1
        requests.append(
            (
                sent + latency,
                latency,
                rng.choice(ENDPOINTS),
                rng.choice(KINDS) if failed else None,
                503 if failed else 200,
            )
        )
    requests.append((5.5, 2.6, "POST /api/auth/login", "timeout", 0))  # sent at 2.9
    return sorted(requests)


def record_all(
    recorder: LatencyRecorder, requests: list[tuple[float, float, str, str | None, int]]
) -> None:
    for end, latency, endpoint, kind, status in requests:
        recorder.record(
            endpoint=endpoint,
            latency_s=latency,
            end=1000.0 + end,
            error_kind=kind,
            status=status or None,
            trace_id=f"trace-{kind}" if kind else None,
        )


def comparable(recorder: LatencyRecorder) -> dict[str, object]:
    errors = [
        g.model_dump(exclude={"example_trace_id", "example_message"})
        for g in recorder.error_groups()
    ]
    return {
        "totals": recorder.totals(),
        "overall": recorder.overall_histogram().summary(),
        "overall_data": recorder.overall_histogram().encode(),
        "endpoints": recorder.endpoint_results(),
        "errors": errors,
        "timeline": recorder.timeline(),
        "stall": recorder.longest_stall(),
    }


@pytest.mark.parametrize("shares", [2, 3, 5])
def test_merge_of_n_recorders_equals_one_recorder_of_all_values(shares: int) -> None:
    requests = synthetic_run(seed=shares)
    one = LatencyRecorder(start=1000.0)
    record_all(one, requests)
    one.finish(end=1009.0)

    merged = LatencyRecorder(start=1000.0, source="master")
    for index in range(shares):
        part = LatencyRecorder(start=1000.0, source=f"worker-{index}")
        record_all(part, requests[index::shares])
        part.finish(end=1009.0)
        # Shares travel as plain data (JSON here, msgpack in Locust's reports).
        merged.merge_share(
            WorkerShare.from_wire(orjson.loads(orjson.dumps(part.to_share().to_wire())))
        )
    merged.finish(end=1009.0)

    assert comparable(merged) == comparable(one)
    # The freeze: from the last completion before the slow request's end, to that end.
    last_before = max(end for end, *_ in requests if end < 5.5)
    stall = one.longest_stall()
    assert stall is not None
    assert stall.end_s == 5.5
    assert stall.start_s == pytest.approx(last_before, abs=1e-6)


def test_periodic_drained_shares_add_up_to_the_whole_run() -> None:
    requests = synthetic_run(seed=7)
    one = LatencyRecorder(start=1000.0)
    record_all(one, requests)
    one.finish(end=1009.0)

    master = LatencyRecorder(start=1000.0, source="master")
    workers = [LatencyRecorder(start=1000.0, source=f"w{i}") for i in range(2)]
    for index, worker in enumerate(workers):
        mine = requests[index::2]
        # Report every ~1 s of completions, as a worker does every few seconds.
        for second in range(10):
            record_all(worker, [r for r in mine if second <= r[0] < second + 1])
            master.merge_share(worker.drain_share())
        worker.finish(end=1009.0)
        master.merge_share(worker.drain_share())
    master.finish(end=1009.0)

    assert comparable(master) == comparable(one)


# --- recorder: timeline and stalls ----------------------------------------------------------


def test_timeline_has_every_second_with_counts_and_p95() -> None:
    recorder = LatencyRecorder(start=0.0)
    for i in range(10):
        recorder.record(endpoint="GET /x", latency_s=0.01 * (i + 1), end=0.1 * i)
    recorder.record(endpoint="GET /x", latency_s=0.5, end=2.5, error_kind="timeout")
    recorder.finish(end=3.2)
    timeline = recorder.timeline()
    assert [p.t_s for p in timeline] == [0, 1, 2, 3]
    assert [(p.completions, p.errors) for p in timeline] == [(10, 0), (0, 0), (1, 1), (0, 0)]
    assert timeline[0].p95_ms == pytest.approx(100.0, rel=BUCKET_SHARE)
    assert timeline[1].p95_ms is None


def test_stall_counts_a_slow_request_that_outlives_fast_ones() -> None:
    recorder = LatencyRecorder(start=0.0)
    recorder.record(endpoint="GET /x", latency_s=0.5, end=1.0)
    recorder.record(endpoint="GET /x", latency_s=0.5, end=2.0)
    recorder.record(endpoint="GET /x", latency_s=0.01, end=3.0)  # sent at 2.99, fast
    recorder.record(endpoint="GET /x", latency_s=9.5, end=9.5)  # pending since 0.0
    recorder.finish(end=10.0)
    stall = recorder.longest_stall()
    assert stall is not None
    # 3.0 -> 9.5 with the slow request pending; the fast completion at 3.0 ends the earlier span.
    assert (stall.start_s, stall.end_s, stall.duration_s) == (3.0, 9.5, 6.5)


def test_idle_time_is_not_a_stall() -> None:
    recorder = LatencyRecorder(start=0.0)
    recorder.record(endpoint="GET /x", latency_s=0.01, end=1.0)
    recorder.record(endpoint="GET /x", latency_s=0.01, end=5.0)  # nothing pending from 1 to 4.99
    recorder.finish(end=6.0)
    assert recorder.longest_stall() is None


def test_freeze_until_the_end_of_the_run_is_a_stall_when_requests_are_in_flight() -> None:
    recorder = LatencyRecorder(start=0.0)
    recorder.record(endpoint="GET /x", latency_s=0.01, end=1.0)
    recorder.finish(end=4.0, in_flight=3)
    stall = recorder.longest_stall()
    assert stall is not None and stall.duration_s == 3.0


def test_a_share_that_kept_completing_rules_out_a_merged_stall() -> None:
    frozen = LatencyRecorder(start=0.0, source="a")
    frozen.record(endpoint="GET /x", latency_s=5.0, end=5.0)
    frozen.finish(end=5.0)
    busy = LatencyRecorder(start=0.0, source="b")
    t = 0.0
    while t < 5.0:
        t += STALL_FLOOR_S / 2
        busy.record(endpoint="GET /x", latency_s=0.01, end=t)
    busy.finish(end=5.0)
    assert frozen.longest_stall() is not None
    merged = LatencyRecorder(start=0.0, source="master")
    merged.merge_share(frozen.to_share())
    merged.merge_share(busy.to_share())
    assert merged.longest_stall() is None


def test_share_of_another_version_is_refused() -> None:
    share = {**LatencyRecorder(start=0.0).to_share().to_wire(), "version": 99}
    with pytest.raises(InputError, match=r"version 99.*same loadkit"):
        WorkerShare.from_wire(share)
    old = {"version": 1, "gaps": {}, "source": "w"}  # the untyped share of earlier loadkits
    with pytest.raises(InputError, match="version 1"):
        WorkerShare.from_wire(old)


def test_a_malformed_share_is_refused_naming_the_field() -> None:
    share = LatencyRecorder(start=0.0).to_share().to_wire()
    del share["stalled"]
    with pytest.raises(InputError, match="stalled"):
        WorkerShare.from_wire(share)


def test_readers_do_not_change_the_recorder() -> None:
    """Reading the timeline or taking a share mid-second leaves later results as they were."""
    requests = synthetic_run(seed=3, n=400)
    read = LatencyRecorder(start=1000.0)
    untouched = LatencyRecorder(start=1000.0)
    for request in requests:
        for recorder in (read, untouched):
            record_all(recorder, [request])
        read.timeline()
        read.to_share()
        read.longest_stall()
        assert read.last_second == untouched.last_second
    for recorder in (read, untouched):
        recorder.finish(end=1009.0)
    assert comparable(read) == comparable(untouched)
    assert read.to_share() == untouched.to_share()


def test_timeline_and_share_include_the_open_second() -> None:
    recorder = LatencyRecorder(start=0.0, source="w")
    recorder.record(endpoint="GET /x", latency_s=0.01, end=0.5)
    recorder.record(endpoint="GET /x", latency_s=0.02, end=1.5, error_kind="timeout")
    assert [(p.t_s, p.completions, p.errors) for p in recorder.timeline()] == [
        (0, 1, 0),
        (1, 1, 1),
    ]
    assert [(s.t, s.completions) for s in recorder.to_share().seconds] == [(0, 1), (1, 1)]
    assert recorder.last_second is not None and recorder.last_second.t == 0


def test_a_stall_seen_only_after_a_drain_still_reaches_the_master() -> None:
    worker = LatencyRecorder(start=0.0, source="w")
    master = LatencyRecorder(start=0.0, source="master")
    worker.record(endpoint="GET /x", latency_s=0.01, end=1.0)
    worker.record(endpoint="GET /x", latency_s=0.01, end=3.0)
    master.merge_share(worker.drain_share())  # 1.0 -> 3.0 looks idle so far
    worker.record(endpoint="GET /x", latency_s=3.0, end=3.5)  # pending since 0.5
    worker.finish(end=3.5)
    master.merge_share(worker.drain_share())
    stall = master.longest_stall()
    assert stall is not None
    assert (stall.start_s, stall.end_s) == (1.0, 3.0)


def test_only_values_below_range_still_give_percentiles() -> None:
    histogram = histogram_of([0.0, 0.0, -1.0])
    assert histogram.clamped == 3
    assert histogram.percentiles_us()[50.0] == 0.0  # capped at the exact max, which is 0
    assert histogram.summary().p99 == 0.0


def test_error_groups_keep_a_bounded_sample_of_trace_ids_through_merges() -> None:
    """`loadkit errors --results` follows these ids into the service log: they must survive
    the worker → master merge, without growing with the run."""
    workers = [LatencyRecorder(start=1000.0, source=f"w{i}") for i in range(2)]
    for index, worker in enumerate(workers):
        for n in range(15):
            worker.record(
                endpoint="POST /api/auth/login",
                latency_s=0.01,
                end=1000.0 + n * 0.01,
                error_kind="storage_lock_timeout",
                status=503,
                trace_id=f"w{index}-{n}",
            )
    master = LatencyRecorder(start=1000.0, source="master")
    for worker in workers:
        master.merge_share(worker.drain_share())
    (group,) = master.error_groups()
    assert group.count == 30
    assert len(group.trace_ids) == TRACE_ID_SAMPLE
    assert group.trace_ids[:15] == [f"w0-{n}" for n in range(15)]
    assert set(group.trace_ids[15:]) <= {f"w1-{n}" for n in range(15)}
    assert group.example_trace_id == "w0-0"

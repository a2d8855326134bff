"""The stall tracker's span algebra: union, intersection, and the longest common stall."""

from __future__ import annotations

import random

import pytest

from loadkit.measure.stalls import (
    MAX_GAPS,
    STALL_FLOOR_S,
    Span,
    StallTracker,
    intersect,
    longest_common_stall,
    union,
)


def covered(spans: list[Span], at: float) -> bool:
    return any(start < at < end for start, end in spans)


def test_union_joins_overlaps_and_keeps_touching_spans_apart() -> None:
    assert union([(3.0, 4.0), (0.0, 1.0), (0.5, 2.0), (2.0, 2.5)]) == [
        (0.0, 2.0),
        (2.0, 2.5),  # touches at 2.0, a completion: a stall ends there
        (3.0, 4.0),
    ]
    assert union([(0.0, 5.0), (1.0, 2.0)]) == [(0.0, 5.0)]  # contained
    assert union([]) == []


def test_intersect_keeps_only_common_parts() -> None:
    a = [(0.0, 2.0), (3.0, 6.0)]
    b = [(1.0, 4.0), (5.0, 5.5), (7.0, 8.0)]
    assert intersect(a, b) == [(1.0, 2.0), (3.0, 4.0), (5.0, 5.5)]
    assert intersect(a, []) == []
    assert intersect([(0.0, 1.0)], [(1.0, 2.0)]) == []  # touching is no overlap


@pytest.mark.parametrize("seed", range(20))
def test_union_and_intersect_agree_with_pointwise_coverage(seed: int) -> None:
    rng = random.Random(seed)

    def spans() -> list[Span]:
        out = []
        for _ in range(rng.randrange(0, 8)):
            start = rng.randrange(0, 40) / 4
            out.append((start, start + rng.randrange(1, 12) / 4))
        return out

    a, b = spans(), spans()
    joined_a, joined_b = union(a), union(b)
    both = intersect(joined_a, joined_b)
    for at in (i / 8 + 1 / 16 for i in range(120)):  # between the quarter-second edges
        assert covered(joined_a, at) == covered(a, at)
        assert covered(both, at) == (covered(a, at) and covered(b, at))
    assert all(s < e for s, e in both)
    assert both == sorted(both)


def test_longest_common_stall_needs_every_source_quiet_and_one_in_flight() -> None:
    quiet = {"a": [(0.0, 10.0)], "b": [(2.0, 5.0), (6.0, 9.0)]}
    stalled = {"a": [(1.0, 8.0)]}
    assert longest_common_stall(quiet, stalled, ["a", "b"]) == (2.0, 5.0)
    # A source that recorded requests but never went quiet rules every stall out.
    assert longest_common_stall(quiet, stalled, ["a", "b", "c"]) is None
    assert longest_common_stall(quiet, {}, ["a", "b"]) is None


def test_tracker_marks_the_span_a_pending_request_reaches_back_into() -> None:
    tracker = StallTracker(start=0.0, source="w")
    tracker.note_completion(1.0, 0.01)
    tracker.note_completion(2.0, 0.01)  # quiet 1.0 -> 2.0, nothing pending yet
    assert tracker.longest_stall(run_start=0.0) is None
    tracker.note_completion(2.5, 2.0)  # sent at 0.5: pending across 1.0 -> 2.0
    stall = tracker.longest_stall(run_start=0.0)
    assert stall is not None and (stall.start_s, stall.end_s) == (1.0, 2.0)


def test_drain_keeps_recent_spans_and_the_last_completion() -> None:
    tracker = StallTracker(start=0.0, source="w")
    tracker.sources.add("w")
    tracker.note_completion(1.0, 0.01)
    tracker.note_completion(3.0, 0.01)
    tracker.drain()
    assert tracker.sources == set()
    assert tracker.last_completion == 3.0
    assert [q[:2] for q in tracker.quiet] == [[0.0, 1.0], [1.0, 3.0]]  # shipped again


def test_spans_below_the_floor_are_not_kept_and_memory_stays_bounded() -> None:
    tracker = StallTracker(start=0.0, source="w")
    t = 0.0
    for _ in range(MAX_GAPS + 10):
        t += STALL_FLOOR_S * 2
        tracker.note_completion(t, 0.001)
    tracker.note_completion(t + STALL_FLOOR_S / 2, 0.001)
    assert len(tracker.quiet) <= MAX_GAPS

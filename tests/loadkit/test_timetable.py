"""The open model's timetable: due times at a fixed rate, along ramps, split across workers."""

from __future__ import annotations

import math

import pytest

from loadkit.engines.timetable import (
    MAX_IN_FLIGHT_CAP,
    Timetable,
    default_max_in_flight,
    peak_rate,
)
from loadkit.stages import Stage


def test_iteration_i_is_due_at_i_over_r() -> None:
    table = Timetable(rate=40.0)
    assert [table.due_s(i) for i in range(4)] == [0.0, 0.025, 0.05, 0.075]
    assert table.due_s(400) == 10.0
    # Due at or before t: 0 .. floor(t R), the one due exactly at t included.
    assert table.due_count(0.0) == 1
    assert table.due_count(1.0) == 41
    assert table.due_count(1.0 - 1e-6) == 40


def test_workers_split_the_rate_exactly_and_interleave() -> None:
    rate, workers = 30.0, 3
    tables = [Timetable(rate=rate, worker_index=k, worker_count=workers) for k in range(workers)]
    # Worker k holds R/n, phase-offset by k/R.
    for k, table in enumerate(tables):
        assert table.due_s(0) == pytest.approx(k / rate, abs=1e-12)
        assert table.due_s(5) - table.due_s(4) == pytest.approx(workers / rate)  # type: ignore[operator]
    merged = sorted(t.due_s(j) for t in tables for j in range(100))  # type: ignore[type-var]
    single = Timetable(rate=rate)
    assert merged == pytest.approx([single.due_s(i) for i in range(300)], abs=1e-12)
    # Their due counts add up to the one timetable's at any time.
    for t in (0.0, 0.01, 0.5, 1.0, 3.3333):
        assert sum(table.due_count(t) for table in tables) == single.due_count(t)


def test_due_times_follow_a_linear_ramp_exactly() -> None:
    # The rate ramps from 0 to 10/s over 10 s: r(t) = t, so i iterations are due by t = sqrt(2i).
    table = Timetable(stages=[Stage(duration_s=10, target=10)])
    for i in (0, 1, 2, 8, 18, 49):
        assert table.due_s(i) == pytest.approx(math.sqrt(2 * i), abs=1e-9)
    assert table.total == pytest.approx(50.0)
    assert table.due_s(50) is None  # due exactly at the end: the run has ended
    assert table.due_count(10.0) == 50
    assert table.rate_at(2.5) == pytest.approx(2.5)


def test_stages_hold_ramp_down_and_skip_a_stretch_of_rate_zero() -> None:
    stages = [
        Stage(duration_s=2, target=0),  # nothing due for 2 s
        Stage(duration_s=1, target=20),  # 0 -> 20/s: 10 iterations
        Stage(duration_s=2, target=20),  # 40 more
        Stage(duration_s=1, target=0),  # 20 -> 0: 10 more
    ]
    table = Timetable(stages=stages)
    assert table.total == pytest.approx(60.0)
    assert table.due_count(1.999) == 0
    assert table.due_s(0) == pytest.approx(2.0)
    assert table.due_s(10) == pytest.approx(3.0)  # the ramp's 10 iterations are due by its end
    assert table.due_s(30) == pytest.approx(4.0)  # the plateau: one every 1/20 s
    # Ramping down: 20τ - 10τ² = x, the last (x = 9.x) before the end.
    assert table.due_s(59) == pytest.approx(5.0 + (1 - math.sqrt(1 - 0.9)), abs=1e-9)
    assert table.due_count(6.0) == 60
    split = [Timetable(stages=stages, worker_index=k, worker_count=2) for k in range(2)]
    assert sum(t.due_count(6.0) for t in split) == 60


def test_a_timetable_needs_a_rate() -> None:
    with pytest.raises(ValueError, match="above 0"):
        Timetable(rate=0)
    with pytest.raises(ValueError, match="no such worker"):
        Timetable(rate=1, worker_index=2, worker_count=2)


def test_the_default_bound_covers_a_30_s_freeze_at_the_peak_rate_capped() -> None:
    assert default_max_in_flight(10) == 300
    assert default_max_in_flight(0.01) == 1
    assert default_max_in_flight(1000) == MAX_IN_FLIGHT_CAP
    assert peak_rate(5, []) == 5
    assert peak_rate(None, [Stage(duration_s=1, target=50), Stage(duration_s=1, target=20)]) == 50


def test_stages_ramp_from_the_given_rate_as_k6s_start_rate() -> None:
    # --rate 10 --stages 10s:20: from 10/s up to 20/s, so 150 iterations are due over the 10 s.
    table = Timetable(rate=10, stages=[Stage(10, 20)])
    assert table.rate_at(0) == 10 and table.rate_at(5) == 15
    assert table.total == pytest.approx(150)
    assert peak_rate(10, [Stage(10, 5)]) == 10

"""The open model's timetable: when each iteration is due, in pure arithmetic (no Locust): shared
by both engines (Locust's plugin and the native engine).

At a fixed rate R, iteration i (0-based) is due ``i / R`` seconds after the timetable's start.
With stages the rate ramps linearly between targets (``loadkit.stages.target_at``), and the due
times follow the ramp exactly: iteration i is due when the integral of the rate since the start
reaches i (the first at 0 when the rate starts above 0). In each stage the rate is
``a + b·τ``, so its integral is ``a·τ + b·τ²/2``, a quadratic solved in closed form.

Split across n workers, worker k runs the global iterations k, k + n, k + 2n, …: each holds R/n,
phase-offset by k/R, so the arrivals of all workers interleave into the one timetable of rate R.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from loadkit.measure.schedule import mean_rate
from loadkit.stages import Stage, total_duration_s

IN_FLIGHT_WINDOW_S = 30.0
"""The default bound on concurrent iterations covers this long a freeze of the target at the
peak rate: every iteration started in a freeze stays in flight until it ends, and the generator
must keep sending through it, or it would be closed-loop again (the very omission this mode
exists to avoid). Iterations beyond the bound wait in the queue and are still measured from
their due time, so a longer freeze is measured too, only no longer sent on time."""
MAX_IN_FLIGHT_CAP = 2000
"""The default bound's ceiling: each slot is a Locust user (a greenlet with its own connection),
~40 KB and one socket when busy; 2,000 stays well inside Locust's 10,000 open files and a few
tens of MB, where R × 30 s at a high rate would ask for tens of thousands."""


def default_max_in_flight(peak_rate: float) -> int:
    """The bound on concurrent iterations when none is given: the peak rate × 30 s (a freeze that
    long keeps being sent), at least 1, at most ``MAX_IN_FLIGHT_CAP``."""
    return max(1, min(MAX_IN_FLIGHT_CAP, math.ceil(peak_rate * IN_FLIGHT_WINDOW_S)))


def peak_rate(rate: float | None, stages: Sequence[Stage]) -> float:
    """The highest rate the run asks for: the stages' highest target or the rate they start from."""
    return max([float(rate or 0.0), *(stage.target for stage in stages)])


@dataclass(frozen=True)
class _Segment:
    begin_s: float
    duration_s: float
    rate0: float
    """The rate at the segment's begin (iterations/s)."""
    slope: float
    """How the rate changes per second within the segment."""
    count0: float
    """Iterations due (the rate's integral) from the start to the segment's begin."""

    def count_at(self, tau: float) -> float:
        return self.count0 + self.rate0 * tau + self.slope * tau * tau / 2.0

    def time_of(self, count: float) -> float:
        """Seconds into the segment at which the integral reaches ``count`` (within it)."""
        x = count - self.count0
        if x <= 0:
            return 0.0
        # a·τ + b·τ²/2 = x  →  τ = 2x / (a + sqrt(a² + 2bx)): stable for b of either sign, and
        # b = 0 reduces to x / a.
        root = math.sqrt(max(self.rate0 * self.rate0 + 2.0 * self.slope * x, 0.0))
        denominator = self.rate0 + root
        return 2.0 * x / denominator if denominator > 0 else 0.0


class Timetable:
    """The due times of one worker's share of an open-model run (seconds from its start)."""

    def __init__(
        self,
        *,
        rate: float | None = None,
        stages: Sequence[Stage] = (),
        worker_index: int = 0,
        worker_count: int = 1,
    ) -> None:
        """A fixed ``rate`` (iterations/s over all workers), or ``stages`` whose targets are rates
        (ramping from ``rate``, else from 0); this worker is ``worker_index`` of
        ``worker_count``."""
        if worker_count < 1 or not 0 <= worker_index < worker_count:
            raise ValueError(f"worker {worker_index} of {worker_count}: no such worker")
        if not stages and (rate is None or rate <= 0):
            raise ValueError(f"an open-model rate must be above 0 (got {rate!r})")
        self.rate = rate
        self.stages = tuple(stages)
        self.worker_index = worker_index
        self.worker_count = worker_count
        self.end_s: float | None = total_duration_s(self.stages) if self.stages else None
        """When the timetable ends (the stages' end); None: it runs until the test stops."""
        self._segments = self._build_segments()
        self.total: float | None = (
            self._segments[-1].count_at(self._segments[-1].duration_s) if self._segments else None
        )
        """Iterations due over the whole timetable (all workers); None without stages."""

    def _build_segments(self) -> list[_Segment]:
        segments: list[_Segment] = []
        begin = 0.0
        count = 0.0
        # The rate ramps from the given rate (k6's startRate; 0 without one) to the first target.
        previous = self.rate if self.rate is not None else 0.0
        for stage in self.stages:
            slope = (stage.target - previous) / stage.duration_s
            segment = _Segment(begin, stage.duration_s, previous, slope, count)
            segments.append(segment)
            count = segment.count_at(stage.duration_s)
            begin += stage.duration_s
            previous = stage.target
        return segments

    def global_due_s(self, index: int) -> float | None:
        """When global iteration ``index`` (all workers) is due; None when it never is (the
        stages end first)."""
        if not self._segments:
            assert self.rate is not None
            return index / self.rate
        if self.total is not None and index >= self.total - 1e-9:
            return None  # due at or after the stages' end: the run has ended
        for segment in self._segments:
            if index <= segment.count_at(segment.duration_s):
                # A stage of rate 0 (count flat) is skipped by the comparison above.
                if segment.rate0 <= 0 and segment.slope <= 0:
                    continue
                return segment.begin_s + segment.time_of(index)
        return None

    def due_s(self, nth: int) -> float | None:
        """When this worker's ``nth`` iteration (0-based) is due; None: never."""
        return self.global_due_s(self.worker_index + nth * self.worker_count)

    def global_count_at(self, t_s: float) -> float:
        """The rate's integral from the start to ``t_s`` (all workers)."""
        if t_s < 0:
            return 0.0
        if not self._segments:
            assert self.rate is not None
            return self.rate * t_s
        for segment in self._segments:
            if t_s < segment.begin_s + segment.duration_s:
                return segment.count_at(t_s - segment.begin_s)
        last = self._segments[-1]
        return last.count_at(last.duration_s)

    def due_count(self, t_s: float) -> int:
        """How many of this worker's iterations are due at or before ``t_s``."""
        if t_s < 0:
            return 0
        # An estimate from the rate's integral, then made exact against the due times themselves
        # (rounding, a stage of rate 0 at the start): a step or two at most.
        last_global = math.floor(self.global_count_at(t_s) + 1e-9)
        count = max(0, (last_global - self.worker_index) // self.worker_count + 1)
        while count > 0 and ((due := self.due_s(count - 1)) is None or due > t_s):
            count -= 1
        while (due := self.due_s(count)) is not None and due <= t_s:
            count += 1
        return count

    def rate_at(self, t_s: float) -> float:
        """The total target rate ``t_s`` into the timetable (all workers; 0 once it ended)."""
        if not self._segments:
            return float(self.rate or 0.0)
        for segment in self._segments:
            if t_s < segment.begin_s + segment.duration_s:
                return segment.rate0 + segment.slope * max(0.0, t_s - segment.begin_s)
        return 0.0


def share_rate(timetable: Timetable) -> float:
    """The rate one process's share of ``timetable`` asks for (iterations/s): the run's fixed
    rate, or with stages their mean (ramped from the rate), split evenly across workers."""
    if timetable.stages:
        total = mean_rate(timetable.stages, start=timetable.rate or 0.0)
    else:
        total = float(timetable.rate or 0.0)
    return total / timetable.worker_count


def live_target(timetable: Timetable, at_s: float) -> float:
    """The rate a live line shows as the target ``at_s`` into ``timetable``: 0 before it starts,
    after its stages have ended their last target (rather than the 0 they end with)."""
    if at_s < 0:
        return 0.0
    if timetable.end_s is not None:
        at_s = min(at_s, timetable.end_s * (1 - 1e-9))
    return timetable.rate_at(at_s)

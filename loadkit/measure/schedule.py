"""An open-model run's timetable figures: what the generator was asked for and how it kept it.

The plugin's timetable keeps one ``ScheduleStats`` per process up to date while it runs (it
counts due and dispatched iterations, records the scheduler lag, notes the longest queue and the
drain) and hands it to the recorder (``LatencyRecorder.set_schedule``). The figures are
cumulative: a worker ships them with each share, a master keeps each source's latest and adds
them up (``combine``) when it writes the results (``schedule_results``).

Pure: no clock of its own; times in seconds, the lag in the recorder's unit (µs, HDR).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from loadkit.measure.histogram import LOWEST_US, LatencyHistogram
from loadkit.measure.results import ScheduleResults
from loadkit.measure.validity import LAG_P99_BOUND_MS, LOOP_DELAY_P90_BOUND_MS
from loadkit.measure.worker_share import ScheduleShare
from loadkit.stages import Stage, total_duration_s


@dataclass(slots=True)
class ScheduleStats:
    """One process's timetable, as it ran so far (the plugin updates the fields in place).

    ``iterations_due`` counts iterations whose due time came before the timetable stopped;
    each is either dispatched (``iterations_dispatched``) or, at the end, reported not sent
    (``LatencyRecorder.record_not_sent``): the results refuse figures that do not add up.
    """

    target_rate: float
    """Iterations per second this process was asked for (its share of the run's rate; with
    stages, ``mean_rate(stages)`` of its share)."""
    duration_s: float = 0.0
    """How long the timetable has run: from its start to now, or to when it stopped."""
    iterations_due: int = 0
    iterations_dispatched: int = 0
    lag: LatencyHistogram = field(default_factory=LatencyHistogram)
    """Dispatch time minus due time (µs) of each iteration due while a user slot was free."""
    max_queue: int = 0
    """The most iterations waiting for a free user at once."""
    drain_s: float = 0.0
    """How long the requests still in flight at the end were waited for."""
    max_in_flight: int = 0
    """This process's bound on iterations running at once."""
    loop_delay: LatencyHistogram = field(default_factory=LatencyHistogram)
    """How late (µs) the generator's event loop woke a probe that sleeps a fixed interval
    (``LOOP_PROBE_INTERVAL_S``): measured whether or not a user is free, so a generator too
    slow to process its responses shows here even when every user is busy."""

    def record_lag(self, lag_s: float) -> None:
        """One dispatch, ``lag_s`` seconds after its due time, while a user slot was free."""
        # At least the histogram's 1 µs floor: no lag (or a clock's jitter below 0) is an
        # in-range value, not one to count as clamped.
        self.lag.record_us(max(lag_s * 1_000_000.0, float(LOWEST_US)))

    def record_loop_delay(self, delay_s: float) -> None:
        """The loop probe woke ``delay_s`` seconds after it asked to."""
        self.loop_delay.record_us(max(delay_s * 1_000_000.0, float(LOWEST_US)))

    def to_share(self) -> ScheduleShare:
        """The figures as plain data for a master (cumulative)."""
        return ScheduleShare(
            target_rate=self.target_rate,
            duration_s=self.duration_s,
            iterations_due=self.iterations_due,
            iterations_dispatched=self.iterations_dispatched,
            lag=self.lag.encode(),
            max_queue=self.max_queue,
            drain_s=self.drain_s,
            max_in_flight=self.max_in_flight,
            loop_delay=self.loop_delay.encode() if self.loop_delay.count else None,
        )

    @classmethod
    def from_share(cls, share: ScheduleShare) -> ScheduleStats:
        """Rebuild the figures ``to_share`` gave."""
        return cls(
            target_rate=share.target_rate,
            duration_s=share.duration_s,
            iterations_due=share.iterations_due,
            iterations_dispatched=share.iterations_dispatched,
            lag=LatencyHistogram.decode(share.lag),
            max_queue=share.max_queue,
            drain_s=share.drain_s,
            max_in_flight=share.max_in_flight,
            loop_delay=(
                LatencyHistogram.decode(share.loop_delay)
                if share.loop_delay is not None
                else LatencyHistogram()
            ),
        )


def combine(parts: Iterable[ScheduleStats]) -> ScheduleStats | None:
    """The run's figures from each process's: rates, counts, lags and bounds add up; the run
    lasted as long as its longest timetable and drain; the longest queue is one process's.
    None when there are none (a closed run)."""
    total: ScheduleStats | None = None
    for part in parts:
        if total is None:
            total = ScheduleStats(target_rate=0.0)
        total.target_rate += part.target_rate
        total.duration_s = max(total.duration_s, part.duration_s)
        total.iterations_due += part.iterations_due
        total.iterations_dispatched += part.iterations_dispatched
        total.lag.add(part.lag)
        total.max_queue = max(total.max_queue, part.max_queue)
        total.drain_s = max(total.drain_s, part.drain_s)
        total.max_in_flight += part.max_in_flight
        total.loop_delay.add(part.loop_delay)
    return total


def schedule_results(stats: ScheduleStats, *, not_sent: int) -> ScheduleResults:
    """The results' ``schedule`` from the run's combined figures and its ``not_sent`` count
    (what the recorder counted, so the two cannot disagree)."""
    duration = round(stats.duration_s, 6)
    return ScheduleResults(
        target_rate=stats.target_rate,
        achieved_rate=stats.iterations_dispatched / duration if duration > 0 else None,
        duration_s=duration,
        iterations_due=stats.iterations_due,
        iterations_dispatched=stats.iterations_dispatched,
        not_sent=not_sent,
        lag_ms=stats.lag.summary(),
        lag_histogram=stats.lag.encode(),
        lag_bound_ms=LAG_P99_BOUND_MS,
        lag_over_bound=stats.lag.count_above_us(LAG_P99_BOUND_MS * 1000.0),
        max_queue=stats.max_queue,
        drain_s=round(stats.drain_s, 6),
        max_in_flight=stats.max_in_flight,
        **_loop_delay_fields(stats.loop_delay),
    )


def _loop_delay_fields(loop_delay: LatencyHistogram) -> dict[str, Any]:
    # Absent (not zero) when no probe woke: a run too short for one, or a file's older writer.
    if not loop_delay.count:
        return {}
    return {
        "loop_delay_ms": loop_delay.summary(),
        "loop_delay_histogram": loop_delay.encode(),
        "loop_delay_bound_ms": LOOP_DELAY_P90_BOUND_MS,
        "loop_delay_over_bound": loop_delay.count_above_us(LOOP_DELAY_P90_BOUND_MS * 1000.0),
    }


def mean_rate(stages: Sequence[Stage], *, start: float = 0.0) -> float:
    """The mean target of ``stages`` ramped linearly (from ``start`` before the first): the
    planned iterations over the planned duration, what an open run's ``target_rate`` is."""
    duration = total_duration_s(stages)
    if duration <= 0:
        return 0.0
    planned = 0.0
    previous = start
    for stage in stages:
        planned += (previous + stage.target) / 2.0 * stage.duration_s
        previous = stage.target
    return planned / duration

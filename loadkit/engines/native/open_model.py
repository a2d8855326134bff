"""The open model on the event loop: a timetable's requests sent at their due times.

Iteration i of this process's share is due at ``t0 + timetable.due_s(i)`` (``engines/timetable``,
shared with Locust's plugin). Each is sent when due on an idle connection, or on a new one while
fewer than ``max_in_flight`` are in flight; beyond that it waits in a queue and is sent when a
request ends, still timed from its due time (response time from due, service time from send).

The dispatcher runs from two places: a timer at the next due time (uvloop's timers fire on
millisecond ticks: at least ``TIMER_FLOOR_S`` ahead), and after every request that ends (at a
high rate responses arrive far more often than that, so iterations are sent within a loop turn
of their due time). Measured at 5,000/s against nginx, the timer fires a median 1.0 ms after
the due time (and a quarter of the time before it, then again a tick later): the lag P50 of
0.5 ms. A Linux ``timerfd`` at the exact due time (ctypes, re-armed only when it fired) cut
that to 0.04 ms but was not kept: the lag P99 (2-4 ms on a shared machine) comes from the
loop's stalls and preemption, not the timer, and a wake-up per due time cost 1.15-1.2 times
the CPU per request at 5,000-10,000/s (docs/benchmarks.md, "Native engine"). Scheduler lag is
a dispatch's time minus the later of its due time and the moment a slot became free: the
generator's own delay, recorded in the run's ``ScheduleStats``. The loop probe, a timer re-armed
every ``LOOP_PROBE_INTERVAL_S``, records how late each wake-up comes (the event loop's delay,
whether or not a slot is free), as the Locust path's greenlet does: late from the moment the
timer became due on the loop's own clock (libuv counts whole milliseconds, so a timer asked for
10 ms from now is due up to 1 ms sooner), which is the time any callback that became ready then
(a response) waited for the loop. Measured from the 10 ms asked for, a busy loop's delay read up
to 1 ms short (negative readings, counted as 0).

At the stop nothing more is sent; iterations still queued are ``not_sent`` (their due times
returned by ``finish``); requests in flight are waited for by the caller (the drain).
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from time import perf_counter

from loadkit.engines.native.pool import Pool
from loadkit.engines.timetable import Timetable, share_rate
from loadkit.measure.schedule import ScheduleStats
from loadkit.measure.validity import LOOP_PROBE_INTERVAL_S

TIMER_FLOOR_S = 0.001
"""The dispatcher's timer waits at least this long (uvloop's timer resolution). An iteration due
sooner is sent by the next response's dispatch, or by the timer a tick late at most."""


class OpenModel:
    """One process's timetable, dispatched onto ``pool``."""

    def __init__(
        self,
        *,
        pool: Pool,
        timetable: Timetable,
        max_in_flight: int,
        t0: float,
        planned_s: float = math.inf,
    ) -> None:
        """``t0``: when iteration 0 is due (perf counter seconds); ``planned_s``: the planned
        end, from ``t0``: iterations due at or after it are never sent (the Locust path's rule:
        the stop's timer must not race the dispatcher's for the one due exactly then)."""
        self.pool = pool
        self.planned_s = planned_s
        self.timetable = timetable
        self.max_in_flight = max_in_flight
        self.t0 = t0
        self.schedule = ScheduleStats(
            target_rate=share_rate(timetable), max_in_flight=max_in_flight
        )
        self.queue: deque[float] = deque()
        """Due times (perf counter) of iterations waiting for a free slot."""
        self.dispatched = 0
        self.next_index = 0
        offset = timetable.due_s(0)
        self.next_due: float | None = None if offset is None or offset >= planned_s else t0 + offset
        self.free_since = t0
        """Since when a slot has been free (the last time every slot was busy, or ``t0``)."""
        self.stop_time: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._probe: asyncio.TimerHandle | None = None
        self._clock_shift = 0.0
        """``perf_counter()`` minus the loop's clock (0 when they are one clock, as on Linux)."""
        self.drained = asyncio.Event()
        """Set once the run has stopped and no request is in flight any more."""
        pool.on_done = self._done

    def start(self) -> None:
        """Arm the dispatcher and the loop probe (``t0`` may lie a little ahead)."""
        shift = perf_counter() - asyncio.get_running_loop().time()
        # uvloop's clock is CLOCK_MONOTONIC in whole milliseconds, perf_counter's the same clock
        # to the ns: they differ by under a millisecond. Another loop's clock may not share its
        # epoch: then it is placed by this one reading (good to its resolution).
        self._clock_shift = 0.0 if 0.0 <= shift < 0.002 else shift
        self._tick()
        self._arm_probe()

    # --- dispatching ------------------------------------------------------------------------

    def _tick(self) -> None:
        self._timer = None
        if self.stop_time is not None:
            return
        self._dispatch_due(perf_counter())
        if self.next_due is not None:
            # Never sooner than a tick: uvloop runs a timer due in under a millisecond on the
            # loop's next turn, and re-arming it so would spin the loop until the due time.
            delay = max(self.next_due - perf_counter(), TIMER_FLOOR_S)
            self._timer = asyncio.get_running_loop().call_later(delay, self._tick)

    def _dispatch_due(self, now: float) -> None:
        pool = self.pool
        schedule = self.schedule
        due = self.next_due
        while due is not None and due <= now:
            if pool.in_flight < self.max_in_flight:
                began = max(due, self.free_since)
                schedule.record_lag(now - began)
                schedule.iterations_due += 1
                schedule.iterations_dispatched += 1
                pool.send(due, now)
                self.dispatched += 1
                now = perf_counter()
            else:
                self.queue.append(due)
                if len(self.queue) > schedule.max_queue:
                    schedule.max_queue = len(self.queue)
            self.next_index += 1
            offset = self.timetable.due_s(self.next_index)
            due = None if offset is None or offset >= self.planned_s else self.t0 + offset
        self.next_due = due

    def _done(self, end: float) -> None:
        if self.stop_time is not None:
            if not self.pool.in_flight:
                self.drained.set()
            return
        queue = self.queue
        if queue:
            # The slot this request freed goes to the longest-waiting iteration at once.
            due = queue.popleft()
            now = perf_counter()
            schedule = self.schedule
            schedule.record_lag(now - max(due, end))
            schedule.iterations_due += 1
            schedule.iterations_dispatched += 1
            self.pool.send(due, now)
            self.dispatched += 1
            return
        if self.pool.in_flight == self.max_in_flight - 1:
            self.free_since = end
        next_due = self.next_due
        if next_due is not None and next_due <= end:
            self._dispatch_due(perf_counter())

    # --- the loop probe ---------------------------------------------------------------------

    def _arm_probe(self) -> None:
        self._probe = asyncio.get_running_loop().call_later(LOOP_PROBE_INTERVAL_S, self._woke)

    def _woke(self) -> None:
        if self.stop_time is None:
            assert self._probe is not None
            # From when the timer became due on the loop's clock (``when``), not from the
            # 10 ms asked for: see the module's docstring.
            due = self._probe.when() + self._clock_shift
            self.schedule.record_loop_delay(perf_counter() - due)
            self._arm_probe()

    # --- the end ----------------------------------------------------------------------------

    @property
    def end_s(self) -> float | None:
        """When the timetable ends by itself (its stages' end, from ``t0``); None: never."""
        return self.timetable.end_s

    def stop(self) -> None:
        """Send nothing more from now on."""
        if self.stop_time is not None:
            return
        self.stop_time = perf_counter()
        if not self.pool.in_flight:
            self.drained.set()
        for handle in (self._timer, self._probe):
            if handle is not None:
                handle.cancel()

    def finish(self, *, drain_s: float) -> list[float]:
        """Complete the schedule figures after the drain; the due times (perf counter) of the
        iterations never sent (those still queued at the stop)."""
        assert self.stop_time is not None
        not_sent = list(self.queue)
        self.queue.clear()
        schedule = self.schedule
        schedule.iterations_due = schedule.iterations_dispatched + len(not_sent)
        schedule.drain_s = drain_s
        ran = self.stop_time - self.t0
        if self.timetable.end_s is not None:
            ran = min(ran, self.timetable.end_s)
        schedule.duration_s = max(ran, 0.0)
        return not_sent

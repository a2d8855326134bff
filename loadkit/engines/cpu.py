"""Whether a load generator's CPU left its measurements trustworthy: the rule both engines judge
by, and the span-by-span reading the native engine takes of its own.

A generator above ``CPU_WARNING_PERCENT`` of a core measures its own queueing, not the target
(Locust's threshold, kept for both engines). Locust reads its process every 10 s and its plugin
fills the spans between (``engines/locust/plugin/cpu.py``); the native engine reads the CPU of its
event loop's thread (``time.thread_time``: the generator's whole work, and nothing of a server a
test runs in the same process) over spans of ``SPAN_S``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

CPU_WARNING_PERCENT = 90.0
"""Locust's threshold: a process above it measures its own queueing, not the target."""
OWN_CPU_MIN_S = 1.0
"""Spans shorter than this are too noisy to judge: they join the next one."""
SPAN_S = 5.0
"""The native engine judges its CPU over spans this long (a run's last span when at least
``OWN_CPU_MIN_S``): a busy second is no saturation, five are."""


def process_cpu_s() -> float:
    """CPU seconds this process has used (user + system, all its threads)."""
    times = os.times()
    return times.user + times.system


class CpuSpans:
    """The CPU warnings and peak CPU of one run, judged span by span."""

    def __init__(
        self,
        *,
        cpu_s: Callable[[], float] = time.thread_time,
        clock: Callable[[], float] = time.perf_counter,
        span_s: float = SPAN_S,
    ) -> None:
        """Start now; ``cpu_s`` reads the CPU seconds (default: this thread's), ``clock`` the
        time, for a test to replace."""
        self.warnings = 0
        self.max_percent: float | None = None
        self.span_s = span_s
        self._cpu_s = cpu_s
        self._clock = clock
        self._mark = (cpu_s(), clock())

    def tick(self) -> None:
        """Call now and then (every second): judges the span when it is ``span_s`` long."""
        if self._clock() - self._mark[1] >= self.span_s:
            self._judge()

    def finish(self) -> None:
        """The run's end: judge the last span (when at least ``OWN_CPU_MIN_S`` long)."""
        if self._clock() - self._mark[1] >= OWN_CPU_MIN_S:
            self._judge()

    def _judge(self) -> None:
        cpu0, since = self._mark
        now, cpu = self._clock(), self._cpu_s()
        self._mark = (cpu, now)
        usage = 100.0 * (cpu - cpu0) / (now - since)
        self.max_percent = usage if self.max_percent is None else max(self.max_percent, usage)
        if usage > CPU_WARNING_PERCENT:
            self.warnings += 1

"""Whether this Locust process's CPU left its measurements trustworthy.

Locust reads the process's CPU every 10 s (``usage_monitor``) and fires ``cpu_warning`` above
90 %. The span since its last reading (or since the test began) goes unread: a test shorter than
10 s, or the last seconds of any test, would go unjudged, and a generator saturated all along
would pass. ``check_own`` reads that span itself.
"""

from __future__ import annotations

import logging
import os
import time

logger = logging.getLogger("loadkit")

CPU_WARNING_PERCENT = 90.0
"""Locust's threshold: a process above it measures its own queueing, not the target."""
OWN_CPU_MIN_S = 1.0
"""The plugin's own CPU reading covers the end of a test: the span since Locust's last reading
(every 10 s) or since the test started. Spans shorter than this are too noisy to judge."""


def process_cpu_s() -> float:
    """CPU seconds this process has used (user + system, all its threads)."""
    times = os.times()
    return times.user + times.system


class CpuWatch:
    """The CPU warnings and peak CPU of one test in this process."""

    def __init__(self) -> None:
        """Start watching now (the test begins)."""
        self.warnings = 0
        self.max_percent: float | None = None
        self.closed = False
        """Set when the test's results are out: later readings belong to no test."""
        # Process CPU seconds and perf_counter when Locust last read the CPU (or the test began).
        self._mark: tuple[float, float] | None = (process_cpu_s(), time.perf_counter())

    def warning(self, cpu_usage: float) -> None:
        """Locust's ``cpu_warning``: this process ran above 90 % CPU."""
        self.warnings += 1
        self.note(cpu_usage)

    def reading(self, cpu_usage: float) -> None:
        """Locust's periodic reading (``usage_monitor``): our own span starts after it."""
        self.note(cpu_usage)
        if self._mark is not None:
            self._mark = (process_cpu_s(), time.perf_counter())

    def check_own(self) -> None:
        """Read this process's CPU over the test's last span that Locust did not read (once)."""
        mark, self._mark = self._mark, None
        if mark is None:
            return
        cpu_s, since = mark
        span = time.perf_counter() - since
        if span < OWN_CPU_MIN_S:
            return
        usage = 100.0 * (process_cpu_s() - cpu_s) / span
        self.note(usage)
        if usage > CPU_WARNING_PERCENT:
            self.warnings += 1
            logger.warning(
                "loadkit: this Locust process ran at %.0f %% CPU over the last %.1f s of the test",
                usage,
                span,
            )

    def note(self, cpu_usage: float | None) -> None:
        """A CPU reading (this process's, or a worker's) for the peak."""
        # psutil's first reading is always 0.0 (no interval yet): it is no measurement.
        if cpu_usage and not self.closed:
            self.max_percent = (
                cpu_usage if self.max_percent is None else max(self.max_percent, cpu_usage)
            )

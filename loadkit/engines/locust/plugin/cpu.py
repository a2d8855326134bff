"""Whether this Locust process's CPU left its measurements trustworthy.

Locust reads the process's CPU every 10 s (``usage_monitor``) and fires ``cpu_warning`` above
90 %. Its readings alone leave spans unjudged: its first one is psutil's meaningless 0.0 (no
interval yet, ~10 s in), a reading's interval may reach back before the test began (diluted by
idle time), and the span since its last reading, or a test shorter than 10 s, is never read.
So the plugin reads its own CPU over every span between Locust's readings (and from the last
one to the test's end), whatever Locust's figure was: every span of the test of at least
``OWN_CPU_MIN_S`` is judged, and a shorter one is carried into the next.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

# The threshold and the reading are both engines' (the native engine judges by them too).
from loadkit.engines.cpu import CPU_WARNING_PERCENT, OWN_CPU_MIN_S, process_cpu_s

__all__ = ["CPU_WARNING_PERCENT", "OWN_CPU_MIN_S", "CpuWatch", "process_cpu_s"]

logger = logging.getLogger("loadkit")


class CpuWatch:
    """The CPU warnings and peak CPU of one test in this process."""

    def __init__(
        self,
        *,
        cpu_s: Callable[[], float] = process_cpu_s,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        """Start watching now (the test begins); ``cpu_s`` and ``clock`` read the process's CPU
        seconds and the time (seconds), for a test to replace."""
        self.warnings = 0
        self.max_percent: float | None = None
        self.closed = False
        """Set when the test's results are out: later readings belong to no test."""
        self._cpu_s = cpu_s
        self._clock = clock
        # Process CPU seconds and the time where the span not yet judged begins.
        self._mark: tuple[float, float] | None = (cpu_s(), clock())
        self._locust_warned = False
        """Locust warned since its last reading: the span it read is judged already."""

    def warning(self, cpu_usage: float) -> None:
        """Locust's ``cpu_warning``: this process ran above 90 % CPU (its ``usage_monitor``
        reading follows)."""
        self.warnings += 1
        self._locust_warned = True
        self.note(cpu_usage)

    def reading(self, cpu_usage: float) -> None:
        """Locust's periodic reading (``usage_monitor``): the span since the last one is judged
        here (unless Locust warned for it), whatever Locust read; a new span begins."""
        self.note(cpu_usage)
        warned, self._locust_warned = self._locust_warned, False
        self._judge_span(already_warned=warned, final=False)

    def check_own(self) -> None:
        """The test's end: judge the span since the last reading (once)."""
        self._judge_span(already_warned=False, final=True)
        self._mark = None

    def _judge_span(self, *, already_warned: bool, final: bool) -> None:
        mark = self._mark
        if mark is None:
            return
        cpu_s, since = mark
        now, cpu_now = self._clock(), self._cpu_s()
        span = now - since
        if span < OWN_CPU_MIN_S:
            return  # too short to judge: it stays the start of the next span
        self._mark = (cpu_now, now)
        usage = 100.0 * (cpu_now - cpu_s) / span
        self.note(usage)
        if usage > CPU_WARNING_PERCENT and not already_warned:
            self.warnings += 1
            logger.warning(
                "loadkit: this Locust process ran at %.0f %% CPU over %.1f s of the test%s",
                usage,
                span,
                " (its last seconds)" if final else "",
            )

    def note(self, cpu_usage: float | None) -> None:
        """A CPU reading (this process's, or a worker's) for the peak."""
        # psutil's first reading is always 0.0 (no interval yet): it is no measurement.
        if cpu_usage and not self.closed:
            self.max_percent = (
                cpu_usage if self.max_percent is None else max(self.max_percent, cpu_usage)
            )

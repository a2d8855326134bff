"""The per-second timeline of a run: completions, errors (by kind) and the P95 of each second.

Seconds are counted from the run's start. The second that is still filling (the *open* second)
keeps a live histogram; when a later second begins (or on ``close_open_second``) it is encoded
and kept with the closed ones, so memory stays small: an encoded second is a few hundred bytes.
Seconds of several processes merge by adding (a second may hold several encoded histograms,
and its errors by kind add up key by key).

Pure: times are seconds on the run clock (``RunClock``), latencies integer-ready microseconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from loadkit.measure.histogram import LatencyHistogram, us_to_ms
from loadkit.measure.results import (
    TIMELINE_HISTOGRAM_BUDGET_BYTES,
    EncodedHistogram,
    TimelinePoint,
)


@dataclass(slots=True)
class OpenSecond:
    """The second still filling; ``LatencyRecorder.record`` adds to it directly (hot path)."""

    t: int
    completions: int = 0
    errors: int = 0
    histogram: LatencyHistogram = field(default_factory=LatencyHistogram)
    error_kinds: dict[str, int] = field(default_factory=dict)
    """Errors by kind (touched on failures only: a success costs what it did before)."""


@dataclass(slots=True)
class ClosedSecond:
    """A finished second: counts and its latencies, encoded (one histogram per share)."""

    completions: int = 0
    errors: int = 0
    histograms: list[EncodedHistogram] = field(default_factory=list)
    error_kinds: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class SecondStats:
    """What completed in one closed second (for live progress lines)."""

    t: int
    completions: int
    errors: int
    p95_ms: float | None


class Timeline:
    """Completions per second since ``start``, the open second apart."""

    __slots__ = ("_last_closed", "_seconds", "open", "start")

    def __init__(self, *, start: float) -> None:
        """``start``: the run's start on the run clock (second 0 begins there)."""
        self.start = start
        self.open: OpenSecond | None = None
        self._seconds: dict[int, ClosedSecond] = {}
        self._last_closed: SecondStats | None = None

    def add(self, end: float, latency_us: float, error_kind: str | None) -> None:
        """Count a completion at ``end``, failed when ``error_kind`` is not None (the slow
        path: a new second, or out of order)."""
        t = max(int(end - self.start), 0)
        second = self.open
        if second is None:
            second = self.open = OpenSecond(t=t)
        elif t > second.t:
            self.close_open_second()
            second = self.open = OpenSecond(t=t)
        # A completion stamped before the open second (out of order) is counted in the open one:
        # requests complete in time order within one process, so this only absorbs clock jitter.
        second.completions += 1
        if error_kind is not None:
            second.errors += 1
            second.error_kinds[error_kind] = second.error_kinds.get(error_kind, 0) + 1
        second.histogram.record_us(latency_us)

    def close_open_second(self) -> None:
        """Encode the open second and keep it with the closed ones (a new one opens on demand)."""
        second = self.open
        if second is None:
            return
        self.open = None
        if not second.completions:
            return
        p95 = second.histogram.percentiles_us((95.0,)).get(95.0)
        self._last_closed = SecondStats(
            t=second.t, completions=second.completions, errors=second.errors, p95_ms=us_to_ms(p95)
        )
        self.merge_second(
            second.t,
            ClosedSecond(
                second.completions,
                second.errors,
                [second.histogram.encode()],
                dict(second.error_kinds),
            ),
        )

    def merge_second(self, t: int, second: ClosedSecond) -> None:
        """Add a closed second (this process's, or from another's share) at second ``t``."""
        target = self._seconds.get(t)
        if target is None:
            self._seconds[t] = second
            return
        target.completions += second.completions
        target.errors += second.errors
        target.histograms.extend(second.histograms)
        _add_kinds(target.error_kinds, second.error_kinds)

    @property
    def last_closed(self) -> SecondStats | None:
        """The most recent closed second of this process (what a live progress line shows)."""
        return self._last_closed

    def closed_seconds(self) -> dict[int, ClosedSecond]:
        """Every second as closed data, the open one included as if closed now (a copy)."""
        seconds = {
            t: ClosedSecond(s.completions, s.errors, list(s.histograms), dict(s.error_kinds))
            for t, s in self._seconds.items()
        }
        second = self.open
        if second is not None and second.completions:
            entry = seconds.setdefault(second.t, ClosedSecond())
            entry.completions += second.completions
            entry.errors += second.errors
            entry.histograms.append(second.histogram.encode())
            _add_kinds(entry.error_kinds, second.error_kinds)
        return seconds

    def points(self, *, duration_s: float | None) -> list[TimelinePoint]:
        """One point per second from 0 to the last completion, or to ``duration_s`` when the
        run has ended; seconds with no completion included."""
        open_second = self.open
        last = max(self._seconds, default=-1)
        if open_second is not None:
            last = max(last, open_second.t)
        if duration_s is not None:
            last = max(last, int(duration_s) - (1 if duration_s.is_integer() else 0))
        points = []
        budget = TIMELINE_HISTOGRAM_BUDGET_BYTES
        for t in range(0, last + 1):
            closed = self._seconds.get(t)
            histogram = LatencyHistogram()
            completions = errors = 0
            kinds: dict[str, int] = {}
            if closed is not None:
                completions, errors = closed.completions, closed.errors
                for encoded in closed.histograms:
                    histogram.add(LatencyHistogram.decode(encoded))
                _add_kinds(kinds, closed.error_kinds)
            if open_second is not None and open_second.t == t:
                completions += open_second.completions
                errors += open_second.errors
                histogram.add(open_second.histogram)
                _add_kinds(kinds, open_second.error_kinds)
            if completions == 0:
                points.append(TimelinePoint(t_s=t, completions=0, errors=0, p95_ms=None))
                continue
            p95 = histogram.percentiles_us((95.0,)).get(95.0)
            encoded = histogram.encode()
            budget -= len(encoded.data)  # past it: counts and P95 only (see the budget)
            points.append(
                TimelinePoint(
                    t_s=t,
                    completions=completions,
                    errors=errors,
                    p95_ms=us_to_ms(p95),
                    histogram=encoded if budget >= 0 else None,
                    errors_by_kind=dict(sorted(kinds.items())) if errors else None,
                )
            )
        return points

    def clear_closed(self) -> None:
        """Forget the closed seconds (shipped elsewhere); the open second and ``last_closed``
        stay."""
        self._seconds = {}


def _add_kinds(into: dict[str, int], kinds: dict[str, int]) -> None:
    """Add errors by kind into ``into`` (merging seconds is adding, key by key)."""
    for kind, count in kinds.items():
        into[kind] = into.get(kind, 0) + count

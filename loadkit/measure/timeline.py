"""The per-second timeline of a run: completions, errors (by kind), the response times of each
second and, in an open-model run, its service times.

Seconds are counted from the run's start. The second that is still filling (the *open* second)
keeps live histograms; when a later second begins (or on ``close_open_second``) they are encoded
and kept with the closed ones, so memory stays small: an encoded second is a few hundred bytes.
Seconds of several processes merge by adding (a second may hold several encoded histograms,
and its errors by kind add up key by key).

Service times (open model) are exact whatever the mix, like ``Tally``'s: a request without one
of its own (a closed-model request, or a later request of an open-model iteration) has its
response time as service time. So the open second keeps those requests' response times in
``histogram`` (the closed model's path records there and nothing else), and the requests with a
service time of their own apart, their response times in ``timed`` and their service times in
``service``: the second's response times are ``histogram`` + ``timed``, its service times
``histogram`` + ``service``.

Closing a second (its histograms into HDR counts, its P95s, its encodings: 1-8 ms at 5,000-20,000
requests a second) happens at once by default, inside the record that opens the next second. An
event-loop engine spreads it instead (``spread_closing``): each piece goes to the scheduler it
gives (the loop's ``call_soon``), so the loop serves its sockets between pieces (about 0.3 ms
each at most). Every reader (``closed_seconds``, ``points``, ``last_closed``) finishes a closing
still under way first, so what is read is the same either way.

Pure: times are seconds on the run clock (``RunClock``), latencies integer-ready microseconds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial

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
    """Response times of the requests whose service time is their response time (all of them in
    a closed-model run)."""
    error_kinds: dict[str, int] = field(default_factory=dict)
    """Errors by kind (touched on failures only: a success costs what it did before)."""
    timed: LatencyHistogram | None = None
    """Response times of the requests with a service time of their own (None: none yet)."""
    service: LatencyHistogram | None = None
    """Their service times (None with ``timed``)."""

    def add(self, latency_us: float, error_kind: str | None, service_us: float | None) -> None:
        """Count a completion in this second (``service_us`` None: its service time is its
        response time)."""
        self.completions += 1
        if error_kind is not None:
            self.errors += 1
            kinds = self.error_kinds
            kinds[error_kind] = kinds.get(error_kind, 0) + 1
        if service_us is None:
            self.histogram.record_us(latency_us)
            return
        timed = self.timed
        service = self.service
        if timed is None or service is None:
            timed = self.timed = LatencyHistogram()
            service = self.service = LatencyHistogram()
        timed.record_us(latency_us)
        service.record_us(service_us)

    def response(self) -> LatencyHistogram:
        """Every response time of this second (the histogram itself when it holds them all)."""
        return _joined(self.histogram, self.timed)

    def service_times(self) -> LatencyHistogram | None:
        """Every service time of this second; None when each is its response time."""
        return None if self.service is None else _joined(self.histogram, self.service)


def _joined(untimed: LatencyHistogram, timed: LatencyHistogram | None) -> LatencyHistogram:
    if timed is None or not untimed.count:
        return untimed if timed is None else timed
    total = untimed.clone()
    total.add(timed)
    return total


@dataclass(slots=True)
class ClosedSecond:
    """A finished second: counts and its latencies, encoded (one histogram per share)."""

    completions: int = 0
    errors: int = 0
    histograms: list[EncodedHistogram] = field(default_factory=list)
    error_kinds: dict[str, int] = field(default_factory=dict)
    services: list[EncodedHistogram] | None = None
    """The service times, one histogram per share (a share without its own: its response
    times); None when every share's service times were its response times (a closed run)."""

    def add(self, other: ClosedSecond) -> None:
        """Add another part of this second (another share's), exactly."""
        self.completions += other.completions
        self.errors += other.errors
        if other.services is not None or self.services is not None:
            if self.services is None:
                self.services = list(self.histograms)
            self.services.extend(other.services if other.services is not None else other.histograms)
        self.histograms.extend(other.histograms)
        _add_kinds(self.error_kinds, other.error_kinds)

    def duplicate(self) -> ClosedSecond:
        """A copy whose lists and counts are its own (the encoded histograms are shared)."""
        return ClosedSecond(
            self.completions,
            self.errors,
            list(self.histograms),
            dict(self.error_kinds),
            None if self.services is None else list(self.services),
        )


@dataclass(frozen=True)
class SecondStats:
    """What completed in one closed second (for live progress lines)."""

    t: int
    completions: int
    errors: int
    p95_ms: float | None
    service_p95_ms: float | None = None
    """The P95 of its service times (from the send); None when they are its response times
    (a closed run)."""


class Timeline:
    """Completions per second since ``start``, the open second apart."""

    __slots__ = ("_closing", "_last_closed", "_schedule", "_seconds", "open", "start")

    def __init__(self, *, start: float) -> None:
        """``start``: the run's start on the run clock (second 0 begins there)."""
        self.start = start
        self.open: OpenSecond | None = None
        self._seconds: dict[int, ClosedSecond] = {}
        self._last_closed: SecondStats | None = None
        self._closing: Iterator[None] | None = None
        """The pieces of work left of the second being closed (None: none under way)."""
        self._schedule: Callable[[Callable[[], None]], object] | None = None

    def spread_closing(self, schedule: Callable[[Callable[[], None]], object] | None) -> None:
        """Close each second in pieces, each run by ``schedule`` (an event loop's ``call_soon``:
        the loop serves its sockets between pieces); None: at once again (the default)."""
        self._schedule = schedule

    @property
    def closing(self) -> bool:
        """Whether a second's closing is still under way (spread by ``spread_closing``)."""
        return self._closing is not None

    def add(
        self,
        end: float,
        latency_us: float,
        error_kind: str | None,
        service_us: float | None = None,
    ) -> None:
        """Count a completion at ``end``, failed when ``error_kind`` is not None, its service
        time ``service_us`` (None: its response time) (the slow path: a new second, or out of
        order)."""
        t = max(int(end - self.start), 0)
        second = self.open
        if second is None:
            second = self.open = OpenSecond(t=t)
        elif t > second.t:
            self.close_open_second()
            second = self.open = OpenSecond(t=t)
        # A completion stamped before the open second (out of order) is counted in the open one:
        # requests complete in time order within one process, so this only absorbs clock jitter.
        second.add(latency_us, error_kind, service_us)

    def close_open_second(self) -> None:
        """Close the open second (a new one opens on demand): at once, or in pieces (see
        ``spread_closing``)."""
        second = self.open
        if second is None:
            return
        self.open = None
        if not second.completions:
            return
        self.settle()  # the second before, if its closing is still under way
        steps = self._close_steps(second)
        self._closing = steps
        if self._schedule is None:
            self.settle()
        else:
            self._schedule(partial(self._step, steps))

    def settle(self) -> None:
        """Finish a second's closing still under way, at once (readers call it first)."""
        steps = self._closing
        if steps is not None:
            for _ in steps:
                pass

    def _step(self, steps: Iterator[None]) -> None:
        # One piece of a spread closing, then the next piece is scheduled. A reader may have
        # finished this closing meanwhile (and another may be under way: its own chain runs it).
        if self._closing is not steps:
            return
        try:
            next(steps)
        except StopIteration:
            return
        if self._schedule is not None:
            self._schedule(partial(self._step, steps))
        else:
            self.settle()

    def _close_steps(self, second: OpenSecond) -> Iterator[None]:
        """Close ``second`` piece by piece (each yield: a place to pause, each piece at most a
        fold and ``SYNC_CHUNK`` values into HDR counts, a P95 scan or an encoding)."""
        try:
            for part in (second.histogram, second.timed, second.service):
                # A chunk a piece (the last one of a part too, so no piece holds two).
                while part is not None:
                    done = part.sync_part()
                    yield
                    if done:
                        break
            response = second.response()
            p95 = response.percentiles_us((95.0,)).get(95.0)
            yield
            encoded = response.encode()
            yield
            service = second.service_times()
            service_p95 = None
            service_encoded = None
            if service is not None:
                service_p95 = service.percentiles_us((95.0,)).get(95.0)
                yield
                service_encoded = service.encode()
            self._last_closed = SecondStats(
                t=second.t,
                completions=second.completions,
                errors=second.errors,
                p95_ms=us_to_ms(p95),
                service_p95_ms=us_to_ms(service_p95),
            )
            self._add_second(
                second.t,
                ClosedSecond(
                    second.completions,
                    second.errors,
                    [encoded],
                    dict(second.error_kinds),
                    None if service_encoded is None else [service_encoded],
                ),
            )
        finally:
            self._closing = None

    def merge_second(self, t: int, second: ClosedSecond) -> None:
        """Add a closed second (this process's, or from another's share) at second ``t``."""
        self.settle()
        self._add_second(t, second)

    def _add_second(self, t: int, second: ClosedSecond) -> None:
        target = self._seconds.get(t)
        if target is None:
            self._seconds[t] = second
            return
        target.add(second)

    @property
    def last_closed(self) -> SecondStats | None:
        """The most recent closed second of this process (what a live progress line shows)."""
        self.settle()
        return self._last_closed

    def closed_seconds(self) -> dict[int, ClosedSecond]:
        """Every second as closed data, the open one included as if closed now (a copy)."""
        self.settle()
        seconds = {t: s.duplicate() for t, s in self._seconds.items()}
        second = self.open
        if second is not None and second.completions:
            part = _encoded(second, second.response(), second.service_times())
            entry = seconds.get(second.t)
            if entry is None:
                seconds[second.t] = part
            else:
                entry.add(part)
        return seconds

    def points(self, *, duration_s: float | None) -> list[TimelinePoint]:
        """One point per second from 0 to the last completion, or to ``duration_s`` when the
        run has ended; seconds with no completion included."""
        seconds = self.closed_seconds()
        last = max(seconds, default=-1)
        if self.open is not None:
            last = max(last, self.open.t)
        if duration_s is not None:
            last = max(last, int(duration_s) - (1 if duration_s.is_integer() else 0))
        points = []
        budget = TIMELINE_HISTOGRAM_BUDGET_BYTES
        # In a run with service times, a second none of whose requests had one of its own (a
        # Locust iteration's later requests only) has its response times as service times.
        timed_run = any(second.services is not None for second in seconds.values())
        for t in range(0, last + 1):
            closed = seconds.get(t)
            if closed is None or closed.completions == 0:
                points.append(TimelinePoint(t_s=t, completions=0, errors=0, p95_ms=None))
                continue
            histogram = _decoded_sum(closed.histograms)
            p95 = histogram.percentiles_us((95.0,)).get(95.0)
            encoded = histogram.encode()
            service = None
            if closed.services is not None:
                # One part (one process's second) is already that second's histogram.
                services = closed.services
                service = services[0] if len(services) == 1 else _decoded_sum(services).encode()
            elif timed_run:
                service = encoded
            # A second's histograms count together; past the budget: counts and P95 only.
            budget -= len(encoded.data) + (0 if service is None else len(service.data))
            kept = budget >= 0
            points.append(
                TimelinePoint(
                    t_s=t,
                    completions=closed.completions,
                    errors=closed.errors,
                    p95_ms=us_to_ms(p95),
                    histogram=encoded if kept else None,
                    service_histogram=service if kept else None,
                    errors_by_kind=dict(sorted(closed.error_kinds.items()))
                    if closed.errors
                    else None,
                )
            )
        return points

    def clear_closed(self) -> None:
        """Forget the closed seconds (shipped elsewhere); the open second and ``last_closed``
        stay."""
        self.settle()
        self._seconds = {}


def _encoded(
    second: OpenSecond, response: LatencyHistogram, service: LatencyHistogram | None
) -> ClosedSecond:
    """The open ``second`` as a closed part (``response``: its response times, all of them;
    ``service``: its service times, None when they are its response times)."""
    return ClosedSecond(
        second.completions,
        second.errors,
        [response.encode()],
        dict(second.error_kinds),
        None if service is None else [service.encode()],
    )


def _decoded_sum(encoded: list[EncodedHistogram]) -> LatencyHistogram:
    """The histograms of a second's parts, decoded and added."""
    total = LatencyHistogram()
    for part in encoded:
        total.add(LatencyHistogram.decode(part))
    return total


def _add_kinds(into: dict[str, int], kinds: dict[str, int]) -> None:
    """Add errors by kind into ``into`` (merging seconds is adding, key by key)."""
    for kind, count in kinds.items():
        into[kind] = into.get(kind, 0) + count

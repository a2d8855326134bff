"""Stall detection: spans with no completion anywhere while requests were in flight.

Each process keeps its quiet spans (no completion for at least ``STALL_FLOOR_S``), each with the
earliest send time of a request pending across it: the part from there to the span's end is
*stalled*. Processes (sources) ship their spans; the longest stall of the whole run is then the
longest span that every source saw quiet (the intersection of their quiet spans) and in which
some source had a request in flight (the union of their stalled spans).

Pure: times are seconds on the run clock (``RunClock``).
"""

from __future__ import annotations

from collections.abc import Iterable

from loadkit.measure.results import Stall

STALL_FLOOR_S = 0.1
"""Gaps between completions shorter than this are not kept: countless, and no gate cares."""
MAX_GAPS = 10_000
"""At most this many gaps are kept per source (the longest ones), so memory stays flat."""
RESHIP_WINDOW_S = 120.0
"""``StallTracker.drain`` keeps (and ships again) spans this recent: a request still in flight
may yet show that one of them was a stall. Longer than any latency the histograms can hold."""

Span = tuple[float, float]
"""(start, end) on the run clock, start < end."""
SpansBySource = dict[str, list[Span]]


def union(spans: Iterable[Span]) -> list[Span]:
    """The spans joined where they overlap, sorted; spans that only touch stay apart."""
    merged: list[Span] = []
    for start, end in sorted(spans):
        # Spans that only touch stay apart: they touch at a completion, which ends a stall.
        if merged and start < merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def intersect(a: list[Span], b: list[Span]) -> list[Span]:
    """The parts covered by both ``a`` and ``b`` (each sorted and disjoint, as ``union`` gives)."""
    out: list[Span] = []
    i = j = 0
    while i < len(a) and j < len(b):
        start = max(a[i][0], b[j][0])
        end = min(a[i][1], b[j][1])
        if end > start:
            out.append((start, end))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return out


def longest_common_stall(
    quiet: SpansBySource, stalled: SpansBySource, sources: Iterable[str]
) -> Span | None:
    """The longest span quiet in every source (and every key of ``quiet``) and stalled in some.

    A source in ``sources`` without quiet spans never went quiet: it rules out any stall.
    """
    spans = union(span for per_source in stalled.values() for span in per_source)
    if not spans:
        return None
    for source in set(sources) | set(quiet):
        spans = intersect(spans, union(quiet.get(source, [])))
    if not spans:
        return None
    return max(spans, key=lambda s: s[1] - s[0])


class StallTracker:
    """The quiet spans of one process's completions, plus those of merged shares.

    ``record``'s hot path is inlined in ``LatencyRecorder.record``: it reads and writes
    ``last_completion`` and looks at ``quiet[-1]``, and calls ``note_completion`` only when a
    span starts or a pending request reaches back into one.
    """

    __slots__ = (
        "_shared_quiet",
        "_shared_stalled",
        "last_completion",
        "quiet",
        "source",
        "sources",
    )

    def __init__(self, *, start: float, source: str) -> None:
        """``start``: the run's start on the run clock; ``source`` names this process."""
        self.source = source
        self.last_completion = start
        # This process's quiet spans: [previous completion, next completion, in flight from],
        # in completion order; "in flight from" is the earliest start of a request that was
        # pending across the span (== the span's end while none is known to have been).
        self.quiet: list[list[float]] = []
        # Merged shares' spans by source: quiet (no completion) and stalled (quiet, in flight).
        self._shared_quiet: SpansBySource = {}
        self._shared_stalled: SpansBySource = {}
        # Sources that recorded requests: one that never went quiet rules out a stall.
        self.sources: set[str] = set()

    def note_completion(self, end: float, latency_s: float) -> None:
        """A request sent at ``end - latency_s`` completed at ``end`` (the slow path)."""
        quiet = self.quiet
        if end >= self.last_completion:
            if end - self.last_completion >= STALL_FLOOR_S:
                quiet.append([self.last_completion, end, end])
                if len(quiet) > MAX_GAPS:
                    self._trim_quiet()
            self.last_completion = end
        # The request completing now was in flight since ``sent``: every quiet span it overlaps
        # had work pending, also spans that ended before now (a slow request that outlived a
        # few fast ones). Spans are in completion order, so this usually looks at one entry.
        sent = end - latency_s
        for span in reversed(quiet):
            if span[1] <= sent:
                break
            span[2] = max(span[0], min(span[2], sent))

    def _trim_quiet(self) -> None:
        # Keep the longest half, still in completion order.
        longest = sorted(self.quiet, key=lambda q: q[1] - q[0], reverse=True)[: MAX_GAPS // 2]
        self.quiet = sorted(longest, key=lambda q: q[1])

    def finish(self, *, end: float, in_flight: int) -> None:
        """The run ends at ``end``: with requests in flight, the silence since the last
        completion is a stall too (a freeze that lasted until the end of the run)."""
        if end - self.last_completion >= STALL_FLOOR_S:
            # When the pending requests were sent is unknown: count them from the last completion.
            pending_from = self.last_completion if in_flight > 0 else end
            self.quiet.append([self.last_completion, end, pending_from])
            self.last_completion = end

    def spans_by_source(self) -> tuple[SpansBySource, SpansBySource]:
        """Quiet and stalled spans by source: the merged shares' and this process's own."""
        quiet = {source: list(spans) for source, spans in self._shared_quiet.items()}
        stalled = {source: list(spans) for source, spans in self._shared_stalled.items()}
        if self.quiet:
            quiet.setdefault(self.source, []).extend((q[0], q[1]) for q in self.quiet)
            stalled.setdefault(self.source, []).extend(
                (q[2], q[1]) for q in self.quiet if q[2] < q[1]
            )
        return quiet, stalled

    def longest_stall(self, *, run_start: float) -> Stall | None:
        """The longest stall of the run (see the module), in seconds since ``run_start``."""
        quiet, stalled = self.spans_by_source()
        span = longest_common_stall(quiet, stalled, self.sources)
        if span is None:
            return None
        start, end = span
        if end - start < STALL_FLOOR_S:
            # Every request is "in flight with nothing completing" for part of its own latency;
            # that is latency, not a stall.
            return None
        return Stall(
            start_s=round(start - run_start, 6),
            end_s=round(end - run_start, 6),
            duration_s=round(end - start, 6),
        )

    def merge(self, *, quiet: SpansBySource, stalled: SpansBySource, sources: list[str]) -> None:
        """Add another tracker's spans (``spans_by_source``) and the sources it heard from."""
        self.sources.update(sources)
        for source, spans in quiet.items():
            _add_spans(self._shared_quiet.setdefault(source, []), spans)
        for source, spans in stalled.items():
            _add_spans(self._shared_stalled.setdefault(source, []), spans)

    def drain(self) -> None:
        """Forget what was shipped, except recent quiet spans and the last completion.

        The last completion is kept, so a stall across two reports is still seen whole. Recent
        quiet spans are kept (and shipped again), because a request completing later may show
        that work was pending in them; shipping a span twice changes nothing.
        """
        horizon = self.last_completion - RESHIP_WINDOW_S
        self.quiet = [q for q in self.quiet if q[1] > horizon]
        self._shared_quiet = {}
        self._shared_stalled = {}
        self.sources = set()


def _add_spans(target: list[Span], spans: list[Span]) -> None:
    target.extend((float(start), float(end)) for start, end in spans)
    if len(target) > 2 * MAX_GAPS:
        # Re-shipped spans repeat: join them, then keep the longest if there are still too many.
        target[:] = union(target)
        if len(target) > MAX_GAPS:
            target[:] = sorted(sorted(target, key=lambda g: g[1] - g[0])[-MAX_GAPS:])

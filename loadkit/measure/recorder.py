"""The measurement core: every latency into HDR histograms, every error by endpoint and kind.

Pure: no I/O, no clock of its own. Callers pass times in seconds on one run clock (see
``RunClock``) and latencies in seconds; the recorder turns them into integer microseconds, the unit
of its histograms (1 µs to 60 s, 3 significant digits). Values outside that range are clamped to it
and counted, never dropped.

Recorders merge exactly: ``to_share()`` encodes everything (histograms in the HdrHistogram V2
encoding) into plain data that crosses process boundaries (Locust's worker reports), and
``merge_share()`` adds it, so N processes' shares add up to what one process would have recorded.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from loadkit.exceptions import InputError
from loadkit.measure.histogram import LatencyHistogram, us_to_ms
from loadkit.measure.results import (
    EncodedHistogram,
    EndpointResults,
    ErrorGroup,
    Stall,
    TimelinePoint,
    Totals,
)

STALL_FLOOR_S = 0.1
"""Gaps between completions shorter than this are not kept: countless, and no gate cares."""
MAX_GAPS = 10_000
"""At most this many gaps are kept per source (the longest ones), so memory stays flat."""
RESHIP_WINDOW_S = 120.0
"""``drain_share`` keeps (and ships again) gaps this recent: a request still in flight may yet
show that one of them was a stall. Longer than any latency the histograms can hold (60 s)."""

SHARE_VERSION = 1

TRACE_ID_SAMPLE = 20
"""Trace ids kept per (endpoint, kind) group: enough to follow a few into the service's logs."""


class RunClock:
    """Seconds since the epoch, advanced by a monotonic clock.

    Durations measured on it are monotonic (immune to wall-clock steps), while readings from
    processes on one machine still line up, which the merge of distributed shares relies on.
    """

    def __init__(self) -> None:
        self._wall0 = time.time()
        self._mono0 = time.perf_counter()

    def now(self) -> float:
        """The current time on this clock, in seconds since the epoch."""
        return self._wall0 + (time.perf_counter() - self._mono0)


@dataclass(slots=True)
class _Endpoint:
    histogram: LatencyHistogram = field(default_factory=LatencyHistogram)
    ok: int = 0
    errors: int = 0


@dataclass
class _ErrorGroupState:
    count: int = 0
    status_codes: Counter[str] = field(default_factory=Counter)
    example_trace_id: str | None = None
    example_message: str | None = None
    first: float = float("inf")
    last: float = float("-inf")
    trace_ids: list[str] = field(default_factory=list)

    def add(
        self,
        *,
        count: int,
        statuses: dict[str, int],
        trace_id: str | None,
        message: str | None,
        first: float,
        last: float,
        trace_ids: list[str] | None = None,
    ) -> None:
        self.count += count
        self.status_codes.update(statuses)
        if self.example_trace_id is None and trace_id:
            self.example_trace_id = trace_id
        for candidate in (trace_id, *(trace_ids or ())):
            if len(self.trace_ids) >= TRACE_ID_SAMPLE:
                break
            if candidate and candidate not in self.trace_ids:
                self.trace_ids.append(candidate)
        if self.example_message is None and message:
            self.example_message = message
        self.first = min(self.first, first)
        self.last = max(self.last, last)


@dataclass(slots=True)
class _Second:
    completions: int = 0
    errors: int = 0
    histograms: list[EncodedHistogram] = field(default_factory=list)


@dataclass(frozen=True)
class SecondStats:
    """What completed in one closed second (for live progress lines)."""

    t: int
    completions: int
    errors: int
    p95_ms: float | None


class LatencyRecorder:
    """Records request outcomes of one run (or of one process's share of it)."""

    def __init__(self, *, start: float, source: str = "local") -> None:
        """``start``: the run's start on the run clock; ``source`` names this process's share."""
        self.start = start
        self.source = source
        self.end: float | None = None
        self._endpoints: dict[str, _Endpoint] = {}
        self._errors: dict[tuple[str, str], _ErrorGroupState] = {}
        self._seconds: dict[int, _Second] = {}
        self._open_t: int | None = None
        self._open = _Second()
        self._open_hist = LatencyHistogram()
        self._last_closed: SecondStats | None = None
        self._last_completion = start
        # This process's quiet spans: [previous completion, next completion, in flight from],
        # in completion order; "in flight from" is the earliest start of a request that was
        # pending across the span (== the span's end while none is known to have been).
        self._quiet: list[list[float]] = []
        # Merged shares' spans by source: quiet (no completion) and stalled (quiet, in flight).
        self._shared_quiet: dict[str, list[tuple[float, float]]] = {}
        self._shared_stalls: dict[str, list[tuple[float, float]]] = {}
        # Shares that recorded requests: one that never went quiet rules out a merged stall.
        self._sources: set[str] = set()

    # --- recording -------------------------------------------------------------------------

    def record(
        self,
        *,
        endpoint: str,
        latency_s: float,
        end: float,
        error_kind: str | None = None,
        status: int | None = None,
        trace_id: str | None = None,
        message: str | None = None,
    ) -> None:
        """Record one completed request: ``end`` on the run clock, ``error_kind`` None when ok."""
        latency_us = latency_s * 1_000_000.0
        self._sources.add(self.source)
        state = self._endpoints.get(endpoint)
        if state is None:
            state = self._endpoints[endpoint] = _Endpoint()
        state.histogram.record_us(latency_us)
        failed = error_kind is not None
        if failed:
            state.errors += 1
            key = (endpoint, str(error_kind))
            group = self._errors.get(key)
            if group is None:
                group = self._errors[key] = _ErrorGroupState()
            group.add(
                count=1,
                statuses={str(status) if status is not None else "none": 1},
                trace_id=trace_id,
                message=message,
                first=end,
                last=end,
            )
        else:
            state.ok += 1
        # This runs once per request in the load generator: the open second and the gap
        # bookkeeping are inlined (_record_second, _record_gap) and quick exits come first.
        t = int(end - self.start)
        if t != self._open_t or t < 0:
            self._record_second(end, latency_us, failed)
        else:
            second = self._open
            second.completions += 1
            if failed:
                second.errors += 1
            self._open_hist.record_us(latency_us)
        if end >= self._last_completion and end - self._last_completion < STALL_FLOOR_S:
            self._last_completion = end
            if not self._quiet or self._quiet[-1][1] <= end - latency_s:
                return  # no quiet span to mark as stalled: the common case
        self._record_gap(end, latency_s)

    def _record_second(self, end: float, latency_us: float, failed: bool) -> None:
        t = max(int(end - self.start), 0)
        if self._open_t is None:
            self._open_t = t
        elif t > self._open_t:
            self._close_open_second()
            self._open_t = t
        # A completion stamped before the open second (out of order) is counted in the open one:
        # requests complete in time order within one process, so this only absorbs clock jitter.
        self._open.completions += 1
        if failed:
            self._open.errors += 1
        self._open_hist.record_us(latency_us)

    def _close_open_second(self) -> None:
        if self._open_t is None:
            return
        if self._open.completions:
            p95 = self._open_hist.percentiles_us((95.0,)).get(95.0)
            self._last_closed = SecondStats(
                t=self._open_t,
                completions=self._open.completions,
                errors=self._open.errors,
                p95_ms=us_to_ms(p95),
            )
            self._open.histograms.append(self._open_hist.encode())
            self._merge_second(self._open_t, self._open)
        self._open = _Second()
        self._open_hist = LatencyHistogram()
        self._open_t = None

    def _merge_second(self, t: int, second: _Second) -> None:
        target = self._seconds.get(t)
        if target is None:
            self._seconds[t] = second
            return
        target.completions += second.completions
        target.errors += second.errors
        target.histograms.extend(second.histograms)

    def _record_gap(self, end: float, latency_s: float) -> None:
        quiet = self._quiet
        if end >= self._last_completion:
            if end - self._last_completion >= STALL_FLOOR_S:
                quiet.append([self._last_completion, end, end])
                if len(quiet) > MAX_GAPS:
                    self._trim_quiet()
            self._last_completion = end
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
        longest = sorted(self._quiet, key=lambda q: q[1] - q[0], reverse=True)[: MAX_GAPS // 2]
        self._quiet = sorted(longest, key=lambda q: q[1])

    def finish(self, *, end: float, in_flight: int = 0) -> None:
        """Close the run at ``end``; with requests still in flight, the silence since the last
        completion is a stall too (a freeze that lasted until the end of the run)."""
        self._close_open_second()
        if end - self._last_completion >= STALL_FLOOR_S:
            # When the pending requests were sent is unknown: count them from the last completion.
            pending_from = self._last_completion if in_flight > 0 else end
            self._quiet.append([self._last_completion, end, pending_from])
            self._last_completion = end
        self.end = end if self.end is None else max(self.end, end)

    @property
    def last_second(self) -> SecondStats | None:
        """The most recent closed second (what a live progress line shows)."""
        return self._last_closed

    # --- reading ---------------------------------------------------------------------------

    @property
    def requests(self) -> int:
        """Requests recorded so far (ok and failed)."""
        return sum(e.ok + e.errors for e in self._endpoints.values())

    @property
    def errors(self) -> int:
        """Failed requests recorded so far."""
        return sum(e.errors for e in self._endpoints.values())

    def overall_histogram(self) -> LatencyHistogram:
        """All endpoints' latencies in one histogram."""
        total = LatencyHistogram()
        for state in self._endpoints.values():
            total.add(state.histogram)
        return total

    def duration_s(self) -> float:
        """Seconds from start to ``finish()`` (0 before it)."""
        return max((self.end or self.start) - self.start, 0.0)

    def totals(self) -> Totals:
        """Request counts and rates over the run."""
        requests = self.requests
        errors = self.errors
        duration = self.duration_s()
        return Totals(
            requests=requests,
            ok=requests - errors,
            errors=errors,
            error_rate=errors / requests if requests else 0.0,
            rps=requests / duration if duration > 0 else 0.0,
        )

    def endpoint_results(self) -> list[EndpointResults]:
        """Per-endpoint figures, busiest endpoint first."""
        rows = []
        for name, state in self._endpoints.items():
            requests = state.ok + state.errors
            rows.append(
                EndpointResults(
                    name=name,
                    requests=requests,
                    ok=state.ok,
                    errors=state.errors,
                    error_rate=state.errors / requests if requests else 0.0,
                    latency_ms=state.histogram.summary(),
                    histogram=state.histogram.encode(),
                )
            )
        rows.sort(key=lambda r: (-r.requests, r.name))
        return rows

    def error_groups(self) -> list[ErrorGroup]:
        """Errors grouped by (endpoint, kind), most frequent first."""
        groups = [
            ErrorGroup(
                endpoint=endpoint,
                kind=kind,
                count=state.count,
                status_codes=dict(sorted(state.status_codes.items())),
                example_trace_id=state.example_trace_id,
                example_message=state.example_message,
                trace_ids=list(state.trace_ids),
                first_s=round(max(state.first - self.start, 0.0), 6),
                last_s=round(max(state.last - self.start, 0.0), 6),
            )
            for (endpoint, kind), state in self._errors.items()
        ]
        groups.sort(key=lambda g: (-g.count, g.endpoint, g.kind))
        return groups

    def timeline(self) -> list[TimelinePoint]:
        """One point per second from the start to the end, seconds with no completion included."""
        self._close_open_second()
        last = max(self._seconds, default=-1)
        if self.end is not None:
            last = max(last, int(self.duration_s()) - (1 if self.duration_s().is_integer() else 0))
        points = []
        for t in range(0, last + 1):
            second = self._seconds.get(t)
            if second is None or second.completions == 0:
                points.append(TimelinePoint(t_s=t, completions=0, errors=0, p95_ms=None))
                continue
            histogram = LatencyHistogram()
            for encoded in second.histograms:
                histogram.add(LatencyHistogram.decode(encoded))
            # Keep one merged histogram per second from now on: later calls are cheaper.
            second.histograms = [histogram.encode()]
            p95 = histogram.percentiles_us((95.0,)).get(95.0)
            points.append(
                TimelinePoint(
                    t_s=t,
                    completions=second.completions,
                    errors=second.errors,
                    p95_ms=us_to_ms(p95),
                )
            )
        return points

    def longest_stall(self) -> Stall | None:
        """The longest span with no completion anywhere while requests were in flight.

        With several shares (processes), a span counts when no share completed anything in it
        (the intersection of their quiet spans) and some share had a request in flight (the
        union of their stalled spans). Each share needs its own ``source`` name. Quiet spans
        under ``STALL_FLOOR_S`` are not tracked.
        """
        quiet_by_source, stalls_by_source = self._spans_by_source()
        stalled = _union([s for spans in stalls_by_source.values() for s in spans])
        if not stalled:
            return None
        spans = stalled
        for source in self._sources | set(quiet_by_source):
            spans = _intersect(spans, _union(quiet_by_source.get(source, [])))
        if not spans:
            return None
        start, end = max(spans, key=lambda s: s[1] - s[0])
        if end - start < STALL_FLOOR_S:
            # Every request is "in flight with nothing completing" for part of its own latency;
            # that is latency, not a stall.
            return None
        return Stall(
            start_s=round(start - self.start, 6),
            end_s=round(end - self.start, 6),
            duration_s=round(end - start, 6),
        )

    def _spans_by_source(
        self,
    ) -> tuple[dict[str, list[tuple[float, float]]], dict[str, list[tuple[float, float]]]]:
        quiet = {source: list(spans) for source, spans in self._shared_quiet.items()}
        stalls = {source: list(spans) for source, spans in self._shared_stalls.items()}
        if self._quiet:
            quiet.setdefault(self.source, []).extend((q[0], q[1]) for q in self._quiet)
            stalls.setdefault(self.source, []).extend(
                (q[2], q[1]) for q in self._quiet if q[2] < q[1]
            )
        return quiet, stalls

    # --- merging ---------------------------------------------------------------------------

    def to_share(self) -> dict[str, Any]:
        """Everything recorded, as plain data (JSON/msgpack-safe) for ``merge_share``."""
        self._close_open_second()
        quiet, stalls = self._spans_by_source()
        return {
            "version": SHARE_VERSION,
            "source": self.source,
            "start": self.start,
            "end": self.end,
            "endpoints": {
                name: {
                    "ok": state.ok,
                    "errors": state.errors,
                    "histogram": state.histogram.encode().model_dump(),
                }
                for name, state in self._endpoints.items()
            },
            "errors": [
                {
                    "endpoint": endpoint,
                    "kind": kind,
                    "count": state.count,
                    "status_codes": dict(state.status_codes),
                    "example_trace_id": state.example_trace_id,
                    "example_message": state.example_message,
                    "trace_ids": list(state.trace_ids),
                    "first": state.first,
                    "last": state.last,
                }
                for (endpoint, kind), state in self._errors.items()
            ],
            "seconds": {
                str(t): {
                    "completions": s.completions,
                    "errors": s.errors,
                    "histograms": [h.model_dump() for h in s.histograms],
                }
                for t, s in self._seconds.items()
            },
            # Stalled spans ("gaps") and quiet spans by source; see longest_stall.
            "gaps": {source: [list(g) for g in gaps] for source, gaps in stalls.items()},
            "quiet": {source: [list(g) for g in spans] for source, spans in quiet.items()},
            "sources": sorted(self._sources),
        }

    def drain_share(self) -> dict[str, Any]:
        """``to_share()``, then forget what was shared (a worker's periodic report).

        The clock state (last completion) is kept, so a stall across two reports is still seen
        whole; spans are shipped as they are found and the receiver joins them per source. Recent
        quiet spans are kept and shipped again, because a request completing later may show that
        work was pending in them; shipping a span twice changes nothing.
        """
        share = self.to_share()
        self._endpoints = {}
        self._errors = {}
        self._seconds = {}
        horizon = self._last_completion - RESHIP_WINDOW_S
        self._quiet = [q for q in self._quiet if q[1] > horizon]
        self._shared_quiet = {}
        self._shared_stalls = {}
        self._sources = set()
        return share

    def merge_share(self, share: dict[str, Any]) -> None:
        """Add a share from ``to_share()``/``drain_share()`` of another recorder (exact)."""
        if share.get("version") != SHARE_VERSION:
            raise InputError(f"recorder share version {share.get('version')!r} is not supported")
        start_shift = float(share["start"]) - self.start
        for name, data in share["endpoints"].items():
            state = self._endpoints.get(name)
            if state is None:
                state = self._endpoints[name] = _Endpoint()
            state.ok += int(data["ok"])
            state.errors += int(data["errors"])
            encoded = EncodedHistogram.model_validate(data["histogram"])
            state.histogram.add(LatencyHistogram.decode(encoded))
        for data in share["errors"]:
            key = (str(data["endpoint"]), str(data["kind"]))
            group = self._errors.get(key)
            if group is None:
                group = self._errors[key] = _ErrorGroupState()
            group.add(
                count=int(data["count"]),
                statuses={str(k): int(v) for k, v in data["status_codes"].items()},
                trace_id=data["example_trace_id"],
                message=data["example_message"],
                first=float(data["first"]),
                last=float(data["last"]),
                trace_ids=[str(t) for t in data.get("trace_ids", ())],
            )
        for t_text, data in share["seconds"].items():
            # Seconds are counted from each share's own start; shift onto this recorder's.
            t = max(int(int(t_text) + start_shift), 0)
            self._merge_second(
                t,
                _Second(
                    completions=int(data["completions"]),
                    errors=int(data["errors"]),
                    histograms=[EncodedHistogram.model_validate(h) for h in data["histograms"]],
                ),
            )
        self._sources.update(str(source) for source in share["sources"])
        # A share without "quiet" spans (none are written so) is read as quiet only where stalled.
        quiet = share.get("quiet", share["gaps"])
        for source, spans in quiet.items():
            _add_spans(self._shared_quiet.setdefault(str(source), []), spans)
        for source, spans in share["gaps"].items():
            _add_spans(self._shared_stalls.setdefault(str(source), []), spans)
        if share.get("end") is not None:
            end = float(share["end"])
            self.end = end if self.end is None else max(self.end, end)

    def traffic_fields(self) -> dict[str, Any]:
        """What every results file of requests carries, measured here: the keyword arguments of
        ``SmokeResults``/``LoadResults`` besides target, config and kind-specific fields."""
        overall = self.overall_histogram()
        return {
            "started_at": self.started_at,
            "duration_s": round(self.duration_s(), 6),
            "totals": self.totals(),
            "latency_ms": overall.summary(),
            "histogram": overall.encode(),
            "endpoints": self.endpoint_results(),
            "errors": self.error_groups(),
            "timeline": self.timeline(),
            "longest_stall": self.longest_stall(),
        }

    @property
    def started_at(self) -> datetime:
        """The run's start as an aware UTC datetime."""
        return datetime.fromtimestamp(self.start, tz=UTC)


def _add_spans(target: list[tuple[float, float]], spans: list[list[float]]) -> None:
    target.extend((float(start), float(end)) for start, end in spans)
    if len(target) > 2 * MAX_GAPS:
        # Re-shipped spans repeat: join them, then keep the longest if there are still too many.
        target[:] = _union(target)
        if len(target) > MAX_GAPS:
            target[:] = sorted(sorted(target, key=lambda g: g[1] - g[0])[-MAX_GAPS:])


def _union(spans: list[tuple[float, float]]) -> list[tuple[float, float]]:
    merged: list[tuple[float, float]] = []
    for start, end in sorted(spans):
        # Spans that only touch stay apart: they touch at a completion, which ends a stall.
        if merged and start < merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _intersect(
    a: list[tuple[float, float]], b: list[tuple[float, float]]
) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
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

"""The measurement core: every latency into HDR histograms, every error by endpoint and kind.

Pure: no I/O, no clock of its own. Callers pass times in seconds on one run clock (see
``RunClock``) and latencies in seconds; the recorder turns them into integer microseconds, the unit
of its histograms (1 µs to 60 s, 3 significant digits). Values outside that range are clamped to it
and counted, never dropped.

A recorder keeps the per-endpoint histograms itself and composes three parts, each in its own
module: the error groups (``error_groups``), the per-second timeline (``timeline``) and the stall
tracker (``stalls``). Its readers never change it; ``finish`` and ``drain_share`` do, and say so.

Recorders merge exactly: ``to_share()`` gives a ``WorkerShare`` (histograms in the HdrHistogram
V2 encoding) that crosses process boundaries (Locust's worker reports), and ``merge_share()``
adds it, so N processes' shares add up to what one process would have recorded.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from loadkit.measure.error_groups import ErrorGroups
from loadkit.measure.histogram import LatencyHistogram
from loadkit.measure.results import (
    EndpointResults,
    ErrorGroup,
    Stall,
    TimelinePoint,
    Totals,
)
from loadkit.measure.stalls import STALL_FLOOR_S, StallTracker
from loadkit.measure.timeline import ClosedSecond, SecondStats, Timeline
from loadkit.measure.worker_share import (
    EndpointShare,
    ErrorGroupShare,
    SecondShare,
    WorkerShare,
)


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


class LatencyRecorder:
    """Records request outcomes of one run (or of one process's share of it)."""

    def __init__(self, *, start: float, source: str = "local") -> None:
        """``start``: the run's start on the run clock; ``source`` names this process's share."""
        self.start = start
        self.source = source
        self.end: float | None = None
        self._endpoints: dict[str, _Endpoint] = {}
        self._errors = ErrorGroups()
        self._timeline = Timeline(start=start)
        self._stalls = StallTracker(start=start, source=source)

    # --- recording (mutates) ---------------------------------------------------------------

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
        state = self._endpoints.get(endpoint)
        if state is None:
            state = self._endpoints[endpoint] = _Endpoint()
        state.histogram.record_us(latency_us)
        failed = error_kind is not None
        if failed:
            state.errors += 1
            self._errors.add_error(
                endpoint=endpoint,
                kind=str(error_kind),
                status=status,
                trace_id=trace_id,
                message=message,
                end=end,
            )
        else:
            state.ok += 1
        # This runs once per request in the load generator: the timeline's open second and the
        # stall tracker's common case are inlined here, quick exits first; their own methods
        # take the rest (a new second, a quiet span).
        t = int(end - self.start)
        second = self._timeline.open
        if second is None or t != second.t or t < 0:
            self._add_to_new_second(end, latency_us, failed)
        else:
            second.completions += 1
            if failed:
                second.errors += 1
            second.histogram.record_us(latency_us)
        stalls = self._stalls
        last = stalls.last_completion
        if end >= last and end - last < STALL_FLOOR_S:
            stalls.last_completion = end
            quiet = stalls.quiet
            if not quiet or quiet[-1][1] <= end - latency_s:
                return  # no quiet span to mark as stalled: the common case
        stalls.note_completion(end, latency_s)

    def _add_to_new_second(self, end: float, latency_us: float, failed: bool) -> None:
        # This process recorded requests: noted here, off the hot path, which is enough because
        # the first record after the start and after every drain (which closes the open second)
        # comes this way.
        self._stalls.sources.add(self.source)
        self._timeline.add(end, latency_us, failed)

    def finish(self, *, end: float, in_flight: int = 0) -> None:
        """Close the run at ``end``; with requests still in flight, the silence since the last
        completion is a stall too (a freeze that lasted until the end of the run)."""
        self._timeline.close_open_second()
        self._stalls.finish(end=end, in_flight=in_flight)
        self.end = end if self.end is None else max(self.end, end)

    # --- reading (never mutates) -----------------------------------------------------------

    @property
    def last_second(self) -> SecondStats | None:
        """The most recent closed second (what a live progress line shows)."""
        return self._timeline.last_closed

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
        return self._errors.results(run_start=self.start)

    def timeline(self) -> list[TimelinePoint]:
        """One point per second from the start to the end, seconds with no completion included."""
        return self._timeline.points(duration_s=self.duration_s() if self.end is not None else None)

    def longest_stall(self) -> Stall | None:
        """The longest span with no completion anywhere while requests were in flight.

        With several shares (processes), a span counts when no share completed anything in it
        (the intersection of their quiet spans) and some share had a request in flight (the
        union of their stalled spans). Each share needs its own ``source`` name. Quiet spans
        under ``STALL_FLOOR_S`` are not tracked.
        """
        return self._stalls.longest_stall(run_start=self.start)

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

    # --- merging ---------------------------------------------------------------------------

    def to_share(self) -> WorkerShare:
        """Everything recorded, for ``merge_share`` in another recorder (the open second
        included as it stands)."""
        quiet, stalled = self._stalls.spans_by_source()
        return WorkerShare(
            source=self.source,
            start=self.start,
            end=self.end,
            endpoints={
                name: EndpointShare(
                    ok=state.ok, errors=state.errors, histogram=state.histogram.encode()
                )
                for name, state in self._endpoints.items()
            },
            errors=[
                ErrorGroupShare(
                    endpoint=endpoint,
                    kind=kind,
                    count=state.count,
                    status_codes=dict(state.status_codes),
                    example_trace_id=state.example_trace_id,
                    example_message=state.example_message,
                    trace_ids=list(state.trace_ids),
                    first=state.first,
                    last=state.last,
                )
                for (endpoint, kind), state in self._errors.items()
            ],
            seconds=[
                SecondShare(
                    t=t, completions=s.completions, errors=s.errors, histograms=s.histograms
                )
                for t, s in self._timeline.closed_seconds().items()
            ],
            quiet=quiet,
            stalled=stalled,
            sources=sorted(self._stalls.sources),
        )

    def drain_share(self) -> WorkerShare:
        """Close the open second, take ``to_share()``, then forget what it holds (a worker's
        periodic report).

        The stall tracker keeps the last completion and recent quiet spans (see
        ``StallTracker.drain``), so a stall across two reports is still seen whole.
        """
        self._timeline.close_open_second()
        share = self.to_share()
        self._endpoints = {}
        self._errors = ErrorGroups()
        self._timeline.clear_closed()
        self._stalls.drain()
        return share

    def merge_share(self, share: WorkerShare) -> None:
        """Add a share from ``to_share()``/``drain_share()`` of another recorder (exact)."""
        start_shift = share.start - self.start
        for name, data in share.endpoints.items():
            state = self._endpoints.get(name)
            if state is None:
                state = self._endpoints[name] = _Endpoint()
            state.ok += data.ok
            state.errors += data.errors
            state.histogram.add(LatencyHistogram.decode(data.histogram))
        for group in share.errors:
            self._errors.group(group.endpoint, group.kind).add(
                count=group.count,
                statuses=group.status_codes,
                trace_id=group.example_trace_id,
                message=group.example_message,
                first=group.first,
                last=group.last,
                trace_ids=group.trace_ids,
            )
        for second in share.seconds:
            # Seconds are counted from each share's own start; shift onto this recorder's.
            t = max(int(second.t + start_shift), 0)
            self._timeline.merge_second(
                t, ClosedSecond(second.completions, second.errors, list(second.histograms))
            )
        self._stalls.merge(quiet=share.quiet, stalled=share.stalled, sources=share.sources)
        if share.end is not None:
            self.end = share.end if self.end is None else max(self.end, share.end)

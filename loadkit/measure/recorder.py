"""The measurement core: every latency into HDR histograms, every error by endpoint and kind.

Pure: no I/O, no clock of its own. Callers pass times in seconds on one run clock (see
``RunClock``) and latencies in seconds; the recorder turns them into integer microseconds, the unit
of its histograms (1 µs to 60 s, 3 significant digits). Values outside that range are clamped to it
and counted, never dropped.

A recorder keeps the per-endpoint figures itself (``tally``) and composes its other parts, each in
its own module: the error groups (``error_groups``), the per-second timeline (``timeline``), the
stall tracker (``stalls``), and for runs that have them the per-stage figures (``stage_figures``)
and the open model's timetable figures (``schedule``). Its readers never change it; ``finish``
and ``drain_share`` do, and say so.

Two times per request in an open-model run (DESIGN.md, measurement rules): the **response time**
(``latency_s``, from when the request was due: the headline, in the histograms, the timeline and
the gate's latency metrics) and the **service time** (``service_s``, from the send: kept beside
it). In a closed-model run the two are one (``service_s`` None) and the recorder costs what it
always did. Iterations an open run never sent are ``not_sent`` errors (``record_not_sent``).

Recorders merge exactly: ``to_share()`` gives a ``WorkerShare`` (histograms in the HdrHistogram
V2 encoding) that crosses process boundaries (Locust's worker reports), and ``merge_share()``
adds it, so N processes' shares add up to what one process would have recorded.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterator, Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any

from loadkit.exceptions import InputError
from loadkit.measure.error_groups import ErrorGroups
from loadkit.measure.histogram import PENDING_LIMIT, LatencyHistogram
from loadkit.measure.kinds import NOT_SENT_ENDPOINT, ErrorKind
from loadkit.measure.results import (
    EndpointResults,
    ErrorGroup,
    ScheduleResults,
    StageResults,
    Stall,
    TimelinePoint,
    Totals,
)
from loadkit.measure.schedule import ScheduleStats, combine, schedule_results
from loadkit.measure.stage_figures import StageFigures
from loadkit.measure.stalls import STALL_FLOOR_S, StallTracker
from loadkit.measure.tally import Tally
from loadkit.measure.timeline import ClosedSecond, SecondStats, Timeline
from loadkit.measure.worker_share import (
    ErrorGroupShare,
    ScheduleShare,
    SecondShare,
    WorkerShare,
)
from loadkit.stages import Stage

NOT_SENT_MESSAGE = "due, but still waiting for a free user when the run ended: never sent"


class RunClock:
    """Seconds since the epoch, advanced by a monotonic clock.

    Durations measured on it are monotonic (immune to wall-clock steps), while readings from
    processes on one machine still line up, which the merge of distributed shares relies on; a
    worker on another machine takes its master's reading instead (``align_to``).
    """

    def __init__(self, *, offset_s: float = 0.0) -> None:
        """``offset_s``: added to this machine's wall clock (a distributed worker's, to read
        its master's clock: see ``align_to``)."""
        self._wall0 = time.time() + offset_s
        self._mono0 = time.perf_counter()

    def now(self) -> float:
        """The current time on this clock, in seconds since the epoch."""
        return self._wall0 + (time.perf_counter() - self._mono0)

    def align_to(self, reference_now: float) -> None:
        """Read ``reference_now`` at this moment from now on: a distributed worker takes its
        master's clock when the master's reading arrives (one network hop late, milliseconds),
        so that its share's times line up with the master's whatever its own wall clock says
        (docs/distributed.md, "Clocks")."""
        self._wall0 = reference_now
        self._mono0 = time.perf_counter()


class LatencyRecorder:
    """Records request outcomes of one run (or of one process's share of it)."""

    def __init__(
        self, *, start: float, source: str = "local", stages: Sequence[Stage] = ()
    ) -> None:
        """``start``: the run's start on the run clock; ``source`` names this process's share;
        ``stages``: the run's load stages, if any (each request is then also counted in the
        stage its response time began in: see ``stage_figures``)."""
        self.start = start
        self.span_start = start
        """Where the run's duration and its requests per second count from: the start, or an
        open run's timetable start (``count_span_from``)."""
        self.source = source
        self.end: float | None = None
        self._endpoints: dict[str, Tally] = {}
        self._errors = ErrorGroups()
        self._timeline = Timeline(start=start)
        self._stalls = StallTracker(start=start, source=source)
        self._stages = StageFigures(stages, start=start) if stages else None
        self._schedule: ScheduleStats | None = None
        self._schedules: dict[str, ScheduleStats] = {}
        self._spread: Callable[[Callable[[], None]], object] | None = None
        """Where a second's bookkeeping goes in pieces (``spread_second_close``); None: at once."""

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
        service_s: float | None = None,
    ) -> None:
        """Record one completed request: ``end`` on the run clock, ``error_kind`` None when ok.

        ``latency_s`` is the response time (the headline): in an open-model run from when the
        request was due, and ``service_s`` the time from its send; ``service_s`` None (every
        closed-model run) means the request was sent when due: both are ``latency_s``. A
        response time below the service time (a due time stamped after the send: clock jitter)
        counts from the send, since no request is sent before it is due.
        """
        state = self._endpoints.get(endpoint)
        if state is None:
            state = self._endpoints[endpoint] = Tally()
        failed = error_kind is not None
        # This runs once per request in the load generator: the timeline's open second is
        # updated inline, quick exits first (its own methods take the rest: a new second), and
        # apart on each path so that the closed model's pays nothing for service times.
        t = int(end - self.start)
        second = self._timeline.open
        if service_s is None and state.service is None:
            # The closed model's path, as cheap as before service times existed.
            latency_us = latency_s * 1_000_000.0
            state.histogram.record_us(latency_us)
            sent_s = latency_s
            if second is None or t != second.t or t < 0:
                self._add_to_new_second(end, latency_us, error_kind, None)
            else:
                second.completions += 1
                if failed:
                    # Failures only: the kind by second is what the report's errors chart stacks.
                    second.errors += 1
                    kinds = second.error_kinds
                    kind = str(error_kind)
                    kinds[kind] = kinds.get(kind, 0) + 1
                second.histogram.record_us(latency_us)
        else:
            service_us: float | None
            if service_s is None:
                sent_s = latency_s
                latency_us = latency_s * 1_000_000.0
                service_us = None
                state.record_response(latency_us)
            else:
                if latency_s < service_s:
                    latency_s = service_s
                sent_s = service_s
                latency_us = latency_s * 1_000_000.0
                service_us = service_s * 1_000_000.0
                state.record_timed(latency_us, service_us)
            if second is None or t != second.t or t < 0:
                self._add_to_new_second(end, latency_us, error_kind, service_us)
            else:
                second.add(latency_us, None if error_kind is None else str(error_kind), service_us)
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
        if self._stages is not None:
            self._add_to_stage(end - latency_s, latency_us, service_s, failed)
        # The stall tracker's common case inlined, quick exits first.
        # In flight from the send (the service time), not from the due time: an open-model
        # request waiting for a free user is not yet in flight.
        stalls = self._stalls
        last = stalls.last_completion
        if end >= last and end - last < STALL_FLOOR_S:
            stalls.last_completion = end
            quiet = stalls.quiet
            if not quiet or quiet[-1][1] <= end - sent_s:
                return  # no quiet span to mark as stalled: the common case
        stalls.note_completion(end, sent_s)

    def _add_to_stage(
        self, began: float, latency_us: float, service_s: float | None, failed: bool
    ) -> None:
        assert self._stages is not None
        tally = self._stages.tally_at(began)
        if failed:
            tally.errors += 1
        else:
            tally.ok += 1
        if service_s is None:
            tally.record_response(latency_us)
        else:
            tally.record_timed(latency_us, service_s * 1_000_000.0)

    def record_not_sent(self, *, count: int, due: Sequence[float] | None, end: float) -> None:
        """Open model: ``count`` iterations were still waiting for a free user when the run
        ended at ``end``; ``due`` their due times (run clock), or None when not known.

        Each is a ``not_sent`` error on the pseudo-endpoint ``(not sent)``, counted in requests
        and in the error rate. Its response time is its wait from its due time to ``end`` (0
        when ``due`` is None): a lower bound, since it would have waited longer still. It has
        no service time, is no completion (not in the timeline, ends no stall) and belongs to
        the stage it was due in. Call it once, with every iteration left.
        """
        if count < 0:
            raise ValueError(f"count of iterations not sent is negative ({count})")
        if due is not None and len(due) != count:
            raise ValueError(f"{len(due)} due times given for {count} iterations not sent")
        if count == 0:
            return
        state = self._endpoints.get(NOT_SENT_ENDPOINT)
        if state is None:
            state = self._endpoints[NOT_SENT_ENDPOINT] = Tally()
        stages = self._stages
        for index in range(count):
            due_at = due[index] if due is not None else end
            wait_us = max(end - due_at, 0.0) * 1_000_000.0
            state.record_unsent(wait_us)
            if stages is not None:
                stages.tally_at(due_at).record_unsent(wait_us)
        self._errors.group(NOT_SENT_ENDPOINT, ErrorKind.NOT_SENT.value).add(
            count=count,
            statuses={"none": count},
            trace_id=None,
            message=NOT_SENT_MESSAGE,
            first=end,
            last=end,
        )

    def start_stages_at(self, start: float) -> None:
        """Count the stages' times from ``start`` (run clock) instead of the recorder's start:
        the moment the load they describe began here (an open run's timetable starts once its
        users are spawned; a distributed one's at the master's common start). Call it before
        any request of the stages is recorded; without stages, nothing to do."""
        if self._stages is not None:
            self._stages.start = start

    def set_schedule(self, stats: ScheduleStats) -> None:
        """Open model: this process's timetable figures (kept by reference: the caller may go on
        updating them; every share and the results read them as they are then)."""
        self._schedule = stats

    def _add_to_new_second(
        self, end: float, latency_us: float, error_kind: str | None, service_us: float | None
    ) -> None:
        # This process recorded requests: noted here, off the hot path, which is enough because
        # the first record after the start and after every drain (which closes the open second)
        # comes this way.
        self._stalls.sources.add(self.source)
        timeline = self._timeline
        before = timeline.open
        timeline.add(end, latency_us, None if error_kind is None else str(error_kind), service_us)
        if before is not None and timeline.open is not before:
            self._sync_backlogs()

    def _sync_backlogs(self) -> None:
        # Once a second, the whole-run histograms whose values wait outside their HDR counts
        # past PENDING_LIMIT get them added in: here, off the per-request folds, and in pieces
        # when the second's closing is spread (adding 4,096 at once held the loop 1-2 ms).
        tallies = list(self._endpoints.values())
        if self._stages is not None:
            tallies.extend(self._stages.tallies.values())
        backlogged = [
            histogram
            for tally in tallies
            for histogram in (tally.histogram, tally.service, tally.unsent)
            if histogram is not None and histogram.backlog > PENDING_LIMIT
        ]
        if not backlogged:
            return
        pieces = _sync_pieces(backlogged)
        if self._spread is None:
            for _ in pieces:
                pass
        else:
            self._spread(partial(_next_piece, pieces, self._spread))

    def spread_second_close(self, schedule: Callable[[Callable[[], None]], object] | None) -> None:
        """Close each second of the timeline in pieces run by ``schedule`` (an event loop's
        ``call_soon``), not at once inside the record that opens the next second (1-8 ms at
        5,000-20,000 requests a second, every iteration due meanwhile late); None: at once
        again. What is read is the same either way: every reader finishes a closing first."""
        self._timeline.spread_closing(schedule)
        self._spread = schedule

    @property
    def second_closing(self) -> bool:
        """Whether a second's closing is still under way (``spread_second_close``): reading
        ``last_second`` now would finish it at once."""
        return self._timeline.closing

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

    @property
    def not_sent(self) -> int:
        """Open-model iterations recorded as never sent."""
        state = self._endpoints.get(NOT_SENT_ENDPOINT)
        return state.not_sent if state is not None else 0

    def overall_histogram(self) -> LatencyHistogram:
        """All endpoints' response times in one histogram (iterations never sent: their wait)."""
        total = LatencyHistogram()
        for state in self._endpoints.values():
            total.add(state.histogram)
            if state.unsent is not None:
                total.add(state.unsent)
        return total

    def overall_service_histogram(self) -> LatencyHistogram | None:
        """All sent requests' service times in one histogram; None when every one was its
        response time (a closed run)."""
        states = self._endpoints.values()
        if all(state.service is None for state in states):
            return None
        total = LatencyHistogram()
        for state in states:
            total.add(state.sent_service())
        return total

    def duration_s(self) -> float:
        """Seconds from start (an open run's timetable start) to ``finish()`` (0 before it)."""
        return max((self.end or self.span_start) - self.span_start, 0.0)

    def count_span_from(self, start: float) -> None:
        """An open run: its duration and requests per second count from ``start`` (run clock),
        its timetable's start, when nothing was due before (users spawning and running on_start,
        a distributed run's lead), not from the recorder's start; the timeline and the errors'
        times still count from the recorder's start."""
        self.span_start = max(self.start, start)

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

    def endpoint_results(self, only: Collection[str] | None = None) -> list[EndpointResults]:
        """Per-endpoint figures, busiest endpoint first (``only``: of those endpoints alone,
        for a reader that needs a few: each costs an encoding and a percentile scan)."""
        rows = []
        for name, state in self._endpoints.items():
            if only is not None and name not in only:
                continue
            requests = state.ok + state.errors
            response = state.response()
            rows.append(
                EndpointResults(
                    name=name,
                    requests=requests,
                    ok=state.ok,
                    errors=state.errors,
                    error_rate=state.errors / requests if requests else 0.0,
                    latency_ms=response.summary(),
                    histogram=response.encode(),
                    service_time_ms=state.service_summary(),
                    service_histogram=state.service_encoded(),
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
        service = self.overall_service_histogram()
        return {
            "started_at": self.started_at,
            "duration_s": round(self.duration_s(), 6),
            "totals": self.totals(),
            "latency_ms": overall.summary(),
            "histogram": overall.encode(),
            "service_time_ms": service.summary() if service is not None else None,
            "service_histogram": service.encode() if service is not None else None,
            "endpoints": self.endpoint_results(),
            "errors": self.error_groups(),
            "timeline": self.timeline(),
            "longest_stall": self.longest_stall(),
        }

    def schedule_results(self) -> ScheduleResults | None:
        """Open model: the run's timetable figures (every source's latest, added up); None in a
        closed run."""
        parts = dict(self._schedules)
        if self._schedule is not None:
            parts[self.source] = self._schedule
        stats = combine(parts.values())
        return None if stats is None else schedule_results(stats, not_sent=self.not_sent)

    def stage_results(self) -> list[StageResults] | None:
        """One summary per stage; None in a run without stages."""
        return None if self._stages is None else self._stages.results()

    def span_start_s(self) -> float | None:
        """Seconds from the recorder's start (the timeline's second 0) to the start of the span
        ``duration_s`` counts and the stages count from (``count_span_from``,
        ``start_stages_at``: an open run's timetable start); None when they coincide."""
        offset = round(self.span_start - self.start, 6)
        return offset if offset > 0 else None

    @property
    def started_at(self) -> datetime:
        """The run's start as an aware UTC datetime."""
        return datetime.fromtimestamp(self.start, tz=UTC)

    # --- merging ---------------------------------------------------------------------------

    def to_share(self, *, timeline: bool = True) -> WorkerShare:
        """Everything recorded, for ``merge_share`` in another recorder (the open second
        included as it stands). ``timeline=False``: without the per-second timeline and the
        stages (a live share judged each second: their cost grows with the run's length)."""
        quiet, stalled = self._stalls.spans_by_source()
        return WorkerShare(
            source=self.source,
            start=self.start,
            end=self.end,
            endpoints={name: state.to_share() for name, state in self._endpoints.items()},
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
                    t=t,
                    completions=s.completions,
                    errors=s.errors,
                    histograms=s.histograms,
                    error_kinds=s.error_kinds,
                    service_histograms=s.services,
                )
                for t, s in (self._timeline.closed_seconds() if timeline else {}).items()
            ],
            quiet=quiet,
            stalled=stalled,
            sources=sorted(self._stalls.sources),
            stages=self._stages.to_shares() if self._stages is not None and timeline else [],
            schedules=self._schedule_shares(),
        )

    def _schedule_shares(self) -> dict[str, ScheduleShare]:
        shares = {source: stats.to_share() for source, stats in self._schedules.items()}
        if self._schedule is not None:
            shares[self.source] = self._schedule.to_share()
        return shares

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
        if self._stages is not None:
            self._stages.clear()
        # The schedule figures are cumulative: shipped whole each time, the latest one counts.
        return share

    def merge_share(self, share: WorkerShare) -> None:
        """Add a share from ``to_share()``/``drain_share()`` of another recorder (exact)."""
        start_shift = share.start - self.start
        if share.stages and self._stages is None:
            raise InputError(
                "a share holds per-stage figures but this run has no stages: run the master and "
                "every worker with the same --stages"
            )
        for name, data in share.endpoints.items():
            state = self._endpoints.get(name)
            if state is None:
                state = self._endpoints[name] = Tally()
            state.add_share(data)
        if self._stages is not None:
            self._stages.merge(share.stages)
        for source, schedule in share.schedules.items():
            self._schedules[source] = ScheduleStats.from_share(schedule)
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
                t,
                ClosedSecond(
                    second.completions,
                    second.errors,
                    list(second.histograms),
                    dict(second.error_kinds),
                    None if second.service_histograms is None else list(second.service_histograms),
                ),
            )
        self._stalls.merge(quiet=share.quiet, stalled=share.stalled, sources=share.sources)
        if share.end is not None:
            self.end = share.end if self.end is None else max(self.end, share.end)


def _sync_pieces(histograms: list[LatencyHistogram]) -> Iterator[None]:
    """Add ``histograms``' waiting values into their HDR counts, pausing between chunks."""
    for histogram in histograms:
        while True:
            done = histogram.sync_part()
            yield
            if done:
                break


def _next_piece(pieces: Iterator[None], schedule: Callable[[Callable[[], None]], object]) -> None:
    """Run one piece of ``pieces``, then schedule the next (none left: done)."""
    for _ in pieces:
        schedule(partial(_next_piece, pieces, schedule))
        return

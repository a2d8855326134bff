"""Rendering of load runs: the live progress line while Locust runs, the summary at the end.

Nothing here measures; the figures come from the results file (HDR percentiles, never Locust's
rounded ones) and from the plugin's live status.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import TextIO

from tabulate import tabulate

from loadkit.config import Criterion, LoadProfile
from loadkit.measure.live_status import LiveStatus
from loadkit.measure.results import (
    EndpointResults,
    ErrorGroup,
    LatencySummary,
    LoadResults,
    ScheduleResults,
)
from loadkit.report.abort import stopped_early
from loadkit.report.units import NO_VALUE, format_fraction, format_ms, format_seconds

BAR_WIDTH = 24
TOP_ERROR_GROUPS = 10
TOP_EXCEPTIONS = 10
TRACEBACK_TAIL_LINES = 12
"""The summary shows the end of the most frequent exception's traceback: the innermost frames
and the message (the results file keeps the whole of it)."""
TRACEBACK_MIN_CUT = 5
PLAIN_PROGRESS_EVERY_S = 5.0
"""Without a terminal (CI logs), one progress line every this many seconds, not a redraw."""
SERVICE_SHOWN_ABOVE_MS = 1.0
SERVICE_SHOWN_ABOVE_SHARE = 0.05
"""Service time is printed beside the response time when a P50, P95 or P99 of the two differs by
more than 1 ms and 5 %: closer than that, the generator never kept a request waiting to speak
of, and one figure says it all."""


# --- live progress -----------------------------------------------------------------------------


def format_progress(
    status: LiveStatus,
    *,
    duration_s: float,
    open_model: bool = False,
    rate: float | None = None,
    width: int = BAR_WIDTH,
) -> str:
    """``[#####.......]  12/60 s  users 10  rps 812  errors 0.00 %  p95 11.4 ms``; an open run
    (``open_model``, or a status with an open run's fields) shows the achieved rate beside its
    target (the status's, else a fixed ``rate``), the iterations waiting for a free slot, and
    its service time's P95 (from the send) beside its response time's (from the due time):
    ``rate 198/s of 200/s  queue 0  p95 11.4 ms  service p95 2.1 ms  errors 0.00 %``."""
    if status.state == "starting":
        return "starting Locust (and waiting for its workers, if any)…"
    done = min(status.elapsed_s / duration_s, 1.0) if duration_s > 0 else 1.0
    filled = round(done * width)
    bar = "#" * filled + "." * (width - filled)
    p95 = format_ms(status.p95_ms, unit=True)
    head = f"[{bar}] {min(status.elapsed_s, duration_s):5.1f}/{duration_s:g} s  "
    # Fields of an open run's status (the timetable's): absent from a closed run's, and from
    # the status of a plugin that predates them.
    target: float | None = getattr(status, "target_rate", None)
    achieved: float | None = getattr(status, "achieved_rate", None)
    queue: int | None = getattr(status, "queue", None)
    if target is None and queue is None and not open_model:
        line = (
            f"{head}users {status.users}  rps {status.rps:,.0f}  "
            f"errors {format_fraction(status.error_rate)}  p95 {p95}  requests {status.requests:,}"
        )
    else:
        target = target if target is not None else rate
        of = f" of {target:,.0f}/s" if target is not None else ""
        waiting = f"  queue {queue:,}" if queue is not None else ""
        # Iterations started per second (the timetable's unit); requests/s from a plugin that
        # does not say.
        rate_now = achieved if achieved is not None else status.rps
        # A queue or a slow send shows as a response time far above the service time.
        service = format_ms(status.service_p95_ms, unit=True)
        line = (
            f"{head}rate {rate_now:,.0f}/s{of}{waiting}  p95 {p95}  service p95 {service}  "
            f"errors {format_fraction(status.error_rate)}  requests {status.requests:,}"
        )
    if status.state in ("stopping", "done"):
        line += f"  ({status.state})"
    return line


def describe_load(profile: LoadProfile, *, engine: str | None = None) -> str:
    """What a profile asks for, in a few words: ``login, 10 users, 60 s``, ``login, 20
    iterations/s (at most 40 at once), 60 s``, ``login, users by stages 30s:50 60s:200, 90 s``;
    with the ``engine`` that runs it, as ``loadkit load`` names it: ``shop, 10 connections, 60
    s, engine native``."""
    stages = " ".join(f"{s.duration_s:g}s:{s.target:g}" for s in profile.stage_list)
    # The native engine's closed model runs connections, not Locust users (render_load_table).
    users = "connections" if engine == "native" else "users"
    if profile.rate is None:
        load = f"{users} by stages {stages}" if stages else f"{profile.concurrency} {users}"
    else:
        load = (
            f"iterations/s by stages {stages} from {profile.rate:g}"
            if stages
            else (f"{profile.rate:g} iterations/s")
        )
        load += f" (at most {profile.in_flight_bound} at once)"
    ran_on = f", engine {engine}" if engine is not None else ""
    return f"{profile.scenario}, {load}, {profile.run_duration_s:g} s{ran_on}"


class ProgressPrinter:
    """Shows each live status on a stream: redrawn in place on a terminal, else now and then."""

    def __init__(
        self,
        *,
        duration_s: float,
        open_model: bool = False,
        rate: float | None = None,
        stream: TextIO | None = None,
    ) -> None:
        """``duration_s`` is the planned run time (the bar's 100 %); ``open_model`` and a fixed
        ``rate`` (no stages) say what an open run's line shows before its status says it."""
        self.duration_s = duration_s
        self.open_model = open_model
        self.rate = rate
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty()
        self._last_plain = 0.0
        self._width = 0

    def __call__(self, status: LiveStatus) -> None:
        """Show one status."""
        line = format_progress(
            status, duration_s=self.duration_s, open_model=self.open_model, rate=self.rate
        )
        if self.tty:
            padding = " " * max(self._width - len(line), 0)
            self.stream.write(f"\r{line}{padding}")
            self._width = len(line)
        else:
            now = time.monotonic()
            if now - self._last_plain < PLAIN_PROGRESS_EVERY_S and status.state == "running":
                return
            self._last_plain = now
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        """End the redrawn line."""
        if self.tty and self._width:
            self.stream.write("\n")
            self.stream.flush()
            self._width = 0


# --- summary -----------------------------------------------------------------------------------

LATENCY_HEADERS = ("requests", "errors", "error %", "P50 ms", "P95 ms", "P99 ms", "max ms")


def _latency_cells(latency: LatencySummary) -> tuple[str, ...]:
    return tuple(format_ms(v) for v in (latency.p50, latency.p95, latency.p99, latency.max))


def _overall_table(results: LoadResults) -> str:
    """One row: the whole run."""
    t = results.totals
    row = (
        f"{t.requests:,}",
        f"{t.errors:,}",
        format_fraction(t.error_rate),
        f"{t.rps:,.1f}",
        *_latency_cells(results.latency_ms),
    )
    headers = ("requests", "errors", "error %", "req/s", "P50 ms", "P95 ms", "P99 ms", "max ms")
    return tabulate([row], headers=headers, tablefmt="simple", disable_numparse=True)


def _endpoints_table(results: LoadResults) -> str:
    """One row per endpoint, busiest first; with service-time columns when it differs."""
    with_service = any(service_differs(e.latency_ms, e.service_time_ms) for e in results.endpoints)
    rows = []
    for e in results.endpoints:
        row = [
            e.name,
            f"{e.requests:,}",
            f"{e.errors:,}",
            format_fraction(e.error_rate),
            *_latency_cells(e.latency_ms),
        ]
        if with_service:
            row += _service_cells(e.service_time_ms)
        rows.append(row)
    headers = ["endpoint", *LATENCY_HEADERS]
    if with_service:
        headers += ["svc P95 ms", "svc P99 ms"]
    return tabulate(rows, headers=headers, tablefmt="simple", disable_numparse=True)


def _statuses(group: ErrorGroup) -> str:
    return ", ".join(f"{code}×{count}" for code, count in group.status_codes.items())


def _error_groups_table(results: LoadResults, limit: int = TOP_ERROR_GROUPS) -> str:
    """The most frequent error kinds by endpoint, with an example trace id to look up."""
    groups = results.errors[:limit]
    rows = [
        (g.endpoint, g.kind, f"{g.count:,}", _statuses(g), g.example_trace_id or NO_VALUE)
        for g in groups
    ]
    table = tabulate(
        rows,
        headers=("endpoint", "error kind", "count", "status", "example trace id"),
        tablefmt="simple",
        disable_numparse=True,
    )
    if len(results.errors) > limit:
        table += f"\n… and {len(results.errors) - limit} more groups in the results file"
    return table


def _exceptions_table(results: LoadResults, limit: int = TOP_EXCEPTIONS) -> str:
    """Exceptions raised by user code, most frequent first."""
    rows = [(g.type, g.where, f"{g.count:,}") for g in results.exceptions[:limit]]
    table = tabulate(
        rows, headers=("exception", "where", "count"), tablefmt="simple", disable_numparse=True
    )
    if len(results.exceptions) > limit:
        table += f"\n… and {len(results.exceptions) - limit} more in the results file"
    return table


def trim_traceback(traceback: str, *, lines: int = TRACEBACK_TAIL_LINES) -> str:
    """The end of a traceback (its innermost frames and the message), indented; a cut is
    marked."""
    kept = traceback.rstrip().splitlines()
    if len(kept) > lines + TRACEBACK_MIN_CUT:  # cutting a line or two saves nothing
        cut = f"  … ({len(kept) - lines - 1} lines, in the results file)"
        kept = [kept[0], cut, *kept[-lines:]]
    return "\n".join(f"  {line}" for line in kept)


def _exceptions_part(results: LoadResults) -> list[str]:
    total = results.exception_count
    parts = ["", f"exceptions raised by user code: {total:,}", _exceptions_table(results)]
    top = results.exceptions[0]
    if top.traceback:
        parts += ["", f"first {top.type} at {top.where}:", trim_traceback(top.traceback)]
    return parts


def stall_line(results: LoadResults) -> str:
    """The longest span with requests in flight and none completing: the freeze detector."""
    stall = results.longest_stall
    if stall is None:
        return "longest stall: none (no span of 0.1 s or more without a completion)"
    return (
        f"longest stall: {format_seconds(stall.duration_s)} with requests in flight and none "
        f"completing (from {format_seconds(stall.start_s)} to {format_seconds(stall.end_s)} "
        "into the run)"
    )


def stopped_line(results: LoadResults, criteria: Sequence[Criterion] = ()) -> str | None:
    """How a run stopped on purpose ended (None when it was not): who stopped it, and when;
    by one of the abort-on-fail ``criteria``, what it measured against what."""
    stopped = results.stopped
    if stopped is None:
        return None
    at = format_seconds(stopped.at_s)
    if stopped.by == "criterion" and criteria:
        return stopped_early(stopped, criteria)
    if stopped.by == "criterion":
        return f"stopped at {at} by the criterion {stopped.criterion!r} (abort on fail)"
    if stopped.by == "user":
        return f"stopped at {at} from the web UI"
    return f"stopped at {at} by the locustfile"


def locust_exit_line(results: LoadResults) -> str | None:
    """Locust's own verdict when it was not 0 (None when it was, or is not known)."""
    code = results.locust_exit_code
    if not code:
        return None
    why = "the locustfile's process_exit_code"
    if code == 2:  # also what Locust gives for an exception in its event handlers or greenlets
        why += ", or an exception in Locust's event handlers or greenlets"
    return f"Locust's exit code: {code} ({why})"


def shape_line(results: LoadResults) -> str | None:
    """Which LoadTestShape drove the run and whether it ran to its end (None without one)."""
    shape = results.config.get("shape")
    if not isinstance(shape, dict):
        return None
    cap = results.config.get("duration_s")
    ended = "ran to its end" if shape.get("completed") else "did not finish"
    limit = f" (--duration {cap:g} s is its cap)" if isinstance(cap, int | float) else ""
    return f"shape: {shape.get('class', '?')} drove the users and {ended}{limit}"


def service_differs(response: LatencySummary, service: LatencySummary | None) -> bool:
    """Whether service time is worth printing beside the response time (see
    ``SERVICE_SHOWN_ABOVE_MS``)."""
    if service is None:
        return False
    for name in ("p50", "p95", "p99"):
        high, low = getattr(response, name), getattr(service, name)
        if high is None or low is None:
            continue
        gap = high - low
        if gap > SERVICE_SHOWN_ABOVE_MS and gap > SERVICE_SHOWN_ABOVE_SHARE * low:
            return True
    return False


def mean_wait_ms(endpoints: list[EndpointResults]) -> float | None:
    """How long the requests sent waited on average between their due time and their send: the
    mean response time minus the mean service time, over the endpoints that have both."""
    waited = 0.0
    count = 0
    for endpoint in endpoints:
        service, response = endpoint.service_time_ms, endpoint.latency_ms
        if service is None or service.mean is None or response.mean is None:
            continue
        waited += (response.mean - service.mean) * service.count
        count += service.count
    return waited / count if count else None


def _service_part(results: LoadResults) -> list[str]:
    """Response time beside service time, and why they differ (open runs where they do)."""
    service = results.service_time_ms
    if service is None or not service_differs(results.latency_ms, service):
        return []
    rows = [
        ("response time (from the due time)", *_latency_cells(results.latency_ms)),
        ("service time (from the send)", *_latency_cells(service)),
    ]
    table = tabulate(
        rows,
        headers=("", "P50 ms", "P95 ms", "P99 ms", "max ms"),
        tablefmt="simple",
        disable_numparse=True,
    )
    wait = mean_wait_ms(results.endpoints)
    schedule = results.schedule
    why = (
        "response time counts from when each request was due: requests waited "
        f"{format_ms(wait, unit=True)} on average between their due time and their send"
    )
    if schedule is not None and schedule.max_queue > 0:
        why += f" (up to {schedule.max_queue:,} iterations queued for a free user)"
    if results.not_sent:
        why += f", and {results.not_sent:,} were never sent"
    limit = results.schedule.max_in_flight if results.schedule is not None else None
    if limit:
        why += f" (at most {limit:,} iteration{'s' if limit != 1 else ''} run at once)"
    return ["", table, why]


def schedule_line(schedule: ScheduleResults) -> str:
    """The open model's timetable in one line: target vs achieved rate, lag, not sent."""
    achieved = NO_VALUE if schedule.achieved_rate is None else f"{schedule.achieved_rate:,.1f}/s"
    lag = schedule.lag_ms
    lag_text = (
        f"scheduler lag P99 {format_ms(lag.p99, unit=True)} (max {format_ms(lag.max, unit=True)},"
        f" bound {schedule.lag_bound_ms:g} ms)"
        if lag.count
        else "scheduler lag: no dispatch measured"
    )
    loop = schedule.loop_delay_ms
    if loop is not None and loop.count:
        bound = schedule.loop_delay_bound_ms
        lag_text += f"; event-loop delay P90 {format_ms(loop.p90, unit=True)} (max " + (
            f"{format_ms(loop.max, unit=True)}" + (f", bound {bound:g} ms)" if bound else ")")
        )
    return (
        f"open model: target {schedule.target_rate:,.1f}/s, achieved {achieved}; {lag_text}; "
        f"iterations due {schedule.iterations_due:,}, dispatched "
        f"{schedule.iterations_dispatched:,}, not sent {schedule.not_sent:,}; "
        f"longest queue {schedule.max_queue:,}; drain {format_seconds(schedule.drain_s)}"
    )


def wait_time_line(results: LoadResults) -> str | None:
    """Which user classes' ``wait_time`` an open run did not use (None: none had one)."""
    ignored = results.config.get("wait_time_ignored")
    if not isinstance(ignored, list) or not ignored:
        return None
    names = ", ".join(str(name) for name in ignored)
    return (
        f"wait_time ignored: {names} (in an open run the timetable decides when iterations "
        "start; no think time between them)"
    )


def _stages_table(results: LoadResults) -> str:
    """One row per stage: what it asked for, what it got, and its latencies (the knee)."""
    stages = results.stages or []
    with_service = any(stage.service_time_ms is not None for stage in stages)
    with_unsent = any(stage.not_sent for stage in stages)
    unit = "rate /s" if results.schedule is not None else "users"
    headers = ["stage", "from–to s", f"target {unit}", "requests", "req/s", "error %"]
    if with_unsent:
        headers.append("not sent")
    headers += ["P50 ms", "P95 ms", "P99 ms"]
    if with_service:
        headers += ["svc P95 ms", "svc P99 ms"]
    rows = []
    for stage in stages:
        row = [
            stage.label(),
            f"{stage.start_s:g}–{stage.end_s:g}",
            f"{stage.target:g}",
            f"{stage.requests:,}",
            f"{stage.rps:,.1f}",
            format_fraction(stage.error_rate),
        ]
        if with_unsent:
            row.append(f"{stage.not_sent:,}")
        latency = stage.latency_ms
        row += [format_ms(latency.p50), format_ms(latency.p95), format_ms(latency.p99)]
        if with_service:
            row += _service_cells(stage.service_time_ms)
        rows.append(row)
    return tabulate(rows, headers=headers, tablefmt="simple", disable_numparse=True)


def _service_cells(service: LatencySummary | None) -> list[str]:
    """The service-time columns of a row (P95, P99), blank where none was measured."""
    return [
        format_ms(service.p95 if service else None),
        format_ms(service.p99 if service else None),
    ]


NEAR_CPU_LIMIT_PERCENT = 75.0
"""A generator process this busy (or more) is warned about: the rate may be its, not the
target's, even before it is busy enough (90 %) to void the run."""


def render_load_table(
    results: LoadResults, *, path: str | None = None, criteria: Sequence[Criterion] = ()
) -> str:
    """The end-of-run report: overall, per endpoint, top error kinds, stall, validity, file;
    ``criteria``: the abort-on-fail ones the run was judged by (a stop names its figure)."""
    config = results.config
    scenario = config.get("scenario", "?")
    users = config.get("concurrency", "?")
    processes = config.get("processes", 1)
    engine = config.get("engine")
    # The native engine's closed model runs connections, not Locust users.
    load = f"{users} connections" if engine == "native" else f"{users} users"
    if results.schedule is not None:
        load = f"open model {results.schedule.target_rate:,.1f}/s"
    ran_on = f"  engine {engine}" if isinstance(engine, str) else ""
    head = (
        f"loadkit load: {results.target}{ran_on}  scenario {scenario}  {load}  "
        f"{results.duration_s:.1f} s"
        + (f"  {processes} processes" if isinstance(processes, int) and processes > 1 else "")
    )
    parts = [head, "", _overall_table(results), *_service_part(results)]
    if results.schedule is not None:
        parts += ["", schedule_line(results.schedule)]
        ignored = wait_time_line(results)
        if ignored is not None:
            parts.append(ignored)
    parts += ["", _endpoints_table(results)]
    if results.stages:
        parts += ["", "stages (each request in the stage its response time began in):"]
        parts.append(_stages_table(results))
    if results.errors:
        parts += ["", "top error kinds by endpoint:", _error_groups_table(results)]
    if results.exceptions:
        parts += _exceptions_part(results)
    parts += ["", stall_line(results)]
    lines = (shape_line(results), stopped_line(results, criteria), locust_exit_line(results))
    parts += [line for line in lines if line is not None]
    generator = results.generator
    if generator.max_cpu_percent is not None:
        parts.append(f"generator: peak CPU {generator.max_cpu_percent:.0f} % per process")
        if generator.max_cpu_percent >= NEAR_CPU_LIMIT_PERCENT and not generator.overloaded:
            parts.append(
                "warning: a load generator process ran near its CPU limit (invalid from 90 %): "
                "the generator, not the target, may be what bounds this run's rate; add "
                "--processes (one per core) or workers (docs/distributed.md) to be sure"
            )
    if results.aborted:
        parts.append("ABORTED: the run was interrupted; these are partial results")
    if not results.valid:
        parts.append("INVALID — do not gate on these numbers:")
        parts += [f"  - {reason}" for reason in results.invalid_reasons]
    if path is not None:
        parts.append(f"results: {path}")
    return "\n".join(parts)

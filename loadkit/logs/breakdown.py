"""The error breakdown: service log objects in, errors by kind, endpoint and offender out.

Pure: it is handed log objects (``loadkit.logs.scan``) and results models, and returns plain frozen
data that ``loadkit.report.errors`` renders. Memory is flat in the number of lines: per group of
(endpoint, kind) it keeps counters and one HDR histogram of durations, never the lines themselves,
and the number of groups is capped.

With ``--results``, the client's view is joined in by ``loadkit.logs.join`` (see there for what
the join can and cannot say): the builder hands it each error line as it streams past.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from loadkit.exceptions import ConfigError
from loadkit.logs.join import ClientComparison, ClientView
from loadkit.logs.scan import ScanCounts
from loadkit.measure.histogram import LatencyHistogram
from loadkit.measure.kinds import ErrorKind

REQUEST_EVENT = "request"
POOL_EVENT = "db_pool"
FAULT_EVENT = "fault_injection_enabled"
"""Logged by the service at start-up for each fault switched on: errors that are no bug."""
MAX_FAULTS = 20
MAX_EVENT_NAMES = 50
OTHER_EVENTS = "(other events)"

DEFAULT_TOP = 5
MAX_GROUPS = 500
"""Distinct (endpoint, kind) groups kept; each holds an HDR histogram (~137 KiB) from its first
duration on, so the groups cost ~70 MiB at most whatever the log's length. Beyond the cap, errors
go to one catch-all group per kind under ``OTHER_ENDPOINTS``: a log whose endpoints are raw paths
(not route templates) would otherwise grow without bound."""
MAX_ENDPOINTS = 10_000
MAX_KINDS = 200
OTHER_ENDPOINTS = "(other endpoints)"
OTHER_KINDS = "(other kinds)"
UNKNOWN_KIND = ErrorKind.UNEXPECTED_STATUS.value
"""The kind of an error line that carries a 4xx/5xx status but no kind (as the harness does)."""
NO_RESPONSE_KIND = "no_response"
"""The kind of a request line with status 0 and no kind: the service sent no answer at all."""

# Field names of the service's pool line (service/pool_metrics.py: checked_out, checked_in,
# waited and timed_out since the previous line), with spellings other services use.
POOL_FIELDS: dict[str, tuple[str, ...]] = {
    "size": ("size", "pool_size"),
    "max_size": ("max_size", "pool_max_size", "max"),
    "in_use": ("checked_out", "checkedout", "in_use", "busy"),
    "overflow": ("overflow",),
    "waited": ("waited", "waiting", "waiters"),
    "timed_out": ("timed_out", "timeouts"),
}

MAX_EPOCH = 253_402_300_800.0
"""Year 10000: a numeric ``ts`` past it is no time (and would overflow datetime)."""
MIN_EPOCH = datetime(1, 1, 1, tzinfo=UTC).timestamp()
"""Year 1: the earliest time datetime (hence ``iso``) can show."""

_RELATIVE = re.compile(r"(\d+(?:\.\d+)?)\s*(s|m|h|d)")
_UNIT_S = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


# --- time -----------------------------------------------------------------------------------


def parse_time_bound(text: str, *, now: float, option: str = "--since") -> float:
    """Seconds since the epoch for ``--since``/``--until``.

    Accepts an ISO 8601 time (``2026-11-28T12:00:00Z``; without an offset it is UTC, as the
    service logs) or a span back from ``now`` (``90s``, ``15m``, ``2h``, ``1d``), landing between
    the years 1 and 9999.
    """
    value = text.strip()
    match = _RELATIVE.fullmatch(value)
    epoch: float | None
    if match:
        epoch = now - float(match.group(1)) * _UNIT_S[match.group(2)]
    else:
        epoch = _iso_epoch(value)
        if epoch is None:
            raise ConfigError(
                f"{option} {text!r}: not a time; give an ISO 8601 time such as "
                "2026-11-28T12:00:00Z, or a span back from now such as 15m, 2h or 1d"
            )
    if not MIN_EPOCH <= epoch < MAX_EPOCH:
        raise ConfigError(
            f"{option} {text!r}: outside the years 1 to 9999; give a time or a span within them"
        )
    return epoch


def _iso_epoch(text: str) -> float | None:
    """An ISO 8601 time (UTC without an offset) in epoch seconds; None when it is none, or
    its offset takes it past what datetime holds (9999-12-31T23:59-14:00)."""
    try:
        moment = datetime.fromisoformat(text)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.timestamp()
    except (ValueError, OverflowError):
        return None


def epoch_of(ts: object) -> float | None:
    """A log line's ``ts`` (ISO 8601, or a number of seconds since the epoch) in epoch seconds."""
    if isinstance(ts, str):
        epoch = _iso_epoch(ts)
        # 0001-01-01T00:00+14:00 is a valid ISO time but lies before the year 1 in UTC.
        return epoch if epoch is not None and MIN_EPOCH <= epoch < MAX_EPOCH else None
    if isinstance(ts, int | float) and not isinstance(ts, bool) and 0 <= ts < MAX_EPOCH:
        return float(ts)
    return None


def iso(epoch: float | None) -> str | None:
    """An epoch time as ISO 8601 UTC to the millisecond, the way a reader compares log lines."""
    if epoch is None:
        return None
    text = datetime.fromtimestamp(epoch, tz=UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")  # as the service writes its ts


# --- the result -----------------------------------------------------------------------------


@dataclass(frozen=True)
class InputSummary:
    """What was read, and what of it could not be used."""

    sources: list[str]
    lines: int
    log_lines: int
    request_lines: int
    success_lines: int
    pool_lines: int
    other_events: int
    blank: int
    not_json: int
    foreign: int
    incomplete: int
    """Request lines without an endpoint or status code (logged, but unusable)."""
    outside_window: int
    """Log lines outside --since/--until (or without a readable ``ts`` while a bound was set)."""
    unmatched: int = 0
    """Text lines not in the text format read (nginx preset)."""
    log_format: str = "loadkit"
    """The format read: ``loadkit`` (the bundled service's), ``nginx``, or ``mapping``."""

    @property
    def skipped(self) -> int:
        """Lines that held something but could not be used (malformed, foreign, unmatched,
        incomplete)."""
        return self.not_json + self.foreign + self.unmatched + self.incomplete


@dataclass(frozen=True)
class Totals:
    """Requests and errors the log shows."""

    requests: int
    errors: int
    error_rate: float | None
    """None when the log holds no success lines: the rate would be 100 % by construction."""
    first_seen: str | None
    last_seen: str | None


@dataclass(frozen=True)
class KindRow:
    """All errors of one kind."""

    kind: str
    count: int
    share_of_errors: float
    share_of_requests: float | None
    status_codes: dict[str, int]
    endpoints: int
    first_seen: str | None
    last_seen: str | None


@dataclass(frozen=True)
class EndpointRow:
    """Requests and errors of one endpoint (``METHOD /route/template``)."""

    endpoint: str
    requests: int
    errors: int
    error_rate: float | None
    top_kind: str | None
    top_kind_count: int


@dataclass(frozen=True)
class Offender:
    """One (endpoint, kind) group: the unit a fix targets."""

    endpoint: str
    kind: str
    count: int
    share_of_errors: float
    status_codes: dict[str, int]
    p95_ms: float | None
    max_ms: float | None
    first_seen: str | None
    last_seen: str | None
    example_trace_id: str | None
    example_message: str | None


@dataclass(frozen=True)
class PoolSummary:
    """The database pool lines (event ``db_pool``), reduced to what correlates with errors."""

    lines: int
    size: int | None
    max_size: int | None
    max_in_use: int | None
    max_overflow: int | None
    max_waited: int | None
    """The most checkouts that had to wait for a connection between two pool lines."""
    total_waited: int | None
    total_timed_out: int | None
    """Checkouts that gave up waiting (answered db_pool_exhausted), summed over the lines."""
    saturated_lines: int
    """Lines with every connection in use (in use >= max size) or checkouts that waited."""
    first_saturated: str | None
    last_saturated: str | None


@dataclass(frozen=True)
class ErrorBreakdown:
    """Everything ``loadkit errors`` reports."""

    inputs: InputSummary
    since: str | None
    until: str | None
    totals: Totals
    by_kind: list[KindRow]
    by_endpoint: list[EndpointRow]
    top: list[Offender]
    top_n: int
    groups: int
    pool: PoolSummary | None
    faults: list[str]
    """The faults the service said it injects (its start-up lines), so nobody chases them."""
    events: dict[str, int]
    """Other service events by name (start-ups, unhandled exceptions, ...), most frequent first."""
    client: ClientComparison | None

    @property
    def empty(self) -> bool:
        """True when neither a service log line nor a client run was found: nothing to say."""
        return self.inputs.log_lines == 0 and self.client is None


# --- aggregation ----------------------------------------------------------------------------


@dataclass
class _Group:
    count: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    durations: LatencyHistogram | None = None
    """Made at the first duration: a log without durations (nginx's) costs no histograms."""
    first: float | None = None
    last: float | None = None
    example_trace_id: str | None = None
    example_message: str | None = None


@dataclass
class _Kind:
    count: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    endpoints: set[str] = field(default_factory=set)
    first: float | None = None
    last: float | None = None


@dataclass
class _Pool:
    lines: int = 0
    size: int | None = None
    max_size: int | None = None
    max_in_use: int | None = None
    max_overflow: int | None = None
    max_waited: int | None = None
    total_waited: int | None = None
    total_timed_out: int | None = None
    saturated: int = 0
    first_saturated: float | None = None
    last_saturated: float | None = None


class BreakdownBuilder:
    """Accumulates log objects one at a time; ``result()`` makes the breakdown.

    ``since``/``until`` (epoch seconds) keep only lines in that span; ``client`` adds the join.
    """

    def __init__(
        self,
        *,
        since: float | None = None,
        until: float | None = None,
        client: ClientView | None = None,
    ) -> None:
        """See the class docstring."""
        self.since = since
        self.until = until
        self.client = client
        self._filtered = since is not None or until is not None
        self._requests = 0
        self._success = 0
        self._errors = 0
        self._pool_lines = 0
        self._other = 0
        self._events: Counter[str] = Counter()
        self._faults: list[str] = []
        self._incomplete = 0
        self._outside = 0
        self._log_lines = 0
        self._first: float | None = None
        self._last: float | None = None
        self._endpoints: dict[str, list[int]] = {}  # endpoint → [requests, errors]
        self._groups: dict[tuple[str, str], _Group] = {}
        self._kinds: dict[str, _Kind] = {}
        self._pool = _Pool()

    def add_all(self, objects: Iterable[Mapping[str, Any]]) -> None:
        """``add`` each object."""
        for obj in objects:
            self.add(obj)

    def add(self, obj: Mapping[str, Any]) -> None:
        """Account for one service log object (a dict with an ``event``)."""
        epoch = epoch_of(obj.get("ts"))
        if self._filtered and (
            epoch is None
            or (self.since is not None and epoch < self.since)
            or (self.until is not None and epoch > self.until)
        ):
            self._outside += 1
            return
        self._log_lines += 1
        if epoch is not None:
            if self._first is None or epoch < self._first:
                self._first = epoch
            if self._last is None or epoch > self._last:
                self._last = epoch
        event = obj.get("event")
        if event == REQUEST_EVENT:
            self._add_request(obj, epoch)
        elif event == POOL_EVENT:
            self._add_pool(obj, epoch)
        else:
            self._add_event(obj, str(event))

    def _add_event(self, obj: Mapping[str, Any], event: str) -> None:
        self._other += 1
        if event not in self._events and len(self._events) >= MAX_EVENT_NAMES:
            event = OTHER_EVENTS
        self._events[event] += 1
        if event == FAULT_EVENT and len(self._faults) < MAX_FAULTS:
            figures = ", ".join(
                f"{key} {_text(value)}"
                for key, value in obj.items()
                if key not in {"event", "level", "ts", "fault"}
            )
            name = obj.get("fault")
            text = f"{name}: {figures}" if isinstance(name, str) else figures
            at = obj.get("ts")
            self._faults.append(f"{text} (from {at})" if isinstance(at, str) else text)

    def _add_request(self, obj: Mapping[str, Any], epoch: float | None) -> None:
        route = obj.get("endpoint")
        status = obj.get("status_code")
        if not isinstance(route, str) or not isinstance(status, int) or isinstance(status, bool):
            self._incomplete += 1
            return
        method = obj.get("method")
        # The client names endpoints "METHOD /route/template": use the same names, so the two
        # views line up and GET and DELETE of one route are told apart.
        endpoint = f"{method} {route}" if isinstance(method, str) else route
        self._requests += 1
        counts = self._endpoints.get(endpoint)
        if counts is None:
            if len(self._endpoints) >= MAX_ENDPOINTS:
                endpoint = OTHER_ENDPOINTS
                counts = self._endpoints.setdefault(endpoint, [0, 0])
            else:
                counts = self._endpoints[endpoint] = [0, 0]
        counts[0] += 1
        kind = obj.get("error_kind")
        trace_id = obj.get("trace_id")
        client = self.client
        # Status 0: the service never answered (cancelled at the end of its shutdown grace, or
        # the client left before sending its body). Not a success, whatever the missing kind.
        if kind is None and 0 < status < 400:
            self._success += 1
            if client is not None:
                client.observe_success(trace_id, status)
            return
        if not isinstance(kind, str):
            kind = NO_RESPONSE_KIND if status == 0 else UNKNOWN_KIND
        counts[1] += 1
        self._errors += 1
        self._add_error(endpoint, kind, status, epoch, obj, trace_id)
        if client is not None:
            client.observe_error(endpoint, kind, status, epoch, trace_id)

    def _add_error(
        self,
        endpoint: str,
        kind: str,
        status: int,
        epoch: float | None,
        obj: Mapping[str, Any],
        trace_id: object,
    ) -> None:
        kind_state = self._kinds.get(kind)
        if kind_state is None:
            if len(self._kinds) >= MAX_KINDS:
                kind = OTHER_KINDS
                kind_state = self._kinds.setdefault(kind, _Kind())
            else:
                kind_state = self._kinds[kind] = _Kind()
        status_text = str(status)
        kind_state.count += 1
        kind_state.statuses[status_text] += 1
        if len(kind_state.endpoints) < MAX_ENDPOINTS:
            kind_state.endpoints.add(endpoint)
        key = (endpoint, kind)
        group = self._groups.get(key)
        if group is None:
            if len(self._groups) >= MAX_GROUPS:
                key = (OTHER_ENDPOINTS, kind)
                group = self._groups.setdefault(key, _Group())
            else:
                group = self._groups[key] = _Group()
        group.count += 1
        group.statuses[status_text] += 1
        duration = obj.get("duration_ms")
        if isinstance(duration, int | float) and not isinstance(duration, bool):
            if group.durations is None:
                group.durations = LatencyHistogram()
            group.durations.record_us(duration * 1000.0)
        if epoch is not None:
            if group.first is None or epoch < group.first:
                group.first = epoch
            if group.last is None or epoch > group.last:
                group.last = epoch
            if kind_state.first is None or epoch < kind_state.first:
                kind_state.first = epoch
            if kind_state.last is None or epoch > kind_state.last:
                kind_state.last = epoch
        if group.example_trace_id is None and isinstance(trace_id, str):
            group.example_trace_id = trace_id
            message = obj.get("message")
            group.example_message = message if isinstance(message, str) else None

    def _add_pool(self, obj: Mapping[str, Any], epoch: float | None) -> None:
        self._pool_lines += 1
        pool = self._pool
        pool.lines += 1
        figures = {name: _pool_figure(obj, keys) for name, keys in POOL_FIELDS.items()}
        size, max_size = figures["size"], figures["max_size"]
        in_use, overflow, waited = figures["in_use"], figures["overflow"], figures["waited"]
        timed_out = figures["timed_out"]
        if size is not None:
            pool.size = size
        if max_size is not None:
            pool.max_size = max_size if pool.max_size is None else max(pool.max_size, max_size)
        pool.max_in_use = _max(pool.max_in_use, in_use)
        pool.max_overflow = _max(pool.max_overflow, overflow)
        pool.max_waited = _max(pool.max_waited, waited)
        if waited is not None:
            pool.total_waited = (pool.total_waited or 0) + waited
        if timed_out is not None:
            pool.total_timed_out = (pool.total_timed_out or 0) + timed_out
        limit = max_size if max_size is not None else pool.max_size
        saturated = (waited is not None and waited > 0) or (
            in_use is not None and limit is not None and in_use >= limit
        )
        if saturated:
            pool.saturated += 1
            if epoch is not None:
                pool.first_saturated = (
                    epoch if pool.first_saturated is None else pool.first_saturated
                )
                pool.last_saturated = epoch

    # --- the result -------------------------------------------------------------------------

    def result(
        self,
        *,
        top: int = DEFAULT_TOP,
        counts: ScanCounts | None = None,
        sources: list[str] | None = None,
        log_format: str = "loadkit",
    ) -> ErrorBreakdown:
        """The breakdown of everything added so far; ``counts`` are the reader's line counts,
        ``log_format`` the name of the format they were read in."""
        counts = counts or ScanCounts(lines=self._log_lines, log_lines=self._log_lines)
        requests, errors = self._requests, self._errors
        have_success = self._success > 0
        totals = Totals(
            requests=requests,
            errors=errors,
            error_rate=_ratio(errors, requests) if have_success else None,
            first_seen=iso(self._first),
            last_seen=iso(self._last),
        )
        by_kind = [
            KindRow(
                kind=kind,
                count=state.count,
                share_of_errors=_ratio(state.count, errors) or 0.0,
                share_of_requests=_ratio(state.count, requests) if have_success else None,
                status_codes=dict(sorted(state.statuses.items())),
                endpoints=len(state.endpoints),
                first_seen=iso(state.first),
                last_seen=iso(state.last),
            )
            for kind, state in self._kinds.items()
        ]
        by_kind.sort(key=lambda row: (-row.count, row.kind))
        # Each endpoint's most frequent kind, in one pass over the groups.
        top_kinds: dict[str, tuple[int, str]] = {}
        for (endpoint, kind), group in self._groups.items():
            top_kinds[endpoint] = max(top_kinds.get(endpoint, (0, "")), (group.count, kind))
        by_endpoint = [
            self._endpoint_row(endpoint, counts_n, top_kinds.get(endpoint), have_success)
            for endpoint, counts_n in self._endpoints.items()
            if counts_n[1] or have_success
        ]
        by_endpoint.sort(key=lambda row: (-row.errors, -row.requests, row.endpoint))
        ranked = sorted(self._groups.items(), key=lambda item: (-item[1].count, item[0]))
        offenders = [self._offender(key, group, errors) for key, group in ranked[: max(top, 0)]]
        inputs = InputSummary(
            sources=list(sources or []),
            lines=counts.lines,
            log_lines=self._log_lines,
            request_lines=requests + self._incomplete,
            success_lines=self._success,
            pool_lines=self._pool_lines,
            other_events=self._other,
            blank=counts.blank,
            not_json=counts.not_json,
            foreign=counts.foreign,
            incomplete=self._incomplete,
            outside_window=self._outside,
            unmatched=counts.unmatched,
            log_format=log_format,
        )
        return ErrorBreakdown(
            inputs=inputs,
            since=iso(self.since),
            until=iso(self.until),
            totals=totals,
            by_kind=by_kind,
            by_endpoint=by_endpoint,
            top=offenders,
            top_n=top,
            groups=len(self._groups),
            pool=self._pool_summary(),
            faults=list(self._faults),
            events=dict(sorted(self._events.items(), key=lambda item: (-item[1], item[0]))),
            client=(
                self.client.compare(
                    have_success=have_success,
                    first=self._first,
                    last=self._last,
                    have_log=bool(sources) or self._log_lines > 0,
                )
                if self.client is not None
                else None
            ),
        )

    @staticmethod
    def _endpoint_row(
        endpoint: str, counts: list[int], top: tuple[int, str] | None, have_success: bool
    ) -> EndpointRow:
        requests, errors = counts
        top_count, top_kind = top if top is not None else (0, None)
        return EndpointRow(
            endpoint=endpoint,
            requests=requests,
            errors=errors,
            error_rate=_ratio(errors, requests) if have_success else None,
            top_kind=top_kind,
            top_kind_count=top_count,
        )

    @staticmethod
    def _offender(key: tuple[str, str], group: _Group, errors: int) -> Offender:
        durations = group.durations
        summary = durations.summary() if durations is not None and durations.count else None
        return Offender(
            endpoint=key[0],
            kind=key[1],
            count=group.count,
            share_of_errors=_ratio(group.count, errors) or 0.0,
            status_codes=dict(sorted(group.statuses.items())),
            p95_ms=summary.p95 if summary else None,
            max_ms=summary.max if summary else None,
            first_seen=iso(group.first),
            last_seen=iso(group.last),
            example_trace_id=group.example_trace_id,
            example_message=group.example_message,
        )

    def _pool_summary(self) -> PoolSummary | None:
        pool = self._pool
        if not pool.lines:
            return None
        return PoolSummary(
            lines=pool.lines,
            size=pool.size,
            max_size=pool.max_size,
            max_in_use=pool.max_in_use,
            max_overflow=pool.max_overflow,
            max_waited=pool.max_waited,
            total_waited=pool.total_waited,
            total_timed_out=pool.total_timed_out,
            saturated_lines=pool.saturated,
            first_saturated=iso(pool.first_saturated),
            last_saturated=iso(pool.last_saturated),
        )


def _text(value: object) -> str:
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value) or "(all)"
    return str(value)


def _pool_figure(obj: Mapping[str, Any], keys: tuple[str, ...]) -> int | None:
    for key in keys:
        value = obj.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return int(value)
    return None


def _max(current: int | None, value: int | None) -> int | None:
    if value is None:
        return current
    return value if current is None else max(current, value)


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None

"""The join of the client's errors (loadkit results) with the server's (its log), for ``errors``.

The service logs every request that ends in an error (DESIGN.md, contract 3); successful requests
only when its access log level lets them through. A loadkit run (``--results``) records what the
client saw, grouped by (endpoint, kind), with status codes, counts and one example trace id per
group (plus ``trace_ids``, a bounded sample, when the runner recorded one).

What the join can say, and what it cannot:

* **Counts.** Within the runs' time windows (each run's start to its end, widened by
  ``JOIN_SLACK_S`` for requests that completed late), the server's error count for each
  (endpoint, kind) is set beside the client's. ``client_only = client - server`` (when positive)
  are errors the client saw that the server never logged as such: timeouts, connection errors,
  errors made by a proxy, or errors the client classified differently. ``server_only`` are errors
  the server logged that these runs did not see as such: other traffic in the window, or requests
  the client had already given up on. Counts are not paired request by request, so one request
  can show up on both sides (a client ``timeout`` that the server later logged as
  ``storage_lock_timeout``), and the windows assume client and server clocks agree.
* **Trace ids.** Every trace id the results carry is looked up in the log: logged with the same
  kind, with another kind, as a success, or not at all. That pairs individual requests, so it
  tells what a client-side error really was on the server, but only for the sampled requests:
  with one example per group it is an anecdote, not a proportion. A trace id missing from a log
  that holds no success lines may be a success the service did not log at its access log level;
  a request that got no response carries a trace id only if the client sent one
  (``X-Request-Id``). Endpoints are matched as "METHOD /route/template" with the names of path
  parameters ignored (a scenario's ``/api/items/{id}`` is the service's ``/api/items/{item_id}``);
  an endpoint the service logs as ``unmatched`` (an error raised before routing) cannot be.

Memory is bounded by the results (their groups and trace ids), never by the log.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from loadkit.exceptions import InputError
from loadkit.measure.kinds import CLIENT_KINDS
from loadkit.measure.results import LoadResults, LockAuditResults, SmokeResults

JOIN_SLACK_S = 5.0
"""Server lines this long before a run's start or after its end still count for the join: the
service logs a request when it completes, which can be after the client timed out."""

_PATH_PARAMETER = re.compile(r"\{[^{}]*\}")


def join_key(endpoint: str) -> str:
    """The endpoint as the join compares it: path parameters without their names.

    Client and server name one route's parameters as they like (a Locust ``name=`` of
    ``/api/items/{id}``, the service's ``/api/items/{item_id}``); the route is the same.
    """
    return _PATH_PARAMETER.sub("{}", endpoint)


@dataclass(frozen=True)
class TraceOutcomes:
    """What the server log says about the sampled trace ids of one client error group."""

    sampled: int = 0
    same_kind: int = 0
    other_kinds: dict[str, int] = field(default_factory=dict)
    """Server kind → count, for trace ids the server logged as another error."""
    ok_on_server: int = 0
    not_logged: int = 0
    example: str | None = None
    """One sampled trace id, with what the server logged for it."""


@dataclass(frozen=True)
class JoinRow:
    """Client and server counts for one (endpoint, kind) within the runs' windows."""

    endpoint: str
    """The server's name for the endpoint when it logged one, else the client's."""
    kind: str
    client: int
    server: int
    client_only: int
    server_only: int
    client_side_kind: bool
    """A kind only the client can see (timeout, connect_error, ...): never in a server log."""
    client_status_codes: dict[str, int]
    example_trace_id: str | None
    """The client's first trace id of this group (None for server-only rows)."""
    traces: TraceOutcomes


@dataclass(frozen=True)
class ClientRun:
    """One results file given with --results."""

    kind: str
    target: str
    started_at: str
    duration_s: float
    requests: int
    errors: int
    settings: str
    """What the run was (scenario, users), from its configuration, for the reader."""


@dataclass(frozen=True)
class ClientComparison:
    """The client's view (loadkit runs) beside the server's, joined by counts and trace ids."""

    runs: list[ClientRun]
    requests: int
    errors: int
    error_rate: float | None
    server_errors_in_window: int
    client_only: int
    """Errors the client saw that the server did not log as such: where missing errors hide."""
    server_only: int
    rows: list[JoinRow]
    traces_sampled: int
    traces_not_logged: int
    notes: list[str]
    joined: bool = True
    """False when no service log was given: only the client columns mean anything."""


@dataclass
class _ClientGroup:
    endpoint: str
    kind: str
    count: int = 0
    status_codes: Counter[str] = field(default_factory=Counter)
    trace_ids: list[str] = field(default_factory=list)


class ClientView:
    """The client's errors from results files, prepared for the join while the log streams."""

    def __init__(self, results: Iterable[SmokeResults | LoadResults | LockAuditResults]) -> None:
        """Merge the error groups of every run; lock-audit results have no traffic to join."""
        self.runs: list[ClientRun] = []
        self.windows: list[tuple[float, float]] = []
        self.requests = 0
        self.errors = 0
        self.groups: dict[tuple[str, str], _ClientGroup] = {}
        self.trace_to_group: dict[str, tuple[str, str]] = {}
        self._server_in_window: Counter[tuple[str, str]] = Counter()
        self._trace_seen: dict[str, tuple[str | None, int]] = {}
        self._server_names: dict[str, str] = {}
        for run in results:
            if isinstance(run, LockAuditResults):
                raise InputError(
                    f"--results: {run.target!r} is a lock-audit results file; give the results "
                    "of a smoke or load run (they carry the client's errors)"
                )
            self._add_run(run)
        self.windows.sort()

    def _add_run(self, run: SmokeResults | LoadResults) -> None:
        start = run.started_at.timestamp()
        self.windows.append((start - JOIN_SLACK_S, start + run.duration_s + JOIN_SLACK_S))
        self.runs.append(
            ClientRun(
                kind=run.kind,
                target=run.target,
                started_at=datetime.fromtimestamp(start, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                duration_s=run.duration_s,
                requests=run.totals.requests,
                errors=run.totals.errors,
                settings=", ".join(
                    f"{key} {run.config[key]}"
                    for key in ("scenario", "concurrency", "model")
                    if key in run.config
                ),
            )
        )
        self.requests += run.totals.requests
        self.errors += run.totals.errors
        for error in run.errors:
            key = (join_key(error.endpoint), error.kind)
            group = self.groups.get(key)
            if group is None:
                group = self.groups[key] = _ClientGroup(error.endpoint, error.kind)
            group.count += error.count
            group.status_codes.update(error.status_codes)
            sample = [error.example_trace_id, *error.trace_ids]
            for trace_id in sample:
                if trace_id and trace_id not in self.trace_to_group:
                    self.trace_to_group[trace_id] = key
                    group.trace_ids.append(trace_id)

    def in_window(self, epoch: float | None) -> bool:
        """Whether a server line at ``epoch`` falls in some run's window (widened by the slack)."""
        if epoch is None:
            return False
        return any(start <= epoch <= end for start, end in self.windows)

    # --- fed by the breakdown as the log streams ---------------------------------------------

    def observe_success(self, trace_id: object, status: int) -> None:
        """A success line: remembered only if its trace id is one the client saw fail."""
        if isinstance(trace_id, str) and trace_id in self.trace_to_group:
            self._trace_seen.setdefault(trace_id, (None, status))

    def observe_error(
        self, endpoint: str, kind: str, status: int, epoch: float | None, trace_id: object
    ) -> None:
        """An error line: counted if it falls in a run's window, remembered if sampled."""
        if self.in_window(epoch):
            key = (join_key(endpoint), kind)
            self._server_in_window[key] += 1
            self._server_names.setdefault(key[0], endpoint)
        if isinstance(trace_id, str) and trace_id in self.trace_to_group:
            self._trace_seen.setdefault(trace_id, (kind, status))

    # --- the comparison -----------------------------------------------------------------------

    def compare(
        self,
        *,
        have_success: bool,
        first: float | None,
        last: float | None,
        have_log: bool = True,
    ) -> ClientComparison:
        """Client beside server; ``first``/``last``: the span of the log (epoch seconds).

        Without a log (``have_log`` False) the rows are the client's errors alone: the server
        columns then say nothing, and ``joined`` is False so that nobody reads them.
        """
        keys = set(self.groups) | set(self._server_in_window)
        rows = [self._join_row(key) for key in keys]
        rows.sort(key=lambda r: (-max(r.client, r.server), -r.client_only, r.endpoint, r.kind))
        sampled = sum(r.traces.sampled for r in rows)
        return ClientComparison(
            runs=list(self.runs),
            requests=self.requests,
            errors=self.errors,
            error_rate=self.errors / self.requests if self.requests else None,
            server_errors_in_window=sum(self._server_in_window.values()),
            client_only=sum(r.client_only for r in rows),
            server_only=sum(r.server_only for r in rows),
            rows=rows,
            traces_sampled=sampled,
            traces_not_logged=sum(r.traces.not_logged for r in rows),
            notes=(
                self._notes(sampled=sampled, have_success=have_success, first=first, last=last)
                if have_log
                else ["No service log was given: these are the client's errors alone, not joined."]
            ),
            joined=have_log,
        )

    def _notes(
        self, *, sampled: int, have_success: bool, first: float | None, last: float | None
    ) -> list[str]:
        notes = [
            "Counts are compared per (endpoint, kind) within the runs' windows "
            f"(±{JOIN_SLACK_S:g} s); they are not paired request by request.",
        ]
        if sampled:
            notes.append(
                f"{sampled} client trace id(s) were looked up in the log; unless the results "
                "carry a sample per group, their outcomes are examples, not proportions."
            )
        else:
            notes.append("The results carry no trace ids: only counts can be compared.")
        if not have_success:
            notes.append(
                "The log holds no success lines (the service logs them at debug by default; "
                "ENGINES_ACCESS_LOG_LEVEL=info writes them): a trace id not in the log may be "
                "a success that was not logged."
            )
        overlapping = any(
            first is not None and last is not None and start <= last and first <= end
            for start, end in self.windows
        )
        if first is not None and self.windows and not overlapping:
            notes.append(
                "The log and the runs do not overlap in time: is this the log of the "
                "service those runs targeted?"
            )
        return notes

    def _join_row(self, key: tuple[str, str]) -> JoinRow:
        group = self.groups.get(key)
        client_count = group.count if group else 0
        server_count = self._server_in_window.get(key, 0)
        same = ok = missing = 0
        other: Counter[str] = Counter()
        example: str | None = None
        for trace_id in group.trace_ids if group else ():
            seen = self._trace_seen.get(trace_id)
            if seen is None:
                missing += 1
                outcome = "not in the server log"
            elif seen[0] is None:
                ok += 1
                outcome = f"server answered {seen[1]}"
            else:
                if seen[0] == key[1]:
                    same += 1
                else:
                    other[seen[0]] += 1
                outcome = f"server logged {seen[0]} ({seen[1]})"
            if example is None:
                example = f"{trace_id}: {outcome}"
        return JoinRow(
            endpoint=self._server_names.get(key[0]) or (group.endpoint if group else key[0]),
            kind=key[1],
            client=client_count,
            server=server_count,
            client_only=max(client_count - server_count, 0),
            server_only=max(server_count - client_count, 0),
            client_side_kind=key[1] in CLIENT_KINDS,
            client_status_codes=dict(sorted(group.status_codes.items())) if group else {},
            example_trace_id=group.trace_ids[0] if group and group.trace_ids else None,
            traces=TraceOutcomes(
                sampled=len(group.trace_ids) if group else 0,
                same_kind=same,
                other_kinds=dict(other),
                ok_on_server=ok,
                not_logged=missing,
                example=example,
            ),
        )

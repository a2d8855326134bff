"""A failure's evidence as small tables: title, columns, rows of plain cells.

The gate returns typed evidence (``loadkit.gate.evaluate``); every rendering of the gate (the
terminal, Markdown, JUnit, the JSON verdict) shows the same tables, made here once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from loadkit.gate.evaluate import (
    ErrorGroups,
    Evidence,
    FailedChecks,
    GeneratorNotes,
    LockSites,
    QuietestSeconds,
    SlowestEndpoints,
    SlowestSeconds,
    StallWindow,
    UserExceptions,
    Verdict,
    endpoint_service_time,
)
from loadkit.measure.results import EndpointResults, LatencySummary, TimelinePoint
from loadkit.report.traces import CATEGORY_DOING, CATEGORY_LABELS
from loadkit.report.units import format_fraction, format_seconds
from loadkit.traces.breakdown import TailBreakdown
from loadkit.traces.requests import CATEGORIES

Cell = str | int | float | None
SECONDS_COLUMNS = ("second", "completions", "errors", "p95 ms")


@dataclass(frozen=True)
class EvidenceTable:
    """One piece of evidence as a small table, the same in every format."""

    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[Cell, ...], ...]
    omitted: int = 0
    """Rows left out to keep the table short (``… and N more``)."""


def evidence_tables(evidence: Evidence) -> list[EvidenceTable]:
    """The tables that show one piece of a failure's evidence."""
    match evidence:
        case ErrorGroups():
            return [_error_groups_table(evidence)]
        case StallWindow():
            return _stall_tables(evidence)
        case SlowestEndpoints():
            return [_slowest_endpoints_table(evidence)]
        case SlowestSeconds():
            return [_slowest_seconds_table(evidence)]
        case QuietestSeconds():
            title = "Seconds with the fewest completions"
            return [EvidenceTable(title, SECONDS_COLUMNS, _seconds_rows(evidence.seconds))]
        case GeneratorNotes():
            rows = tuple((note,) for note in evidence.notes)
            return [EvidenceTable("Load generator notes", ("note",), rows)]
        case FailedChecks():
            return [_failed_checks_table(evidence)]
        case LockSites():
            return [_lock_sites_table(evidence)]
        case UserExceptions():
            return [_user_exceptions_table(evidence)]
        case TailBreakdown():
            return _tail_tables(evidence)


def _error_groups_table(evidence: ErrorGroups) -> EvidenceTable:
    total = evidence.total
    scope = " on " + evidence.endpoint if evidence.endpoint else ""
    return EvidenceTable(
        title=f"Top error kinds by endpoint{scope} ({total} errors)",
        columns=("endpoint", "kind", "count", "share", "status", "seen", "trace id", "message"),
        rows=tuple(
            (
                g.endpoint,
                g.kind,
                g.count,
                format_fraction(g.count / total, decimals=1),
                ", ".join(f"{status}×{n}" for status, n in g.status_codes.items()),
                f"{g.first_s:.1f}–{g.last_s:.1f} s",
                g.example_trace_id,
                _shorten(g.example_message),
            )
            for g in evidence.groups
        ),
        omitted=evidence.omitted,
    )


def _stall_tables(evidence: StallWindow) -> list[EvidenceTable]:
    stall = evidence.stall
    window = EvidenceTable(
        title="The longest stall: no request completed while requests were in flight",
        columns=("from", "to", "duration", "wall clock (UTC)"),
        rows=(
            (
                format_seconds(stall.start_s),
                format_seconds(stall.end_s),
                format_seconds(stall.duration_s),
                f"{_clock(evidence.began)} – {_clock(evidence.ended)}",
            ),
        ),
    )
    if not evidence.seconds:
        return [window]
    seconds = EvidenceTable(
        title="Seconds around the stall (completions per second)",
        columns=SECONDS_COLUMNS,
        rows=_seconds_rows(evidence.seconds),
        omitted=evidence.omitted,
    )
    return [window, seconds]


def _clock(moment: datetime) -> str:
    return f"{moment:%H:%M:%S.%f}"[:-3]


def _slowest_seconds_table(evidence: SlowestSeconds) -> EvidenceTable:
    rows = _seconds_rows(evidence.seconds)
    service = evidence.service_p95_ms
    if service is None:
        title = "Slowest seconds of the run (p95 of what completed in each)"
        return EvidenceTable(title, SECONDS_COLUMNS, rows)
    return EvidenceTable(
        "Slowest seconds of the run by service time (service p95 from the send, p95 from the "
        "due time, of what completed in each)",
        (*SECONDS_COLUMNS, "service p95 ms"),
        tuple((*row, value) for row, value in zip(rows, service, strict=True)),
    )


def _seconds_rows(points: Sequence[TimelinePoint]) -> tuple[tuple[Cell, ...], ...]:
    return tuple((p.t_s, p.completions, p.errors, p.p95_ms) for p in points)


def _slowest_endpoints_table(evidence: SlowestEndpoints) -> EvidenceTable:
    def figures(e: EndpointResults) -> LatencySummary:
        summary = endpoint_service_time(e) if evidence.service else e.latency_ms
        return summary if summary is not None else LatencySummary(count=0)

    which = " (service time: from the send)" if evidence.service else ""
    return EvidenceTable(
        title=f"Slowest endpoints by {evidence.metric}{which}",
        columns=("endpoint", "requests", "error rate", "p50 ms", "p95 ms", "p99 ms", "max ms"),
        rows=tuple(
            (
                e.name,
                e.requests,
                format_fraction(e.error_rate),
                figures(e).p50,
                figures(e).p95,
                figures(e).p99,
                figures(e).max,
            )
            for e in evidence.endpoints
        ),
        omitted=evidence.omitted,
    )


def _failed_checks_table(evidence: FailedChecks) -> EvidenceTable:
    return EvidenceTable(
        title=f"Failed smoke checks ({len(evidence.checks)} of {evidence.total})",
        columns=("check", "request", "expected", "got", "kind", "trace id", "message"),
        rows=tuple(
            (
                c.name,
                f"{c.method} {c.path}",
                c.expected_status,
                c.status if c.status is not None else "no response",
                c.error_kind,
                c.trace_id,
                _shorten(c.message),
            )
            for c in evidence.checks
        ),
    )


def _lock_sites_table(evidence: LockSites) -> EvidenceTable:
    return EvidenceTable(
        title=(f"Lock-safety violations ({evidence.violations} in {evidence.files_checked} files)"),
        columns=("site", "code", "problem", "lock taken at"),
        rows=tuple(
            (
                f"{f.path}:{f.line}:{f.col}",
                f.code,
                _shorten(f.message, 100),
                f"line {f.lock_line}" if f.lock_line is not None else None,
            )
            for f in evidence.findings
        ),
        omitted=evidence.omitted,
    )


def _user_exceptions_table(evidence: UserExceptions) -> EvidenceTable:
    return EvidenceTable(
        title=f"Exceptions raised by user code ({evidence.total} in all)",
        columns=("exception", "where", "count", "first seen", "message"),
        rows=tuple(
            (
                g.type,
                g.where,
                g.count,
                format_seconds(g.first_s) if g.first_s is not None else None,
                _shorten(last_line(g.traceback), 80),
            )
            for g in evidence.groups
        ),
        omitted=evidence.omitted,
    )


def tail_sentence(tail: TailBreakdown) -> str:
    """One line: the figure, where, how long, and where most of that time went
    (``P95 POST /api/auth/login 1.84 s: 91 % waiting for the storage lock``)."""
    split = tail.tail
    scope = tail.endpoint or "all endpoints"
    if tail.share is None:
        figure, duration = "mean", split.total_ns / max(split.requests, 1)
        which = f"all {tail.traced} traced requests"
    elif split.requests == 1 and tail.share == 0:
        figure, duration = tail.figure.upper(), tail.from_ns
        which = f"the slowest of {tail.traced} traced requests"
    else:
        figure, duration = tail.figure.upper(), tail.from_ns
        which = (
            f"the slowest {tail.share * 100:g} %: {split.requests} of {tail.traced} traced "
            "requests, from their SERVER spans"
        )
    dominant = split.dominant
    went = (
        f"{format_fraction(split.share(dominant), decimals=0)} {CATEGORY_DOING[dominant]}"
        if dominant is not None
        else "no time recorded"
    )
    return f"{figure} {scope} {_duration(duration)}: {went} ({which})"


def _duration(nanoseconds: float) -> str:
    return f"{nanoseconds / 1e9:.2f} s" if nanoseconds >= 1e9 else f"{nanoseconds / 1e6:.1f} ms"


def _tail_tables(tail: TailBreakdown) -> list[EvidenceTable]:
    split = tail.tail
    per_request = max(split.requests, 1)
    ranked = sorted(CATEGORIES, key=lambda c: (-split.self_ns[c], c))
    tables = [
        EvidenceTable(
            title="Where the time went: " + tail_sentence(tail),
            columns=("where", "share", "ms per request"),
            rows=tuple(
                (
                    CATEGORY_LABELS[c],
                    format_fraction(split.share(c), decimals=1),
                    round(split.ms(c) / per_request, 1),
                )
                for c in ranked
                if split.self_ns[c]
            ),
        )
    ]
    if tail.endpoint is None and tail.endpoints:
        tables.append(
            EvidenceTable(
                title="Endpoints of those requests",
                columns=("endpoint", "requests"),
                rows=tuple(tail.endpoints),
            )
        )
    return tables


def last_line(traceback: str) -> str | None:
    """A traceback's last line: the exception and its message (``AttributeError: ...``)."""
    lines = [line for line in traceback.splitlines() if line.strip()]
    return lines[-1].strip() if lines else None


def _shorten(text: str | None, width: int = 60) -> str | None:
    if text is None:
        return None
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def verdict_tables(verdict: Verdict) -> list[EvidenceTable]:
    """All the tables of a verdict's evidence, in order."""
    return [table for evidence in verdict.evidence for table in evidence_tables(evidence)]

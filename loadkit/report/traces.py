"""Rendering of where the time went (``loadkit traces``): a terminal table, and JSON.

Nothing here sums; it shows what ``loadkit.traces.breakdown`` computed. The table gives, per
endpoint, each category's share of the time and its mean per request (ms), for all requests, the
slowest 1 % and the failed ones; then the slowest traces with their critical paths. The JSON
carries the same figures with the exact sums (``loadkit.traces/1``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import orjson
from tabulate import tabulate

from loadkit.exceptions import ConfigError
from loadkit.report.units import NO_VALUE, format_fraction, format_ms
from loadkit.traces.breakdown import EndpointBreakdown, TimeSplit, TracesBreakdown
from loadkit.traces.read import ReadCounts
from loadkit.traces.requests import CATEGORIES, AssembleCounts, Category, PathStep, RequestTimes

TracesFormat = Literal["table", "json"]
FORMATS: tuple[TracesFormat, ...] = ("table", "json")
JSON_SCHEMA = "loadkit.traces/1"

CATEGORY_LABELS: dict[Category, str] = {
    Category.LOCK_WAIT: "lock wait",
    Category.LOCK_HOLD: "lock hold",
    Category.DATABASE: "database",
    Category.PASSWORD: "password hashing",
    Category.TOKEN: "token work",
    Category.REST: "the rest",
}
CATEGORY_KEYS: dict[Category, str] = {
    Category.LOCK_WAIT: "lock_wait",
    Category.LOCK_HOLD: "lock_hold",
    Category.DATABASE: "database",
    Category.PASSWORD: "password_hashing",
    Category.TOKEN: "token_work",
    Category.REST: "rest",
}
CATEGORY_DOING: dict[Category, str] = {
    Category.LOCK_WAIT: "waiting for the storage lock",
    Category.LOCK_HOLD: "holding the storage lock",
    Category.DATABASE: "in the database",
    Category.PASSWORD: "hashing or checking passwords",
    Category.TOKEN: "signing or verifying tokens",
    Category.REST: "outside the traced work (handler, middleware, injected faults)",
}
"""What a request was doing in each category, for a sentence (the gate's evidence)."""


def parse_format(value: str) -> TracesFormat:
    """``--format``'s value, checked."""
    for known in FORMATS:
        if value == known:
            return known
    raise ConfigError(f"--format {value!r}: choose one of {', '.join(FORMATS)}")


def render_traces(
    breakdown: TracesBreakdown,
    *,
    fmt: TracesFormat,
    read: ReadCounts,
    assembled: AssembleCounts,
    sources: Sequence[str],
) -> str:
    """The breakdown in ``fmt``, with what was read to make it."""
    if fmt == "json":
        return render_traces_json(breakdown, read=read, assembled=assembled, sources=sources)
    return render_traces_table(breakdown, read=read, assembled=assembled)


def render_traces_table(
    breakdown: TracesBreakdown, *, read: ReadCounts, assembled: AssembleCounts
) -> str:
    """The terminal report: the split per endpoint, then the slowest traces."""
    share = f"{breakdown.slowest_share * 100:g} %"
    parts = [
        f"Where the time went: {breakdown.requests:,} requests from {read.spans:,} spans "
        f"(per category: its share of the time · ms per request; slowest {share} by the "
        "server span's duration; failed: status ≥ 500 or an error kind)",
        tabulate(
            [row for e in breakdown.endpoints for row in _endpoint_rows(e, share)],
            headers=["endpoint", "requests", "ms/request"]
            + [CATEGORY_LABELS[c] for c in CATEGORIES],
            tablefmt="simple",
            disable_numparse=True,
        ),
    ]
    if breakdown.slowest:
        parts.append(
            "Slowest traces (critical path: the longest child at each level, ms)\n"
            + tabulate(
                [
                    [r.trace_id, r.endpoint, format_ms(r.duration_ns / 1e6), _outcome(r), _path(r)]
                    for r in breakdown.slowest
                ],
                headers=["trace id", "endpoint", "ms", "outcome", "critical path"],
                tablefmt="simple",
                disable_numparse=True,
            )
        )
    parts.extend(f"note: {note}" for note in _notes(read, assembled))
    return "\n\n".join(parts) + "\n"


def _endpoint_rows(endpoint: EndpointBreakdown, share: str) -> list[list[str]]:
    # An arrow, not spaces: tabulate strips a cell's leading whitespace.
    slowest = f"↳ slowest {share} (≥ {format_ms(endpoint.slowest_from_ns / 1e6)} ms)"
    return [
        _split_row(endpoint.endpoint, endpoint.all),
        _split_row(slowest, endpoint.slowest),
        _split_row("↳ failed", endpoint.failed),
    ]


def _split_row(label: str, split: TimeSplit) -> list[str]:
    if not split.requests:
        return [label, "0", NO_VALUE] + [NO_VALUE for _ in CATEGORIES]
    per_request = split.total_ns / split.requests / 1e6
    return [label, f"{split.requests:,}", format_ms(per_request)] + [
        _cell(split, c) for c in CATEGORIES
    ]


def _cell(split: TimeSplit, category: Category) -> str:
    if not split.self_ns[category]:
        return "0"
    share = format_fraction(split.share(category), decimals=1)
    return f"{share} · {format_ms(split.ms(category) / split.requests)}"


def _outcome(request: RequestTimes) -> str:
    return "failed" if request.failed else "ok"


def _path(request: RequestTimes) -> str:
    return " → ".join(_step(step) for step in request.critical_path[1:]) or "(no child spans)"


def _step(step: PathStep) -> str:
    return f"{step.name} {format_ms(step.duration_ns / 1e6)}"


def _notes(read: ReadCounts, assembled: AssembleCounts) -> list[str]:
    notes = []
    if read.skipped_lines:
        notes.append(f"{read.skipped_lines} line(s) were not OTLP-JSON records and were skipped")
    if read.skipped_spans:
        notes.append(f"{read.skipped_spans} span(s) without ids or times were skipped")
    if assembled.traces_without_server_span:
        notes.append(
            f"{assembled.traces_without_server_span} trace(s) had no SERVER span and are not "
            "counted (requests whose SERVER span is not in these files, background work, or "
            "spans written long after their request's)"
        )
    return notes


# --- JSON ----------------------------------------------------------------------------------------


def traces_data(
    breakdown: TracesBreakdown,
    *,
    read: ReadCounts,
    assembled: AssembleCounts,
    sources: Sequence[str],
) -> dict[str, Any]:
    """The breakdown as plain data (``--format json``)."""
    return {
        "schema": JSON_SCHEMA,
        "sources": list(sources),
        "requests": breakdown.requests,
        "spans": read.spans,
        "slowest_share": breakdown.slowest_share,
        "categories": [CATEGORY_KEYS[c] for c in CATEGORIES],
        "endpoints": [
            {
                "endpoint": e.endpoint,
                "all": split_data(e.all),
                "slowest": split_data(e.slowest) | {"from_ms": e.slowest_from_ns / 1e6},
                "failed": split_data(e.failed),
            }
            for e in breakdown.endpoints
        ],
        "slowest_traces": [
            {
                "trace_id": r.trace_id,
                "endpoint": r.endpoint,
                "duration_ms": r.duration_ns / 1e6,
                "failed": r.failed,
                "critical_path": [
                    {
                        "name": step.name,
                        "duration_ms": step.duration_ns / 1e6,
                        "category": None if step.category is None else CATEGORY_KEYS[step.category],
                    }
                    for step in r.critical_path
                ],
                "self_ms": {CATEGORY_KEYS[c]: r.self_ns[c] / 1e6 for c in CATEGORIES},
            }
            for r in breakdown.slowest
        ],
        "notes": _notes(read, assembled),
    }


def split_data(split: TimeSplit) -> dict[str, Any]:
    """One split as plain data: requests, summed ms and share per category."""
    return {
        "requests": split.requests,
        "total_ms": split.total_ns / 1e6,
        "ms": {CATEGORY_KEYS[c]: split.ms(c) for c in CATEGORIES},
        "share": {CATEGORY_KEYS[c]: split.share(c) for c in CATEGORIES},
    }


def render_traces_json(
    breakdown: TracesBreakdown,
    *,
    read: ReadCounts,
    assembled: AssembleCounts,
    sources: Sequence[str],
) -> str:
    """The breakdown as indented JSON."""
    data = traces_data(breakdown, read=read, assembled=assembled, sources=sources)
    return orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n"

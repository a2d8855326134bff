"""Rendering of the error breakdown: a terminal table, the Markdown runbook page, and JSON.

Nothing here counts; it shows what ``loadkit.logs.breakdown`` computed. The table and the Markdown
carry the same facts in the same order — the top offenders first, because they are what a fix
targets — and the Markdown adds what to do about each kind, so that it can stand as the runbook
page (``docs/runbooks/errors_breakdown.md``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Literal

import orjson
from tabulate import tabulate

from loadkit.exceptions import ConfigError
from loadkit.logs.breakdown import ErrorBreakdown, InputSummary
from loadkit.logs.join import ClientComparison, JoinRow
from loadkit.report.units import format_fraction, format_ms

ErrorsFormat = Literal["table", "markdown", "json"]
FORMATS: tuple[ErrorsFormat, ...] = ("table", "markdown", "json")
JSON_SCHEMA = "loadkit.errors/1"

KIND_HINTS: dict[str, str] = {
    "storage_lock_timeout": "a handler waited longer than ENGINES_STORAGE_LOCK_TIMEOUT_S for the "
    "storage lock: something holds it during CPU or I/O work (run `loadkit audit-locks`)",
    "db_pool_exhausted": "no pooled connection came free in time: compare with the pool lines "
    "(max in use, waited) and look for slow queries or connections held across awaits",
    "database_error": "the database failed or was unreachable: check its health and the "
    "service's database URL",
    "query_timeout": "a query ran past its timeout: find it by the example trace id",
    "overloaded": "the in-flight limit shed load (backpressure working): capacity, or slow "
    "requests that pile up",
    "rate_limited": "the login rate limit answered 429: expected when a client hammers one account",
    "invalid_credentials": "wrong email or password: a test-data problem more often than a "
    "service one",
    "unauthorized": "missing, expired or bad bearer tokens: check the client's login flow",
    "validation_error": "the request broke a field rule: the message names the field",
    "not_found": "no such route or resource (endpoint `unmatched` = no route matched the path)",
    "conflict": "the resource already existed (e.g. registering an email twice)",
    "idempotency_conflict": "an Idempotency-Key reused with a different body: a client bug "
    "(keys must be unique per intended write)",
    "payload_too_large": "bodies over ENGINES_MAX_BODY_BYTES",
    "method_not_allowed": "the route exists, not for this method",
    "headers_too_large": "request line and headers over ENGINES_MAX_HEADER_BYTES",
    "header_timeout": "request headers not received within ENGINES_HEADER_TIMEOUT_S (slow or "
    "stalled client)",
    "shutting_down": "a read still running when the shutdown grace ran out (nothing was written)",
    "internal_error": "an unclassified exception: a bug; its traceback is in the log under the "
    "example trace id",
    "timeout": "the client gave up waiting: the server may have logged the request later, or not "
    "at all",
    "connect_error": "no connection: the service was down or refusing connections",
    "connection_reset": "the connection dropped mid-request: crash, restart or proxy",
    "protocol_error": "the response could not be parsed as HTTP",
    "http2_internal_error": "an HTTP/2 stream was reset (or the connection ended) with "
    "INTERNAL_ERROR: a proxy whose upstream broke off a response after its headers (a handler "
    "stuck past the proxy's timeout, or crashed)",
    "http2_stream_reset": "an HTTP/2 stream was reset with another code (in the message): CANCEL, "
    "ENHANCE_YOUR_CALM (the server's rate limit), ...",
    "http2_refused_stream": "HTTP/2 REFUSED_STREAM: the server did not process the request (too "
    "many concurrent streams, shutting down); safe to retry",
    "http2_goaway": "the HTTP/2 connection ended (GOAWAY, code in the message) with the request "
    "open: a server restart or its complaint",
    "unexpected_status": "an error status without a kind in its body: often a proxy's page",
    "bad_gateway": "the proxy got no valid answer from its upstream (refused, reset, or a "
    "response cut short): the upstream crashed, restarted or is not listening",
    "gateway_timeout": "the upstream did not answer within the proxy's timeout "
    "(proxy_read_timeout): slow requests, or a service frozen under load",
    "service_unavailable": "shed or down: backpressure, a limit (uvicorn --limit-concurrency), "
    "or the upstream marked failed by the proxy",
    "client_closed_request": "nginx 499: the client gave up before the answer came (its own "
    "timeout): look at the latency of that endpoint",
    "bad_request": "the request was malformed (a garbled request line, a bad header or body)",
    "forbidden": "refused by an access rule or a missing permission",
    "request_timeout": "the client was too slow to send its request (408)",
    "client_error": "a 4xx status without a kind of its own in the log",
    "server_error": "a 5xx status without a kind of its own in the log",
    "not_sent": "open model: iterations still waiting for a free user when the run ended (the "
    "target was too slow to let them start); raise --max-in-flight or look at the response times",
}
"""What each kind usually means and where to look: the runbook's advice."""


def parse_format(value: str) -> ErrorsFormat:
    """A ``--format`` value, or a ConfigError listing the formats there are."""
    for fmt in FORMATS:
        if value == fmt:
            return fmt
    raise ConfigError(f"--format {value!r} is not known; use one of {', '.join(FORMATS)}")


def render_errors(
    breakdown: ErrorBreakdown,
    fmt: ErrorsFormat,
    *,
    command: str | None = None,
    generated_at: str | None = None,
) -> str:
    """The whole report in one format, ending with a newline.

    ``command`` and ``generated_at`` say how the page was made (Markdown and JSON show them).
    """
    if fmt == "json":
        return render_errors_json(breakdown, command=command, generated_at=generated_at)
    if fmt == "markdown":
        return render_errors_markdown(breakdown, command=command, generated_at=generated_at)
    return render_errors_table(breakdown)


LOG_LINES = {"loadkit": "service log lines", "nginx": "access log lines", "mapping": "log lines"}
"""What a usable line is called, by log format."""


def empty_input_message(inputs: InputSummary) -> str:
    """Why there is nothing to report, for an input that held no service log line."""
    sources = ", ".join("stdin" if s == "-" else s for s in inputs.sources) or "the input"
    if inputs.lines == 0:
        return f"{sources}: empty, no log lines to read"
    name = LOG_LINES.get(inputs.log_format, "log lines")
    if inputs.outside_window:
        return (
            f"{sources}: none of the {inputs.outside_window:,} {name} falls between "
            "--since and --until (or they carry no readable ts); widen the window"
        )
    if inputs.log_format == "nginx":
        return (
            f"{sources}: no nginx access log lines found ({inputs.lines:,} line(s) read, "
            f"{inputs.unmatched:,} not in the combined format); the nginx preset reads nginx's "
            'default combined log ($remote_addr - $remote_user [$time_local] "$request" '
            "$status ...): is this that log?"
        )
    if inputs.log_format == "mapping":
        return (
            f"{sources}: no request lines found ({inputs.lines:,} line(s) read: "
            f"{inputs.not_json:,} not JSON, {inputs.foreign:,} JSON without the endpoint/path "
            "or status field of [logs]); check the field paths in [logs] against a line of the log"
        )
    found = (
        f"{inputs.lines:,} line(s) read: {inputs.not_json:,} not JSON, "
        f"{inputs.foreign:,} JSON without the service's fields"
    )
    return (
        f"{sources}: no service log lines found ({found}); loadkit errors reads the service's "
        "JSON log (one object per line with ts, level, event, ...): is this that log?"
    )


# --- cells ------------------------------------------------------------------------------------


def _statuses(codes: Mapping[str, int]) -> str:
    if len(codes) == 1:
        return next(iter(codes))
    return ", ".join(f"{code}×{count:,}" for code, count in codes.items()) or "—"


def _day(breakdown: ErrorBreakdown) -> str | None:
    """The one UTC day every timestamp falls on, if there is one (then times drop the date)."""
    first, last = breakdown.totals.first_seen, breakdown.totals.last_seen
    if first and last and first[:10] == last[:10]:
        return first[:10]
    return None


def _time(ts: str | None, day: str | None) -> str:
    if ts is None:
        return "—"
    if day is not None and ts.startswith(day):
        return ts[11:].removesuffix("Z")
    return ts


def _input_line(breakdown: ErrorBreakdown) -> str:
    inputs = breakdown.inputs
    sources = ", ".join("stdin" if s == "-" else s for s in inputs.sources) or "(none)"
    name = LOG_LINES.get(inputs.log_format, "log lines")
    text = f"{sources}: {inputs.lines:,} lines, {inputs.log_lines:,} {name}"
    skipped = []
    if inputs.not_json:
        skipped.append(f"{inputs.not_json:,} not JSON")
    if inputs.foreign:
        skipped.append(f"{inputs.foreign:,} foreign JSON")
    if inputs.unmatched:
        skipped.append(f"{inputs.unmatched:,} not in nginx's combined format")
    if inputs.incomplete:
        skipped.append(f"{inputs.incomplete:,} request lines without endpoint/status")
    if skipped:
        text += f"; skipped {', '.join(skipped)}"
    if inputs.outside_window:
        text += f"; {inputs.outside_window:,} outside the time window"
    return text


def _window_line(breakdown: ErrorBreakdown) -> str:
    totals = breakdown.totals
    span = f"{totals.first_seen or '?'} → {totals.last_seen or '?'}"
    if breakdown.since or breakdown.until:
        window = f"{breakdown.since or 'the start'} → {breakdown.until or 'the end'}"
        return f"Lines kept span {span} (window {window})"
    return f"Log spans {span}"


def _totals_line(breakdown: ErrorBreakdown) -> str:
    totals = breakdown.totals
    text = f"Requests seen {totals.requests:,} · errors {totals.errors:,}"
    if totals.error_rate is not None:
        text += f" · error rate {format_fraction(totals.error_rate, decimals=1)}"
    elif totals.requests and breakdown.inputs.log_format == "loadkit":
        text += (
            " · error rate unknown: the log holds no success lines (set "
            "ENGINES_ACCESS_LOG_LEVEL=info to log them)"
        )
    elif totals.requests:
        text += " · error rate unknown: the log holds no success lines"
    return text


_FAULTS_INTRO = "Faults injected on purpose (the service's start-up lines)"
_FAULTS_OUTRO = "the errors they cause are the experiment, not a bug"


def _faults_line(breakdown: ErrorBreakdown) -> str | None:
    if not breakdown.faults:
        return None
    return f"{_FAULTS_INTRO}: {'; '.join(breakdown.faults)}; {_FAULTS_OUTRO}."


def _events_line(breakdown: ErrorBreakdown) -> str | None:
    if not breakdown.events:
        return None
    return "Other service events: " + ", ".join(
        f"{name} {count:,}" for name, count in breakdown.events.items()
    )


POOL_KINDS = ("db_pool_exhausted", "query_timeout", "database_error")
"""Kinds to set beside the pool's saturation: when they happened is the correlation to see."""


def _pool_line(breakdown: ErrorBreakdown, day: str | None = None) -> str:
    pool = breakdown.pool
    if pool is None:
        return "No database pool lines (event db_pool) in the log."
    parts = [
        f"{pool.lines:,} pool lines",
        f"size {pool.size if pool.size is not None else '?'}",
        f"max size {pool.max_size if pool.max_size is not None else '?'}",
        f"max in use {pool.max_in_use if pool.max_in_use is not None else '?'}",
        f"max overflow {pool.max_overflow if pool.max_overflow is not None else '?'}",
        f"checkouts that waited {pool.total_waited if pool.total_waited is not None else '?'} "
        f"(at most {pool.max_waited if pool.max_waited is not None else '?'} between two lines)",
    ]
    if pool.total_timed_out is not None:
        parts.append(f"checkouts that timed out {pool.total_timed_out:,}")
    text = ", ".join(parts).capitalize() + "."
    if pool.saturated_lines:
        text += (
            f" Saturated (all in use, or checkouts waited) in {pool.saturated_lines:,} "
            f"line(s), {_time(pool.first_saturated, day)} → {_time(pool.last_saturated, day)}."
        )
    else:
        text += " Never saturated."
    related = [
        f"{k.kind} {k.count:,} ({_time(k.first_seen, day)} → {_time(k.last_seen, day)})"
        for k in breakdown.by_kind
        if k.kind in POOL_KINDS
    ]
    if related:
        text += " Database errors in the same log: " + ", ".join(related) + "."
    return text


# --- tables -----------------------------------------------------------------------------------

_TOP_HEADERS = [
    "#",
    "endpoint",
    "kind",
    "count",
    "% of errors",
    "status",
    "p95 ms",
    "first seen",
    "last seen",
    "example trace id",
]


def _top_rows(breakdown: ErrorBreakdown, day: str | None) -> list[list[str]]:
    return [
        [
            str(rank),
            o.endpoint,
            o.kind,
            f"{o.count:,}",
            format_fraction(o.share_of_errors, decimals=1),
            _statuses(o.status_codes),
            format_ms(o.p95_ms),
            _time(o.first_seen, day),
            _time(o.last_seen, day),
            o.example_trace_id or "—",
        ]
        for rank, o in enumerate(breakdown.top, start=1)
    ]


_KIND_HEADERS = [
    "kind",
    "count",
    "% of errors",
    "% of requests",
    "status",
    "endpoints",
    "first seen",
    "last seen",
]


def _kind_rows(breakdown: ErrorBreakdown, day: str | None) -> list[list[str]]:
    return [
        [
            k.kind,
            f"{k.count:,}",
            format_fraction(k.share_of_errors, decimals=1),
            format_fraction(k.share_of_requests, decimals=1),
            _statuses(k.status_codes),
            str(k.endpoints),
            _time(k.first_seen, day),
            _time(k.last_seen, day),
        ]
        for k in breakdown.by_kind
    ]


_ENDPOINT_HEADERS = ["endpoint", "requests", "errors", "error rate", "top kind"]


MAX_ENDPOINT_ROWS = 40
"""Endpoints shown in the table and the page (most errors first); JSON has them all."""


def _more_endpoints(breakdown: ErrorBreakdown) -> str | None:
    more = len(breakdown.by_endpoint) - MAX_ENDPOINT_ROWS
    if more <= 0:
        return None
    return f"… and {more:,} more endpoints (all of them in --format json)"


def _endpoint_rows(breakdown: ErrorBreakdown) -> list[list[str]]:
    return [
        [
            e.endpoint,
            f"{e.requests:,}",
            f"{e.errors:,}",
            format_fraction(e.error_rate, decimals=1),
            f"{e.top_kind} ({e.top_kind_count:,})" if e.top_kind else "—",
        ]
        for e in breakdown.by_endpoint[:MAX_ENDPOINT_ROWS]
    ]


_JOIN_HEADERS = [
    "endpoint",
    "kind",
    "client",
    "server",
    "client only",
    "server only",
    "trace ids: same / other / ok / missing",
    "example",
]


def _join_rows(rows: Sequence[JoinRow]) -> list[list[str]]:
    out = []
    for r in rows:
        t = r.traces
        traces = (
            f"{t.same_kind} / {sum(t.other_kinds.values())} / {t.ok_on_server} / {t.not_logged}"
            if t.sampled
            else "—"
        )
        kind = f"{r.kind} (client-side)" if r.client_side_kind else r.kind
        out.append(
            [
                r.endpoint,
                kind,
                f"{r.client:,}",
                f"{r.server:,}",
                f"{r.client_only:,}",
                f"{r.server_only:,}",
                traces,
                t.example or "—",
            ]
        )
    return out


_CLIENT_HEADERS = ["endpoint", "kind", "client", "status", "example trace id"]


def _client_rows(rows: Sequence[JoinRow]) -> list[list[str]]:
    return [
        [
            r.endpoint,
            f"{r.kind} (client-side)" if r.client_side_kind else r.kind,
            f"{r.client:,}",
            _statuses(r.client_status_codes),
            r.example_trace_id or "—",
        ]
        for r in rows
        if r.client
    ]


def _client_table(client: ClientComparison, markdown: bool) -> str | None:
    if not client.rows:
        return None
    if client.joined:
        rows, headers = _join_rows(client.rows), _JOIN_HEADERS
    else:
        rows, headers = _client_rows(client.rows), _CLIENT_HEADERS
    return _md_table(rows, headers) if markdown else _grid(rows, headers)


def _client_summary(client: ClientComparison) -> str:
    runs = "; ".join(
        f"{r.kind} {r.started_at}, {r.duration_s:.1f} s"
        + (f", {r.settings}" if r.settings else "")
        + f", against {r.target}"
        for r in client.runs
    )
    seen = (
        f"Client ({len(client.runs)} run(s): {runs}): {client.requests:,} requests, "
        f"{client.errors:,} errors ({format_fraction(client.error_rate, decimals=1)})."
    )
    if not client.joined:
        return seen
    return (
        f"{seen} Server logged "
        f"{client.server_errors_in_window:,} errors in the runs' windows. "
        f"{client.client_only:,} client errors were not logged by the server as such "
        f"(timeouts, connection errors, proxies); {client.server_only:,} server errors were "
        "not seen by these runs as such (other traffic, requests the client gave up on, or "
        "answers the scenario expects, such as deliberately wrong logins)."
    )


# --- formats ----------------------------------------------------------------------------------


def render_errors_table(breakdown: ErrorBreakdown) -> str:
    """The breakdown for a terminal: summary lines, then plain tables."""
    day = _day(breakdown)
    if breakdown.inputs.sources:
        lines = [_input_line(breakdown), _window_line(breakdown), _totals_line(breakdown)]
        lines += [line for line in (_faults_line(breakdown),) if line] + [""]
        lines += _server_tables(breakdown, day)
    else:
        lines = [NO_LOG]
    if breakdown.client is not None:
        client = breakdown.client
        lines += ["", _client_summary(client)]
        lines += [table for table in (_client_table(client, markdown=False),) if table]
        lines += [f"Note: {note}" for note in client.notes]
    return "\n".join(lines).rstrip() + "\n"


NO_LOG = "No service log given (--results only): the client's view alone."


def _server_tables(breakdown: ErrorBreakdown, day: str | None) -> list[str]:
    lines: list[str] = []
    if breakdown.top:
        lines.append(f"Top {len(breakdown.top)} offenders (endpoint, kind)" + _of_groups(breakdown))
        lines.append(_grid(_top_rows(breakdown, day), _TOP_HEADERS))
        lines.append("")
        lines.append("By kind")
        lines.append(_grid(_kind_rows(breakdown, day), _KIND_HEADERS))
        lines.append("")
    else:
        lines += ["No errors in the log.", ""]
    if breakdown.by_endpoint:
        lines.append("By endpoint")
        lines.append(_grid(_endpoint_rows(breakdown), _ENDPOINT_HEADERS))
        lines += [more for more in (_more_endpoints(breakdown),) if more]
        lines.append("")
    if breakdown.pool is not None or breakdown.inputs.log_format == "loadkit":
        # Only the bundled service logs its pool: elsewhere the absence says nothing.
        lines.append("Database pool: " + _pool_line(breakdown, day))
    events = _events_line(breakdown)
    if events:
        lines.append(events)
    return lines


def _of_groups(breakdown: ErrorBreakdown) -> str:
    if breakdown.groups > len(breakdown.top):
        return f", of {breakdown.groups:,} groups"
    return ""


_NUMERIC = frozenset(
    {"#", "count", "% of errors", "% of requests", "p95 ms", "endpoints", "requests", "errors"}
    | {"error rate", "client", "server", "client only", "server only"}
)


def _grid(rows: list[list[str]], headers: list[str], tablefmt: str = "simple") -> str:
    # Cells are preformatted text (thousands separators, units): keep tabulate from parsing
    # them, and right-align the numeric columns so that magnitudes line up.
    align = tuple("right" if h in _NUMERIC else "left" for h in headers)
    return str(
        tabulate(rows, headers=headers, tablefmt=tablefmt, disable_numparse=True, colalign=align)
    )


def _md_table(rows: list[list[str]], headers: list[str]) -> str:
    escaped = [[cell.replace("|", "\\|") for cell in row] for row in rows]
    return _grid(escaped, headers, "github")


def render_errors_markdown(
    breakdown: ErrorBreakdown, *, command: str | None = None, generated_at: str | None = None
) -> str:
    """The runbook page: what failed, where, since when, and what each kind asks of you."""
    day = _day(breakdown)
    out = ["# Error breakdown", ""]
    if command or generated_at:
        made = "Generated"
        if generated_at:
            made += f" {generated_at}"
        if command:
            made += f" by `{command}`"
        out += [made + ".", ""]
    if breakdown.inputs.sources:
        out += _server_sections(breakdown, day)
    else:
        out += [NO_LOG, ""]
    if breakdown.client is not None:
        client = breakdown.client
        out += ["## Client and server" if client.joined else "## Client", ""]
        out += [_client_summary(client), ""]
        out += [table for table in (_client_table(client, markdown=True),) if table] + [""]
        out += [f"- {note}" for note in client.notes] + [""]
    kinds = [k.kind for k in breakdown.by_kind]
    if breakdown.client is not None:
        kinds += [r.kind for r in breakdown.client.rows if r.client and r.kind not in kinds]
    hints = [(kind, KIND_HINTS[kind]) for kind in kinds if kind in KIND_HINTS]
    if hints:
        out += ["## What each kind asks of you", ""]
        out += [f"- **{kind}**: {hint}." for kind, hint in hints]
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def _server_sections(breakdown: ErrorBreakdown, day: str | None) -> list[str]:
    out = [
        f"- Input: {_input_line(breakdown)}.",
        f"- {_window_line(breakdown)}" + (f" (times below are UTC on {day})." if day else "."),
        f"- {_totals_line(breakdown)}.",
        "",
    ]
    if breakdown.faults:
        out += [f"> **{_FAULTS_INTRO}**; {_FAULTS_OUTRO}:", ">"]
        out += [f"> - {fault}" for fault in breakdown.faults] + [""]
    if breakdown.top:
        out += [
            f"## Top {len(breakdown.top)} offenders{_of_groups(breakdown)}",
            "",
            "Each row is one (endpoint, kind): the unit a fix targets. Follow the example trace id "
            "into the service log (`grep <trace id>`) for the full story of one request.",
            "",
            _md_table(_top_rows(breakdown, day), _TOP_HEADERS),
            "",
            "## By kind",
            "",
            _md_table(_kind_rows(breakdown, day), _KIND_HEADERS),
            "",
        ]
    else:
        out += ["No errors in the log.", ""]
    if breakdown.by_endpoint:
        out += ["## By endpoint", "", _md_table(_endpoint_rows(breakdown), _ENDPOINT_HEADERS), ""]
        more = _more_endpoints(breakdown)
        if more:
            out += [more + ".", ""]
    if breakdown.pool is not None or breakdown.inputs.log_format == "loadkit":
        out += ["## Database pool", "", _pool_line(breakdown, day), ""]
    events = _events_line(breakdown)
    if events:
        out += [f"{events}.", ""]
    return out


def render_errors_json(
    breakdown: ErrorBreakdown, *, command: str | None = None, generated_at: str | None = None
) -> str:
    """Everything as one JSON document (schema ``loadkit.errors/1``, its fields in
    docs/errors.md, which tests/loadkit/test_errors_doc.py holds to the fields written here)."""
    document = {
        "schema": JSON_SCHEMA,
        "generated_at": generated_at,
        "command": command,
        **asdict(breakdown),
    }
    return orjson.dumps(document, option=orjson.OPT_INDENT_2).decode() + "\n"

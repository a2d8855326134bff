"""The HTML report: one self-contained page (no network) with the verdict, charts and tables.

Pure: results, the gate's report and the baselines in, the page's text out
(``loadkit.run.report`` reads the files and writes the page). The charts are Bokeh's
(``loadkit.report.html_charts``); its JavaScript and CSS are inlined from the installed package
when the page is made, so the page opens offline from a CI artifact.

Stable DOM contract (browser tests and scripts rely on it; add to it, never change it):

- ``#verdict`` carries ``data-outcome`` (``passed``, ``failed``, ``invalid``; absent without
  ``--config``); each criterion's row is ``tr[data-criterion="<kind>.<metric>"]`` (with
  ``data-status``) and its measured value, as the terminal shows it, is in ``[data-measured]``;
  with several results files of one kind, the row also says which in ``data-results="<path>"``
  (and a "results" column), as the terminal's table does; regression criteria are
  ``tr[data-regression="<kind>.<metric>"]``;
- each results file is a ``section[data-results="<path>"]`` with ``data-kind``;
- each chart of a load run (one with requests; a smoke run has tables only) is inside an
  element ``[data-chart="latency"|"throughput"|"errors"|"distribution"]``;
- the whole run's figures are ``tr[data-overall]``, each endpoint's ``tr[data-endpoint="<name>"]``,
  their cells ``td[data-metric="requests"|"errors"|"error_rate"|"rps"|"p50_ms"|"p95_ms"|
  "p99_ms"|"max_ms"]`` (open model, when service time differs: also ``"service_p95_ms"|
  "service_p99_ms"``) formatted exactly as the terminal's table (``1,234``, ``0.50 %``,
  ``1,040.2``);
- error groups are ``tr[data-error-group]`` (``data-endpoint``, ``data-kind``), their trace ids in
  ``[data-trace-id]``; smoke checks ``tr[data-check="<name>"]``; lock findings
  ``tr[data-finding]``; the run's facts ``dl[data-facts]``, the longest stall
  ``[data-stall]`` with ``data-start-s`` and ``data-end-s``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from html import escape
from typing import Any, TypeGuard

from bokeh.embed import components
from bokeh.resources import Component, Resources

from loadkit.gate.evaluate import AnyResults, GateReport
from loadkit.measure.results import LatencySummary, LoadResults, LockAuditResults, SmokeResults
from loadkit.report.gate import (
    gate_notes,
    regression_cells,
    render_gate_headline,
    several_of_a_kind,
    verdict_cells,
    verdict_reason,
)
from loadkit.report.gate_evidence import verdict_tables
from loadkit.report.gate_regression import REGRESSION_HEADERS
from loadkit.report.html_charts import run_charts
from loadkit.report.load import service_differs, stopped_line
from loadkit.report.smoke import HEADERS as SMOKE_HEADERS
from loadkit.report.smoke import check_row
from loadkit.report.timeline_figures import second_figures
from loadkit.report.units import NO_VALUE, format_fraction, format_ms, format_seconds

TRACE_IDS_SHOWN = 5
"""Trace ids shown per error group: the example and a few more of the results' sample."""
BOKEH_COMPONENTS: list[Component] = ["bokeh", "bokeh-widgets"]
"""The parts of BokehJS the charts use (the endpoint selector is a widget); tables, WebGL and
MathJax are left out of the page."""

_STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 auto;max-width:1200px;
padding:16px 24px;color:#1d2330}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ddd}
h3{font-size:15px;margin:18px 0 6px}
table{border-collapse:collapse;margin:6px 0 12px;font-variant-numeric:tabular-nums}
th,td{padding:3px 10px;border-bottom:1px solid #eee;text-align:left;vertical-align:top}
td.n{text-align:right}th{background:#f5f6f8}
.banner{padding:10px 14px;border-radius:6px;font-weight:600;margin:10px 0}
.passed{background:#e7f6ec;color:#17632f}.failed{background:#fdeaea;color:#9b1c1c}
.invalid{background:#fff4e0;color:#8a5300}.none{background:#eef1f5;color:#3b4556}
tr.failed td{background:#fdf3f3}tr.invalid td{background:#fffaf0}
.evidence{margin:4px 0 8px 4px}summary{cursor:pointer}.muted{color:#667085}
dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;margin:6px 0}
dt{color:#667085}dd{margin:0}code{font-size:12.5px}
"""


@dataclass(frozen=True)
class ReportInput:
    """What the page shows: the results (each with its name), the gate's report when criteria
    were given, the baselines (overlaid on the distribution of the run of their kind)."""

    results: Sequence[tuple[str, AnyResults]]
    gate: GateReport | None
    version: str
    generated_at: datetime
    baselines: Sequence[tuple[str, AnyResults]] = field(default_factory=tuple)


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _table(headers: Iterable[str], rows: Iterable[str]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _cells(values: Iterable[object]) -> str:
    return "".join(f"<td>{_e(v)}</td>" for v in values)


# --- the verdict -------------------------------------------------------------------------------


def _verdict_section(gate: GateReport | None) -> str:
    if gate is None:
        return (
            '<section id="verdict"><div class="banner none">No verdict: no acceptance file '
            "given (<code>--config</code>)</div></section>"
        )
    outcome = gate.outcome
    parts = [
        f'<section id="verdict" data-outcome="{outcome}">',
        f'<div class="banner {outcome}" data-headline>{_e(render_gate_headline(gate))}</div>',
    ]
    for run in gate.runs:
        if not run.valid:
            reasons = "; ".join(map(str, run.reasons))
            parts.append(
                f'<p class="banner invalid">INVALID RUN {_e(run.source)}: {_e(reasons)}</p>'
            )
    if gate.verdicts:
        # As the terminal: with several results files of one kind, each row says its file.
        many = several_of_a_kind(gate)
        rows = []
        for verdict in gate.verdicts:
            criterion, threshold, measured, margin, status = verdict_cells(verdict)
            source = verdict.source or NO_VALUE
            rows.append(
                f'<tr class="{verdict.status}" data-criterion="{_e(verdict.criterion.metric)}" '
                f'data-status="{verdict.status}"'
                + (f' data-results="{_e(source)}"' if many else "")
                + f"><td>{_e(criterion)}</td><td>{_e(threshold)}</td>"
                f'<td class="n" data-measured>{_e(measured)}</td><td class="n">{_e(margin)}</td>'
                f"<td>{_e(status)}</td>"
                + (f"<td>{_e(source)}</td>" if many else "")
                + f'<td class="muted">{_e(verdict_reason(verdict))}</td></tr>'
            )
        headers = ("criterion", "threshold", "measured", "margin", "verdict")
        parts.append(_table((*headers, *(("results",) if many else ()), "why"), rows))
    if gate.regressions:
        rows = [
            f'<tr class="{r.status}" data-regression="{_e(r.criterion.metric)}" '
            f'data-status="{r.status}">{_cells(regression_cells(r))}</tr>'
            for r in gate.regressions
        ]
        parts.append("<h3>Regressions against the baseline</h3>" + _table(REGRESSION_HEADERS, rows))
    for verdict in gate.with_status("failed"):
        parts.append(
            _evidence(
                verdict.criterion.label,
                verdict_reason(verdict),
                verdict_tables(verdict),
                source=verdict.source,
            )
        )
    notes = gate_notes(gate)
    if notes:
        parts.append('<ul class="muted">' + "".join(f"<li>{_e(n)}</li>" for n in notes) + "</ul>")
    parts.append("</section>")
    return "".join(parts)


def _evidence(label: str, reason: str, tables: Sequence[Any], *, source: str | None) -> str:
    # Folded (one click): the charts stay near the top of the page, as in the terminal's order;
    # the results file it was judged on is named, as the terminal names it.
    on = f" [{_e(source)}]" if source else ""
    parts = [
        f'<details class="evidence" data-evidence><summary><b>✗ {_e(label)}</b>: {_e(reason)}'
        f'{on} <span class="muted">(evidence)</span></summary>'
    ]
    for table in tables:
        parts.append(f"<div>{_e(table.title)}:</div>")
        rows = [
            "<tr>" + _cells(NO_VALUE if c is None else c for c in row) + "</tr>"
            for row in table.rows
        ]
        parts.append(
            _table(table.columns, rows) if rows else '<p class="muted">(none recorded)</p>'
        )
        if table.omitted:
            parts.append(f'<p class="muted">… and {table.omitted} more</p>')
    parts.append("</details>")
    return "".join(parts)


# --- one run -----------------------------------------------------------------------------------


def _model(results: LoadResults | SmokeResults) -> str:
    if isinstance(results, LoadResults) and results.schedule is not None:
        return f"open model, {results.schedule.target_rate:,.1f} iterations/s"
    users = results.config.get("concurrency")
    if isinstance(results, LoadResults) and users is not None:
        unit = "connections" if results.config.get("engine") == "native" else "users"
        return f"closed model, {users} {unit}"
    return "closed model"


def _facts(results: LoadResults | SmokeResults, version: str) -> str:
    config = results.config
    facts: list[tuple[str, str]] = [
        ("target", results.target),
        ("kind", results.kind),
        ("started", results.started_at.isoformat(timespec="seconds")),
        ("duration", f"{results.duration_s:.1f} s"),
    ]
    if isinstance(results, LoadResults):
        facts.append(("scenario", str(config.get("scenario", NO_VALUE))))
        facts.append(("model", _model(results)))
        if isinstance(config.get("engine"), str):
            facts.append(("engine", str(config["engine"])))
        processes = config.get("processes")
        if isinstance(processes, int) and processes > 1:
            facts.append(("processes", str(processes)))
        stopped = stopped_line(results)
        if stopped is not None:
            facts.append(("stopped", stopped))
    generator = results.generator
    health = "overloaded" if generator.overloaded else "ok"
    if generator.max_cpu_percent is not None:
        health += f", peak CPU {generator.max_cpu_percent:.0f} % per process"
    if generator.cpu_warnings:
        health += f", {generator.cpu_warnings} CPU warnings"
    facts.append(("generator", health))
    facts += [("generator note", note) for note in generator.notes]
    validity = (
        "valid" if results.valid else "INVALID: " + "; ".join(map(str, results.invalid_reasons))
    )
    facts.append(("validity", validity))
    facts.append(("loadkit", version))
    items = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in facts)
    return f"<dl data-facts>{items}</dl>"


_FIGURE_HEADERS = ("requests", "errors", "error %", "P50 ms", "P95 ms", "P99 ms", "max ms")


def _figure_cells(
    requests: int,
    errors: int,
    error_rate: float,
    latency: Any,
    rps: float | None = None,
    service: LatencySummary | bool | None = False,
) -> str:
    cells = [
        ("requests", f"{requests:,}"),
        ("errors", f"{errors:,}"),
        ("error_rate", format_fraction(error_rate)),
    ]
    if rps is not None:
        cells.append(("rps", f"{rps:,.1f}"))
    cells += [
        ("p50_ms", format_ms(latency.p50)),
        ("p95_ms", format_ms(latency.p95)),
        ("p99_ms", format_ms(latency.p99)),
        ("max_ms", format_ms(latency.max)),
    ]
    if service is not False:  # the terminal's service-time columns, shown when they differ
        shown = service if isinstance(service, LatencySummary) else None
        cells.append(("service_p95_ms", format_ms(shown.p95 if shown else None)))
        cells.append(("service_p99_ms", format_ms(shown.p99 if shown else None)))
    return "".join(f'<td class="n" data-metric="{k}">{_e(v)}</td>' for k, v in cells)


def _figures_tables(results: LoadResults | SmokeResults) -> str:
    t = results.totals
    overall = _table(
        ("requests", "errors", "error %", "req/s", "P50 ms", "P95 ms", "P99 ms", "max ms"),
        [
            "<tr data-overall>"
            + _figure_cells(t.requests, t.errors, t.error_rate, results.latency_ms, t.rps)
            + "</tr>"
        ],
    )
    with_service = any(service_differs(e.latency_ms, e.service_time_ms) for e in results.endpoints)
    rows = [
        f'<tr data-endpoint="{_e(e.name)}"><td>{_e(e.name)}</td>'
        + _figure_cells(
            e.requests,
            e.errors,
            e.error_rate,
            e.latency_ms,
            service=e.service_time_ms if with_service else False,
        )
        + "</tr>"
        for e in results.endpoints
    ]
    headers = ["endpoint", *_FIGURE_HEADERS]
    if with_service:
        headers += ["svc P95 ms", "svc P99 ms"]
    return overall + "<h3>Endpoints</h3>" + _table(headers, rows)


def _error_groups(results: LoadResults | SmokeResults) -> str:
    if not results.errors:
        return '<h3>Errors</h3><p class="muted">no errors</p>'
    rows = []
    for group in results.errors:
        ids = [group.example_trace_id] if group.example_trace_id else []
        ids += [i for i in group.trace_ids if i not in ids]
        traces = " ".join(f"<code data-trace-id>{_e(i)}</code>" for i in ids[:TRACE_IDS_SHOWN])
        statuses = ", ".join(f"{code}×{count}" for code, count in group.status_codes.items())
        rows.append(
            f'<tr data-error-group data-endpoint="{_e(group.endpoint)}" '
            f'data-kind="{_e(group.kind)}"><td>{_e(group.endpoint)}</td><td>{_e(group.kind)}</td>'
            f'<td class="n">{group.count:,}</td>'
            f"<td>{_e(statuses)}</td><td>{traces or NO_VALUE}</td>"
            f"<td>{_e(group.example_message or '')}</td>"
            f'<td class="n">{group.first_s:.2f} s – {group.last_s:.2f} s</td></tr>'
        )
    headers = ("endpoint", "error kind", "count", "status", "trace ids", "example message", "seen")
    return "<h3>Error groups</h3>" + _table(headers, rows)


def _stall(results: LoadResults | SmokeResults) -> str:
    stall = results.longest_stall
    if stall is None:
        return (
            '<p data-stall class="muted">longest stall: none (no span of 0.1 s or more without '
            "a completion)</p>"
        )
    return (
        f'<p data-stall data-start-s="{stall.start_s}" data-end-s="{stall.end_s}">longest stall: '
        f"{format_seconds(stall.duration_s)} with requests in flight and none completing (from "
        f"{format_seconds(stall.start_s)} to {format_seconds(stall.end_s)} into the run), "
        "shaded on the latency chart</p>"
    )


def _smoke_checks(results: SmokeResults) -> str:
    rows = [
        f'<tr data-check="{_e(c.name)}" class="{"passed" if c.passed else "failed"}">'
        + _cells((*check_row(c), c.message or ""))
        + "</tr>"
        for c in results.checks
    ]
    return "<h3>Smoke checks</h3>" + _table((*SMOKE_HEADERS, "message"), rows)


def _lock_audit(source: str, results: LockAuditResults) -> str:
    rows = [
        "<tr data-finding>"
        + _cells((f"{f.path}:{f.line}:{f.col}", f.code, f.message, f.lock_line or NO_VALUE))
        + "</tr>"
        for f in results.findings
    ]
    summary = (
        f"{results.files_checked} files checked, {results.violations} violations, "
        f"{results.suppressed} suppressed"
    )
    table = _table(("where", "code", "finding", "lock taken at line"), rows) if rows else ""
    return (
        f'<section data-results="{_e(source)}" data-kind="lock_audit"><h2>Lock audit: '
        f"{_e(results.target)}</h2><p>{_e(summary)}</p>{table}</section>"
    )


# --- the page ----------------------------------------------------------------------------------


def charted(results: AnyResults) -> TypeGuard[LoadResults]:
    """Whether the page draws charts for ``results``: a load run with requests (a smoke run is a
    handful of requests in a second: its tables say it all)."""
    return isinstance(results, LoadResults) and results.totals.requests > 0


def baselines_by_kind(
    baselines: Sequence[tuple[str, AnyResults]],
) -> dict[str, tuple[str, AnyResults]]:
    """The baseline drawn beside each kind of run: the last one given of that kind."""
    return {results.kind: (source, results) for source, results in baselines}


def drawn_baselines(
    results: Sequence[tuple[str, AnyResults]], baselines: Sequence[tuple[str, AnyResults]]
) -> set[str]:
    """The sources of the baselines the page draws (beside a charted run of their kind)."""
    by_kind = baselines_by_kind(baselines)
    return {by_kind[r.kind][0] for _, r in results if charted(r) and r.kind in by_kind}


def render_html_report(report: ReportInput) -> str:
    """The whole page: verdict on top, then one section per results file."""
    baselines = {
        kind: results for kind, (_, results) in baselines_by_kind(report.baselines).items()
    }
    models: dict[str, Any] = {}
    sections: list[tuple[str, str, LoadResults | SmokeResults | None]] = []
    for index, (source, results) in enumerate(report.results):
        if isinstance(results, LockAuditResults):
            sections.append((source, _lock_audit(source, results), None))
            continue
        if not charted(results):
            sections.append((source, "", results))
            continue
        seconds = second_figures(results.timeline)
        baseline = baselines.get(results.kind)
        traffic_baseline = baseline if isinstance(baseline, LoadResults | SmokeResults) else None
        for name, chart in run_charts(results, seconds, traffic_baseline).charts.items():
            models[f"{index}-{name}"] = chart
        sections.append((source, "", results))
    script, divs = components(models) if models else ("", {})
    body = [_verdict_section(report.gate)]
    for index, (source, text, traffic) in enumerate(sections):
        if traffic is None:
            body.append(text)
            continue
        charts = "".join(
            f'<div data-chart="{name}">{divs[f"{index}-{name}"]}</div>'
            for name in ("latency", "throughput", "errors", "distribution")
            if f"{index}-{name}" in divs
        )
        part = [
            f'<section data-results="{_e(source)}" data-kind="{traffic.kind}">',
            f"<h2>{_e(traffic.kind.capitalize())} run: {_e(source)}</h2>",
            _facts(traffic, report.version),
            _stall(traffic),
            charts,
            "<h3>Whole run</h3>",
            _figures_tables(traffic),
            _error_groups(traffic),
        ]
        if isinstance(traffic, SmokeResults):
            part.append(_smoke_checks(traffic))
        part.append("</section>")
        body.append("".join(part))
    resources = Resources(mode="inline", components=BOKEH_COMPONENTS) if models else None
    head_js = resources.render_js() if resources is not None else ""
    head_css = resources.render_css() if resources is not None else ""
    generated = report.generated_at.isoformat(timespec="seconds")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        # An icon of its own: served over HTTP (loadkit ui's link), a browser would otherwise
        # ask the server for /favicon.ico, a request and, answered 404, a console error.
        '<link rel="icon" href="data:,">'
        f"<title>loadkit report</title><style>{_STYLE}</style>{head_css}{head_js}</head><body>"
        f'<h1>loadkit report</h1><p class="muted">generated {_e(generated)} by loadkit '
        f"{_e(report.version)}</p>{''.join(body)}{script}</body></html>\n"
    )

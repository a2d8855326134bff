"""Rendering of the gate's verdicts: a terminal table, Markdown, JUnit XML and a JSON verdict.

Nothing here judges; it words what ``loadkit.gate.evaluate`` decided, which is data: typed
verdicts and typed evidence. Every format carries the same facts: per criterion the threshold, the
measured value, the margin, the verdict and why, and for each failure the evidence (error groups,
the stall's window, the lock sites) as small tables.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import orjson
from tabulate import tabulate

from loadkit.config import Criterion
from loadkit.exceptions import ConfigError
from loadkit.files import append_file, write_file, write_output
from loadkit.gate.evaluate import GateReport, RunCheck, Verdict
from loadkit.gate.regression import RegressionVerdict
from loadkit.report.gate_evidence import EvidenceTable, verdict_tables
from loadkit.report.gate_regression import (
    REGRESSED_ENDPOINTS_COLUMNS,
    REGRESSED_ENDPOINTS_TITLE,
    REGRESSION_HEADERS,
    baselines_line,
    regressed_endpoint_rows,
    regression_data,
    regression_reason,
    regression_row,
    unused_baselines_note,
)
from loadkit.report.units import format_delta, format_percent, format_seconds, format_value

VERDICT_SCHEMA = "loadkit.verdict/2"
"""The ``--json`` verdict's schema (docs/verdict.md); /2: a run's reasons are ``{code, detail}``."""
STEP_SUMMARY_ENV = "GITHUB_STEP_SUMMARY"
JUNIT_CLASS = "loadkit.gate"
"""The JUnit test classes' prefix: CI systems key test history on it, so it is a name of its own,
not a module path that moves when the code does."""

_STATUS_TEXT = {
    "passed": "PASS",
    "failed": "FAIL",
    "invalid": "INVALID",
    "not_evaluated": "not evaluated",
}
_STATUS_MARK = {
    "passed": "✅ pass",
    "failed": "❌ FAIL",
    "invalid": "⚠️ INVALID",
    "not_evaluated": "➖ not evaluated",
}


# --- words -------------------------------------------------------------------------------------


def render_gate_headline(report: GateReport) -> str:
    """One line: the outcome and the criteria behind it (also the exit's error message)."""
    # Regression criteria count as criteria: a regression is a criterion not met.
    statuses = [v.status for v in report.verdicts] + [r.status for r in report.regressions]
    judged = [status for status in statuses if status != "not_evaluated"]
    skipped = len(statuses) - len(judged)
    tail = f"; {skipped} not evaluated" if skipped else ""
    failed_labels = [v.criterion.label for v in report.with_status("failed")] + [
        r.criterion.label for r in report.regressions if r.status == "failed"
    ]
    if report.outcome == "invalid":
        bad = [f"{run.source} ({_run_reasons(run)})" for run in report.runs if not run.valid]
        also = f"; also failed: {', '.join(failed_labels)}" if failed_labels else ""
        return f"INVALID: run cannot be gated on: {', '.join(bad)}{also}{tail}"
    if report.outcome == "failed":
        return (
            f"FAILED: {len(failed_labels)} of {len(judged)} criteria not met: "
            f"{', '.join(failed_labels)}{tail}"
        )
    return f"PASSED: {len(judged)} of {len(judged)} criteria met{tail}"


def _run_reasons(run: RunCheck) -> str:
    # Each "code: detail": the code names the reason, the detail says what was measured.
    return "; ".join(map(str, run.reasons))


def verdict_reason(verdict: Verdict) -> str:
    """One sentence: why a criterion passed, failed, was not trusted or not evaluated."""
    c = verdict.criterion
    if verdict.status == "not_evaluated" and verdict.missing is not None:
        return f"not evaluated: {verdict.missing}"
    if verdict.status == "not_evaluated" or verdict.run is None:
        return f"no {c.results_kind} results given"
    distrust = f"not trusted: {_run_reasons(verdict.run)}"
    if verdict.frozen is not None:
        where = f"window {verdict.window}" if verdict.window else "the whole run"
        return (
            f"no request completed in {where}: the service froze for "
            f"{format_seconds(verdict.frozen.duration_s)} with requests in flight, "
            f"so {c.metric} has no value and is not met"
        )
    if verdict.measured is None or verdict.margin is None or verdict.met is None:
        return f"{verdict.missing}; {distrust}"
    judged = _judgement(c, verdict.measured, verdict.margin, verdict.met)
    if verdict.status == "invalid":
        return f"{judged}; {distrust} (it would have {'passed' if verdict.met else 'failed'})"
    if verdict.stopped_run_at_s is not None:
        return f"{judged}; it stopped the run at {format_seconds(verdict.stopped_run_at_s)}"
    return judged


def _judgement(criterion: Criterion, measured: float, margin: float, met: bool) -> str:
    metric = criterion.metric_name
    value = format_value(metric, measured, against=criterion.threshold)
    limit = f"{criterion.op} {format_value(metric, criterion.threshold, exact=True)}"
    distance = format_delta(metric, abs(margin))
    relative = ""
    if criterion.threshold != 0 and margin != 0:
        relative = f" ({format_percent(abs(margin) / abs(criterion.threshold) * 100)})"
    if met:
        if criterion.op == "==":
            return f"{value}, as required ({limit})"
        return f"{value}, {distance}{relative} of headroom to {limit}"
    if criterion.op == "!=":
        return f"{value}, the excluded value ({limit})"
    if margin == 0:
        return f"{value}, exactly at the threshold, and {criterion.op} is strict ({limit})"
    if criterion.op == "==":
        return f"{value}, off by {distance}{relative} ({limit})"
    side = "over" if criterion.op in ("<", "<=") else "under"
    return f"{value}, {distance}{relative} {side} the threshold ({limit})"


def _notes(report: GateReport) -> list[str]:
    return [
        f"{run.source}: no criterion is about {run.kind} results; it was not gated"
        for run in report.ungated
    ] + [
        f"{v.criterion.label}: {verdict_reason(v)}"
        for v in report.with_status("not_evaluated")
        if v.missing is not None
    ]


# --- cells -----------------------------------------------------------------------------------


def _threshold(verdict: Verdict) -> str:
    c = verdict.criterion
    return f"{c.op} {format_value(c.metric_name, c.threshold, exact=True)}"


def _measured(verdict: Verdict) -> str:
    if verdict.measured is None:
        return "—"
    c = verdict.criterion
    return format_value(c.metric_name, verdict.measured, against=c.threshold)


def _margin(verdict: Verdict) -> str:
    if verdict.margin is None:
        return "—"
    sign = "+" if verdict.margin > 0 else "-" if verdict.margin < 0 else "±"
    text = sign + format_delta(verdict.criterion.metric_name, abs(verdict.margin))
    percent = verdict.margin_percent
    if percent is not None and verdict.margin != 0:
        text += f" ({format_percent(percent, signed=True)})"
    return text


def _criterion(verdict: Verdict) -> str:
    c = verdict.criterion
    text = c.label
    if c.name:
        where = f"[{c.endpoint}]" if c.endpoint else ""
        text += f" ({c.metric}{where})"
    if verdict.window:
        text += f" over {verdict.window}"
    return text


def verdict_cells(verdict: Verdict) -> tuple[str, str, str, str, str]:
    """One verdict's cells as the terminal table shows them: criterion, threshold, measured,
    margin and the verdict's word (PASS, FAIL, INVALID, not evaluated)."""
    return (
        _criterion(verdict),
        _threshold(verdict),
        _measured(verdict),
        _margin(verdict),
        _STATUS_TEXT[verdict.status],
    )


def regression_cells(verdict: RegressionVerdict) -> list[str]:
    """One regression criterion's cells as the terminal table shows them
    (``REGRESSION_HEADERS``)."""
    return regression_row(verdict, _STATUS_TEXT[verdict.status])


def gate_notes(report: GateReport) -> list[str]:
    """What the terminal prints as notes under the verdict (ungated runs, criteria not
    evaluated and why, baselines compared although they differ or not used at all)."""
    return _baseline_notes(report) + _notes(report)


def _baseline_notes(report: GateReport) -> list[str]:
    unused = [unused_baselines_note(report.unused_baselines)] if report.unused_baselines else []
    return list(report.baseline_notes) + unused


def several_of_a_kind(report: GateReport) -> bool:
    """Whether several results files of one kind were judged: only then does a criterion have
    several verdicts, which their results files tell apart (a "results" column)."""
    kinds = [run.kind for run in report.runs]
    return len(kinds) != len(set(kinds))


def _rows(report: GateReport, marks: Mapping[str, str]) -> list[list[str]]:
    many = several_of_a_kind(report)
    rows = []
    for v in report.verdicts:
        row = [_criterion(v), _threshold(v), _measured(v), _margin(v), marks[v.status]]
        if many:
            row.append(v.source or "—")
        rows.append(row)
    return rows


def _headers(report: GateReport) -> list[str]:
    headers = ["criterion", "threshold", "measured", "margin", "verdict"]
    if several_of_a_kind(report):
        headers.append("results")
    return headers


def _evidence_cells(table: EvidenceTable) -> list[list[str]]:
    return [["—" if cell is None else str(cell) for cell in row] for row in table.rows]


# --- terminal ------------------------------------------------------------------------------------


def render_gate_table(report: GateReport) -> str:
    """The verdict as the terminal shows it: table, evidence of each failure, headline."""
    parts = []
    if report.verdicts:
        parts.append(
            tabulate(_rows(report, _STATUS_TEXT), headers=_headers(report), tablefmt="simple")
        )
    if report.regressions:
        rows = [regression_row(r, _STATUS_TEXT[r.status]) for r in report.regressions]
        parts.append(
            f"Regressions ({baselines_line(report)}):\n"
            + tabulate(rows, headers=REGRESSION_HEADERS, tablefmt="simple")
        )
    for run in report.runs:
        if not run.valid:
            parts.append(f"INVALID RUN {run.source}: {_run_reasons(run)}")
    for verdict in report.with_status("failed"):
        parts.append(_evidence_text(verdict))
    for regression in report.regressions:
        if regression.status != "passed":
            parts.append(_regression_text(regression))
    parts.extend(f"note: {note}" for note in gate_notes(report))
    parts.append(render_gate_headline(report))
    return "\n\n".join(parts) + "\n"


def _evidence_text(verdict: Verdict) -> str:
    lines = [f"✗ {verdict.criterion.label}: {verdict_reason(verdict)}"]
    if verdict.source:
        lines[0] += f"  [{verdict.source}]"
    for evidence in verdict_tables(verdict):
        lines.append(f"  {evidence.title}:")
        if evidence.rows:
            table = tabulate(_evidence_cells(evidence), headers=evidence.columns, tablefmt="simple")
            lines.extend("    " + line for line in table.splitlines())
        else:
            lines.append("    (none recorded)")
        if evidence.omitted:
            lines.append(f"    … and {evidence.omitted} more")
    return "\n".join(lines)


def _regression_text(verdict: RegressionVerdict) -> str:
    mark = {"failed": "✗", "invalid": "!", "not_evaluated": "–"}.get(verdict.status, "✓")
    status = _STATUS_TEXT[verdict.status]
    lines = [f"{mark} {verdict.criterion.label}: {status}: {regression_reason(verdict)}"]
    if verdict.source:
        lines[0] += f"  [{verdict.source}]"
    if verdict.evidence is not None:
        lines.append(f"  {REGRESSED_ENDPOINTS_TITLE}:")
        rows = regressed_endpoint_rows(verdict.evidence)
        if rows:
            table = tabulate(rows, headers=REGRESSED_ENDPOINTS_COLUMNS, tablefmt="simple")
            lines.extend("    " + line for line in table.splitlines())
        else:
            lines.append("    (no endpoint got worse on its own)")
        if verdict.evidence.omitted:
            lines.append(f"    … and {verdict.evidence.omitted} more")
    return "\n".join(lines)


# --- Markdown ------------------------------------------------------------------------------------


def render_gate_markdown(report: GateReport, *, title: str = "Acceptance gate") -> str:
    """The verdict as GitHub-flavoured Markdown (a CI step summary, a PR comment)."""
    outcome = {"passed": "✅ PASSED", "failed": "❌ FAILED", "invalid": "⚠️ INVALID"}[report.outcome]
    parts = [f"## {title}: {outcome}", _md_escape(render_gate_headline(report))]
    if report.verdicts:
        parts.append(
            tabulate(_rows(report, _STATUS_MARK), headers=_headers(report), tablefmt="github")
        )
    if report.regressions:
        rows = [
            [_md_escape(cell) for cell in regression_row(r, _STATUS_MARK[r.status])]
            for r in report.regressions
        ]
        parts.append(f"**Regressions** ({_md_escape(baselines_line(report))})")
        parts.append(tabulate(rows, headers=REGRESSION_HEADERS, tablefmt="github"))
        for regression in report.regressions:
            if regression.status == "passed":
                continue
            parts.append(
                f"- {_md_escape(regression.criterion.label)}: "
                + _md_escape(regression_reason(regression))
            )
            if regression.evidence is not None and regression.evidence.endpoints:
                cells = [
                    [_md_escape(cell) for cell in row]
                    for row in regressed_endpoint_rows(regression.evidence)
                ]
                parts.append(f"**{REGRESSED_ENDPOINTS_TITLE}**")
                parts.append(
                    tabulate(cells, headers=REGRESSED_ENDPOINTS_COLUMNS, tablefmt="github")
                )
        parts.extend(f"- note: {_md_escape(note)}" for note in report.baseline_notes)
    invalid = [run for run in report.runs if not run.valid]
    if invalid:
        parts.append(
            "\n".join(
                f"- **invalid run** `{r.source}`: "
                + "; ".join(f"`{x.code}`: {_md_escape(x.detail)}" for x in r.reasons)
                for r in invalid
            )
        )
    for verdict in report.with_status("failed"):
        parts.append(f"### ❌ {_md_escape(verdict.criterion.label)}")
        parts.append(
            _md_escape(verdict_reason(verdict))
            + (f" — `{verdict.source}`" if verdict.source else "")
        )
        for evidence in verdict_tables(verdict):
            parts.append(f"**{_md_escape(evidence.title)}**")
            if evidence.rows:
                cells = [[_md_escape(c) for c in row] for row in _evidence_cells(evidence)]
                parts.append(tabulate(cells, headers=evidence.columns, tablefmt="github"))
            else:
                parts.append("(none recorded)")
            if evidence.omitted:
                parts.append(f"… and {evidence.omitted} more")
    if report.ungated:
        parts.append("\n".join(f"- note: {_md_escape(n)}" for n in _notes(report)))
    return "\n\n".join(parts) + "\n"


def _md_escape(text: str) -> str:
    # A pipe would end a table cell early; Markdown has no other character that breaks these.
    return text.replace("|", "\\|")


# --- JUnit XML -----------------------------------------------------------------------------------


def render_gate_junit(report: GateReport, *, suite: str = "loadkit acceptance") -> str:
    """JUnit XML: one test case per criterion (and per results file it was judged on).

    failed → ``<failure>``, invalid run → ``<error>``, not evaluated → ``<skipped>``, so CI systems
    show the gate as tests with no plug-in.
    """
    regressions = [r.status for r in report.regressions]
    failures = len(report.with_status("failed")) + regressions.count("failed")
    errors = len(report.with_status("invalid")) + regressions.count("invalid")
    skipped = len(report.with_status("not_evaluated")) + regressions.count("not_evaluated")
    counts = {
        "tests": str(len(report.verdicts) + len(regressions)),
        "failures": str(failures),
        "errors": str(errors),
        "skipped": str(skipped),
        "time": "0",
    }
    root = ET.Element("testsuites", {"name": suite, **counts})
    testsuite = ET.SubElement(root, "testsuite", {"name": suite, **counts})
    many = several_of_a_kind(report)
    for verdict in report.verdicts:
        name = verdict.criterion.label
        if many and verdict.source:
            name += f" [{verdict.source}]"
        case = ET.SubElement(
            testsuite,
            "testcase",
            {"classname": f"{JUNIT_CLASS}.{verdict.criterion.results_kind}", "name": name},
        )
        case.set("time", "0")
        reason = verdict_reason(verdict)
        message = f"{verdict.criterion.metric} {_threshold(verdict)}: {reason}"
        if verdict.status == "failed":
            failure = ET.SubElement(case, "failure", {"message": message, "type": "criterion"})
            failure.text = _evidence_text(verdict)
        elif verdict.status == "invalid":
            error = ET.SubElement(case, "error", {"message": message, "type": "invalid_run"})
            error.text = message
        elif verdict.status == "not_evaluated":
            ET.SubElement(case, "skipped", {"message": reason})
        if verdict.measured is not None:
            out = ET.SubElement(case, "system-out")
            out.text = (
                f"measured {_measured(verdict)}, threshold {_threshold(verdict)}, "
                f"margin {_margin(verdict)}, results {verdict.source}"
            )
    for regression in report.regressions:
        _regression_case(testsuite, regression, many=many)
    ET.indent(root)
    body = ET.tostring(root, encoding="unicode")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + body + "\n"


def _regression_case(suite: ET.Element, verdict: RegressionVerdict, *, many: bool) -> None:
    name = verdict.criterion.label
    if many and verdict.source:
        name += f" [{verdict.source}]"
    case = ET.SubElement(
        suite,
        "testcase",
        {"classname": f"{JUNIT_CLASS}.{verdict.criterion.results_kind}", "name": name},
    )
    case.set("time", "0")
    reason = regression_reason(verdict)
    if verdict.status == "failed":
        failure = ET.SubElement(case, "failure", {"message": reason, "type": "regression"})
        failure.text = _regression_text(verdict)
    elif verdict.status == "invalid":
        error = ET.SubElement(case, "error", {"message": reason, "type": "invalid_run"})
        error.text = reason
    elif verdict.status == "not_evaluated":
        ET.SubElement(case, "skipped", {"message": reason})


# --- JSON ----------------------------------------------------------------------------------------


def gate_verdict_data(report: GateReport) -> dict[str, Any]:
    """The verdict as plain data (the ``--json`` file)."""
    return {
        "schema": VERDICT_SCHEMA,
        "outcome": report.outcome,
        "headline": render_gate_headline(report),
        "runs": [
            {
                "source": r.source,
                "kind": r.kind,
                "valid": r.valid,
                "reasons": [{"code": x.code, "detail": x.detail} for x in r.reasons],
            }
            for r in report.runs
        ],
        "criteria": [
            {
                "label": v.criterion.label,
                "name": v.criterion.name,
                "metric": v.criterion.metric,
                "endpoint": v.criterion.endpoint,
                "window": v.criterion.window,
                "window_span": v.window,
                "op": v.criterion.op,
                "threshold": v.criterion.threshold,
                "status": v.status,
                "source": v.source,
                "measured": v.measured,
                "margin": v.margin,
                "margin_percent": v.margin_percent,
                "reason": verdict_reason(v),
                "evidence": [
                    {
                        "title": e.title,
                        "columns": list(e.columns),
                        "rows": [list(row) for row in e.rows],
                        "omitted": e.omitted,
                    }
                    for e in verdict_tables(v)
                ],
            }
            for v in report.verdicts
        ],
        "notes": _notes(report),
    } | (
        # Optional (verdict/2): only when the acceptance file has regression criteria.
        {
            "regressions": [regression_data(r) for r in report.regressions],
            "baseline_notes": list(report.baseline_notes),
        }
        if report.regressions
        else {}
    )


def render_gate_json(report: GateReport) -> bytes:
    """The JSON verdict file's bytes."""
    return orjson.dumps(gate_verdict_data(report), option=orjson.OPT_INDENT_2) + b"\n"


# --- files ---------------------------------------------------------------------------------------


def write_gate_reports(
    report: GateReport,
    *,
    markdown: Path | None = None,
    junit: Path | None = None,
    json: Path | None = None,
    environ: Mapping[str, str] | None = None,
    from_options: bool = True,
) -> list[Path]:
    """Write the requested report files (atomically) and append the Markdown to the CI step
    summary when ``$GITHUB_STEP_SUMMARY`` is set. Returns the files written.

    A file that cannot be written is a ``ConfigError`` naming it, and the command-line option
    that asked for it (``--junit PATH``) when ``from_options``; a caller that chose the paths
    itself (``loadkit accept``) passes False, so the message names only the file.
    """
    return _write_reports(
        markdown_text=render_gate_markdown(report),
        junit_xml=lambda: render_gate_junit(report),
        json_bytes=lambda: render_gate_json(report),
        markdown=markdown,
        junit=junit,
        json=json,
        environ=environ,
        from_options=from_options,
    )


def write_gate_error_reports(
    message: str,
    *,
    markdown: Path | None = None,
    junit: Path | None = None,
    json: Path | None = None,
    environ: Mapping[str, str] | None = None,
    from_options: bool = True,
) -> list[Path]:
    """The report files of a gate that could not judge (a missing measurement, no criterion
    applying): an ``error`` outcome in each, so that CI reading them sees why, not nothing.
    ``from_options`` as for ``write_gate_reports``."""
    text = f"## Acceptance gate: ⛔ ERROR\n\n{_md_escape(message)}\n"
    root = ET.Element("testsuites", {"name": "loadkit acceptance", "tests": "1", "errors": "1"})
    suite = ET.SubElement(
        root,
        "testsuite",
        {"name": "loadkit acceptance", "tests": "1", "failures": "0", "errors": "1"},
    )
    case = ET.SubElement(suite, "testcase", {"classname": JUNIT_CLASS, "name": "gate"})
    error = ET.SubElement(case, "error", {"message": message, "type": "gate_error"})
    error.text = message
    ET.indent(root)
    xml = '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode")
    verdict = {"schema": VERDICT_SCHEMA, "outcome": "error", "headline": f"ERROR: {message}"}
    return _write_reports(
        markdown_text=text,
        junit_xml=lambda: xml + "\n",
        json_bytes=lambda: orjson.dumps(verdict, option=orjson.OPT_INDENT_2) + b"\n",
        markdown=markdown,
        junit=junit,
        json=json,
        environ=environ,
        from_options=from_options,
    )


def _write_reports(
    *,
    markdown_text: str,
    junit_xml: Callable[[], str],
    json_bytes: Callable[[], bytes],
    markdown: Path | None,
    junit: Path | None,
    json: Path | None,
    environ: Mapping[str, str] | None,
    from_options: bool,
) -> list[Path]:
    # The files a CI job reads, written atomically, and the Markdown appended to the step
    # summary: one path for a verdict and for a gate that could not judge.
    written: list[Path] = []
    if markdown is not None:
        data = markdown_text.encode()
        written.append(_write(markdown, data, option="--markdown", from_options=from_options))
    if junit is not None:
        data = junit_xml().encode()
        written.append(_write(junit, data, option="--junit", from_options=from_options))
    if json is not None:
        written.append(_write(json, json_bytes(), option="--json", from_options=from_options))
    summary = (os.environ if environ is None else environ).get(STEP_SUMMARY_ENV)
    if summary:
        try:
            append_step_summary(Path(summary), markdown_text)
        except OSError as exc:
            raise ConfigError(
                f"${STEP_SUMMARY_ENV} {summary}: cannot append: {exc.strerror or exc}"
            ) from None
    return written


def _write(path: Path, data: bytes, *, option: str, from_options: bool) -> Path:
    if from_options:
        return write_output(path, data, option=option)
    try:
        write_file(path, data)
    except OSError as exc:
        raise ConfigError(
            f"{path}: cannot write the gate's report: {exc.strerror or exc}"
        ) from None
    return path


def append_step_summary(path: Path, markdown: str) -> None:
    """Append Markdown to a GitHub Actions step summary file.

    Appended, not replaced: the runner owns the file and every step of the job adds to it. A
    symlink there is replaced by a file of ours, never appended through (``loadkit.files``).
    """
    append_file(path, (markdown + "\n").encode())

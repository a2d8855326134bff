"""The words of the regression criteria's verdicts: baseline, current, change and allowed change,
why one was not evaluated, and the endpoints that regressed most.

Nothing here judges (``loadkit.gate.against_baseline`` does); ``loadkit.report.gate`` puts these
pieces into each of its formats.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from loadkit.gate.evaluate import GateReport
from loadkit.gate.regression import RegressedEndpoints, RegressionChange, RegressionVerdict
from loadkit.report.units import NO_VALUE, format_delta, format_percent, format_value

REGRESSION_HEADERS = ["regression criterion", "baseline", "current", "change", "allowed", "verdict"]
REGRESSED_ENDPOINTS_TITLE = "endpoints that regressed most"
REGRESSED_ENDPOINTS_COLUMNS = ("endpoint", "baseline", "current", "change", "allowed")


def change_text(metric: str, change: RegressionChange) -> str:
    """The signed change: ``+30.0 ms (+60.0 %)``; ``±0`` when nothing changed."""
    delta = change.delta
    sign = "+" if delta > 0 else "-" if delta < 0 else "±"
    text = sign + format_delta(metric, abs(delta))
    percent = change.percent
    if percent is not None and delta != 0:
        text += f" ({format_percent(percent, signed=True)})"
    return text


def allowed_text(verdict: RegressionVerdict) -> str:
    """The tolerance as configured and, with a baseline, what it allowed in the metric's unit:
    ``+20 % / +2.0 ms → +10.0 ms``."""
    c = verdict.criterion
    sign = "+" if c.worse == "up" else "-"
    parts = []
    if c.max_worse_pct is not None:
        parts.append(f"{sign}{c.max_worse_pct:.15g} %")
    if c.max_worse_abs is not None:
        parts.append(sign + format_delta(c.metric_name, c.max_worse_abs))
    text = " or ".join(parts)
    if verdict.change is not None:
        text += f" → {sign}{format_delta(c.metric_name, verdict.change.allowed)}"
    return text


def regression_reason(verdict: RegressionVerdict) -> str:
    """One sentence: why the regression criterion passed, failed or was not judged."""
    c = verdict.criterion
    change = verdict.change
    if change is None:
        return verdict.why or "not evaluated"
    metric = c.metric_name
    now = format_value(metric, change.current)
    before = format_value(metric, change.baseline)
    moved = change_text(metric, change)
    allowed = f"{'+' if c.worse == 'up' else '-'}{format_delta(metric, change.allowed)}"
    where = f" [{c.endpoint}]" if c.endpoint else ""
    text = f"{c.metric}{where}: {now} against the baseline's {before}, {moved}"
    if change.regressed:
        text += f": worse by more than the allowed {allowed}"
    elif change.worse_by > 0:
        text += f", within the allowed {allowed}"
    else:
        text += ", not worse"
    if verdict.status == "invalid":
        text += "; not trusted: the run is invalid"
    return text


def regression_row(verdict: RegressionVerdict, status_text: str) -> list[str]:
    """One row of the regression table."""
    c = verdict.criterion
    change = verdict.change
    label = c.label
    if c.name:
        label += f" ({c.metric}{f'[{c.endpoint}]' if c.endpoint else ''})"
    if change is None:
        cells = [NO_VALUE, NO_VALUE, NO_VALUE]
    else:
        cells = [
            format_value(c.metric_name, change.baseline),
            format_value(c.metric_name, change.current),
            change_text(c.metric_name, change),
        ]
    return [label, *cells, allowed_text(verdict), status_text]


def regressed_endpoint_rows(evidence: RegressedEndpoints) -> list[list[str]]:
    """The evidence's rows: endpoint, baseline, current, change, allowed."""
    sign = "+"
    rows = []
    for item in evidence.endpoints:
        change = item.change
        sign = "+" if change.worse == "up" else "-"
        rows.append(
            [
                item.endpoint,
                format_value(evidence.metric, change.baseline),
                format_value(evidence.metric, change.current),
                change_text(evidence.metric, change),
                sign + format_delta(evidence.metric, change.allowed),
            ]
        )
    return rows


def regression_data(verdict: RegressionVerdict) -> dict[str, Any]:
    """One regression verdict as plain data (the JSON verdict's ``regressions``)."""
    c = verdict.criterion
    change = verdict.change
    evidence = verdict.evidence
    return {
        "label": c.label,
        "name": c.name,
        "metric": c.metric,
        "endpoint": c.endpoint,
        "op": c.op,
        "max_worse_pct": c.max_worse_pct,
        "max_worse_abs": c.max_worse_abs,
        "min_requests": c.min_requests,
        "worse": c.worse,
        "status": verdict.status,
        "source": verdict.source,
        "baseline_source": verdict.baseline_source,
        "baseline": change.baseline if change else None,
        "current": change.current if change else None,
        "change": change.delta if change else None,
        "change_percent": change.percent if change else None,
        "allowed": change.allowed if change else None,
        "reason": regression_reason(verdict),
        "evidence": []
        if evidence is None
        else [
            {
                "title": REGRESSED_ENDPOINTS_TITLE,
                "columns": list(REGRESSED_ENDPOINTS_COLUMNS),
                "rows": regressed_endpoint_rows(evidence),
                "omitted": evidence.omitted,
            }
        ],
    }


def unused_baselines_note(sources: Sequence[str]) -> str:
    """What the gate says of baselines it was given without any regression criterion."""
    return (
        f"baseline {', '.join(sources)} not used: the acceptance criteria have no regression "
        'criterion (op = "regression") to judge the run against it'
    )


def drawn_baselines_note(sources: Sequence[str]) -> str:
    """What the report says of baselines it draws while no regression criterion judges them."""
    return (
        f"baseline {', '.join(sources)} drawn beside the run for comparison, not judged: the "
        'acceptance criteria have no regression criterion (op = "regression")'
    )


def baselines_line(report: GateReport) -> str:
    """Which baseline(s) the regression criteria were judged against."""
    sources = sorted({v.baseline_source for v in report.regressions if v.baseline_source})
    return f"against baseline {', '.join(sources)}" if sources else "no baseline given"

"""The service's spans as a latency criterion's evidence: where the time of the requests behind
the figure went (``loadkit accept`` on the bundled service, which records every request's spans).

Pure, like the rest of the gate: the requests (``loadkit.traces.requests.RequestTimes``, read by
the caller) come in as data, and a report comes out with each failed latency verdict on load
results carrying a ``TailBreakdown`` as its first piece of evidence: for a P95 the slowest 5 % of
the traced requests of the criterion's endpoint (or of all), for a max the slowest one, for a
mean all of them. The spans cover the whole run whatever the criterion's window: a criterion
judged on a window is explained by the run's requests. No traced request in scope, no evidence
added: the verdict stays as the gate made it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from loadkit.gate.evaluate import GateReport, Verdict
from loadkit.traces.breakdown import tail_breakdown, tail_figure
from loadkit.traces.requests import RequestTimes


def wants_time_breakdowns(report: GateReport) -> bool:
    """Whether a latency criterion failed on load results (only then are the spans worth
    reading)."""
    return any(_explainable(v) for v in report.verdicts)


def _explainable(verdict: Verdict) -> bool:
    criterion = verdict.criterion
    return (
        verdict.status == "failed"
        and criterion.results_kind == "load"
        and tail_figure(criterion.metric_name) is not None
    )


def with_time_breakdowns(report: GateReport, requests: Sequence[RequestTimes]) -> GateReport:
    """``report`` with where the time went added to each failed latency verdict's evidence."""
    if not requests:
        return report
    return replace(report, verdicts=tuple(_explained(v, requests) for v in report.verdicts))


def _explained(verdict: Verdict, requests: Sequence[RequestTimes]) -> Verdict:
    criterion = verdict.criterion
    figure = tail_figure(criterion.metric_name)
    if figure is None or not _explainable(verdict):
        return verdict
    tail = tail_breakdown(requests, figure=figure, endpoint=criterion.endpoint)
    if tail is None:
        return verdict
    return replace(verdict, evidence=(tail, *verdict.evidence))

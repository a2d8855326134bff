"""The gate with regression criteria: threshold criteria as ``evaluate_criteria`` judges them, and
each ``op = "regression"`` criterion against the baseline run of its kind.

Pure, like ``loadkit.gate.evaluate``. The rules:

- A baseline must be comparable with the run judged (``loadkit.gate.baseline``): otherwise a
  ``ConfigError`` names each key that differs, unless ``force``. An invalid baseline run is
  refused (``ConfigError``): its figures are no reference for anything.
- A regression criterion with no baseline of its kind is *not evaluated* (shown, with why):
  the first run of a branch has no baseline yet, and ``loadkit accept --save-baseline`` makes one.
- ``min_requests``: when the run or the baseline has fewer requests (of the criterion's
  endpoint, else in all), the criterion is *not evaluated*, with the counts; too few requests
  make a percentile noise, not a regression.
- A measurement missing from the baseline (an endpoint it did not have) is *not evaluated*; one
  missing from the current run is an ``InputError`` (never a pass), as for threshold criteria.
- On an invalid run the change is still shown, but the verdict is *invalid*.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from loadkit.config import ENDPOINT_METRICS, Criterion, RegressionCriterion
from loadkit.exceptions import ConfigError, InputError
from loadkit.gate.baseline import check_comparable
from loadkit.gate.evaluate import (
    AnyResults,
    GateReport,
    RunCheck,
    Verdict,
    evaluate_criteria,
    measure,
)
from loadkit.gate.regression import (
    EndpointChange,
    RegressedEndpoints,
    RegressionStatus,
    RegressionVerdict,
    judge_change,
    most_regressed,
)
from loadkit.measure.results import LoadResults, LockAuditResults

Sourced = tuple[str, AnyResults]


def evaluate_gate(
    criteria: Sequence[Criterion],
    regressions: Sequence[RegressionCriterion],
    results: Sequence[Sourced],
    *,
    baselines: Sequence[Sourced] = (),
    force_baseline: bool = False,
) -> GateReport:
    """Judge the threshold criteria and the regression criteria on ``results``.

    ``baselines`` pairs each baseline results file (at most one per kind) with its name; a kind
    without one leaves its regression criteria not evaluated. Raises ``ConfigError`` for an
    incomparable baseline (unless ``force_baseline``), an invalid one, or two of one kind; and
    what ``evaluate_criteria`` raises otherwise.
    """
    if not regressions:
        report = evaluate_criteria(criteria, results)
        if not baselines:
            return report
        return replace(report, unused_baselines=tuple(source for source, _ in baselines))
    if not results:
        raise InputError("no results files given: there is nothing to gate")
    by_kind = _baselines_by_kind(baselines)
    notes: list[str] = []
    for source, current in results:
        entry = by_kind.get(current.kind)
        if entry is None or not any(r.results_kind == current.kind for r in regressions):
            continue
        differences = check_comparable(
            entry[1],
            current,
            baseline_source=entry[0],
            current_source=source,
            force=force_baseline,
        )
        if differences:
            listed = "; ".join(
                f"{d.key}: baseline {d.baseline!r}, current {d.current!r}" for d in differences
            )
            notes.append(f"baseline {entry[0]} differs from {source} ({listed}): compared anyway")
    report = _threshold_report(criteria, results)
    verdicts: list[RegressionVerdict] = []
    runs = {run.source: run for run in report.runs}
    for criterion in regressions:
        given = [(s, r) for s, r in results if r.kind == criterion.results_kind]
        if not given:
            verdicts.append(
                RegressionVerdict(
                    criterion=criterion,
                    status="not_evaluated",
                    source=None,
                    baseline_source=None,
                    why=f"no {criterion.results_kind} results given",
                )
            )
            continue
        for source, current in given:
            verdicts.append(
                _judge(criterion, source, current, runs[source], by_kind.get(current.kind))
            )
    statuses = [v.status for v in report.verdicts] + [r.status for r in verdicts]
    if all(status == "not_evaluated" for status in statuses):
        raise InputError(
            f"none of the {len(criteria) + len(regressions)} criteria could be judged on the "
            "results given: give the results (and a --baseline) of the kinds they are about"
        )
    covered = {c.results_kind for c in criteria} | {r.results_kind for r in regressions}
    return GateReport(
        verdicts=report.verdicts,
        runs=report.runs,
        ungated=tuple(run for run in report.runs if run.kind not in covered),
        regressions=tuple(verdicts),
        baseline_notes=tuple(notes),
    )


def _kind_never_seen(probe: Criterion, baseline: AnyResults) -> bool:
    """Whether ``probe`` counts an error kind a baseline with requests recorded none of."""
    metric = probe.metric_name
    counts_kind = metric.startswith("errors.") or metric == "http2_internal_errors"
    return counts_kind and isinstance(baseline, LoadResults) and baseline.totals.requests > 0


def _failed_run(baseline: AnyResults) -> str | None:
    """Why a valid run still failed on its own terms: an abort-on-fail criterion stopped it (cut
    short, its duration no longer the one its config says), or Locust's own verdict."""
    if not isinstance(baseline, LoadResults):
        return None
    stopped = baseline.stopped
    if stopped is not None and stopped.by == "criterion":
        return f"stopped at {stopped.at_s:g} s by {stopped.criterion}"
    if baseline.locust_exit_code:
        return f"Locust's exit code {baseline.locust_exit_code}"
    return None


def _baselines_by_kind(baselines: Sequence[Sourced]) -> dict[str, Sourced]:
    by_kind: dict[str, Sourced] = {}
    for source, baseline in baselines:
        if isinstance(baseline, LockAuditResults):
            raise ConfigError(
                f"baseline {source}: lock-audit results have no figures to regress; "
                "give load (or smoke) results as the baseline"
            )
        if baseline.kind in by_kind:
            raise ConfigError(
                f"two {baseline.kind} baselines given ({by_kind[baseline.kind][0]}, {source}); "
                "give one per kind"
            )
        if not baseline.valid:
            reasons = "; ".join(map(str, baseline.invalid_reasons))
            raise ConfigError(
                f"baseline {source} is an invalid run ({reasons}); its figures are no reference: "
                "choose a valid run as the baseline"
            )
        failed = _failed_run(baseline)
        if failed is not None:
            raise ConfigError(
                f"baseline {source} is a failed run ({failed}); its figures are no reference: "
                "choose a run that passed as the baseline"
            )
        by_kind[baseline.kind] = (source, baseline)
    return by_kind


def _threshold_report(criteria: Sequence[Criterion], results: Sequence[Sourced]) -> GateReport:
    """The threshold criteria's report; when none applies to the files (only regression
    criteria do), each is listed as not evaluated rather than refused."""
    kinds = {r.kind for _, r in results}
    if any(c.results_kind in kinds for c in criteria):
        return evaluate_criteria(criteria, results)
    runs = tuple(
        RunCheck(
            source=source,
            kind=res.kind,
            valid=res.valid,
            reasons=tuple(dict.fromkeys(res.invalid_reasons)),
        )
        for source, res in results
    )
    not_evaluated = tuple(
        Verdict(criterion=c, status="not_evaluated", source=None, measured=None, margin=None)
        for c in criteria
    )
    return GateReport(verdicts=not_evaluated, runs=runs)


def _probe(criterion: RegressionCriterion, endpoint: str | None) -> Criterion:
    # The metric is read exactly as a threshold criterion reads it (`measure`): the same
    # figures, the same "missing measurement" rules. The threshold is never compared.
    return Criterion(metric=criterion.metric, op=">=", threshold=0, endpoint=endpoint)


def _requests(results: AnyResults, endpoint: str | None) -> int:
    if not isinstance(results, LoadResults):
        return 0
    if endpoint is None:
        return results.totals.requests
    return next((e.requests for e in results.endpoints if e.name == endpoint), 0)


def _judge(
    criterion: RegressionCriterion,
    source: str,
    current: AnyResults,
    run: RunCheck,
    baseline: Sourced | None,
) -> RegressionVerdict:
    def not_evaluated(why: str) -> RegressionVerdict:
        return RegressionVerdict(
            criterion=criterion,
            status="not_evaluated",
            source=source,
            baseline_source=baseline[0] if baseline else None,
            why=why,
        )

    if baseline is None:
        return not_evaluated(
            f"no {criterion.results_kind} baseline given (--baseline, or path in [baseline])"
        )
    baseline_source, baseline_results = baseline
    if criterion.min_requests is not None:
        where = f" of {criterion.endpoint}" if criterion.endpoint else ""
        for which, res in (("baseline", baseline_results), ("current", current)):
            count = _requests(res, criterion.endpoint)
            if count < criterion.min_requests:
                return not_evaluated(
                    f"{count} requests{where} in the {which} run, fewer than "
                    f"min_requests = {criterion.min_requests}"
                )
    probe = _probe(criterion, criterion.endpoint)
    try:
        before = measure(probe, baseline_results, source=baseline_source)
    except InputError as missing:
        if not _kind_never_seen(probe, baseline_results):
            return not_evaluated(f"the baseline has no such measurement ({missing})")
        # An error kind of the service's own that the baseline never saw: it had none of it,
        # so a run that has some regressed (the first of a new kind is what this gate is for).
        before = 0.0
    try:
        after = measure(probe, current, source=source)
    except InputError as missing:
        if run.valid:
            raise
        return RegressionVerdict(
            criterion=criterion,
            status="invalid",
            source=source,
            baseline_source=baseline_source,
            why=str(missing),
        )
    change = judge_change(criterion, baseline=before, current=after)
    evidence = None
    if change.regressed and run.valid:
        evidence = _regressed_endpoints(criterion, baseline_results, current)
    status: RegressionStatus = "failed" if change.regressed else "passed"
    return RegressionVerdict(
        criterion=criterion,
        status=status if run.valid else "invalid",
        source=source,
        baseline_source=baseline_source,
        change=change,
        evidence=evidence,
    )


def _regressed_endpoints(
    criterion: RegressionCriterion, baseline: AnyResults, current: AnyResults
) -> RegressedEndpoints | None:
    """For a run-wide load metric that also exists per endpoint: the endpoints that got worse
    the most, each judged as the criterion would judge it."""
    if (
        criterion.endpoint is not None
        or criterion.metric_name not in ENDPOINT_METRICS
        or not isinstance(baseline, LoadResults)
        or not isinstance(current, LoadResults)
    ):
        return None
    before_names = {e.name for e in baseline.endpoints}
    changes = []
    for endpoint in current.endpoints:
        if endpoint.name not in before_names:
            continue
        probe = _probe(criterion, endpoint.name)
        try:
            before = measure(probe, baseline)
            after = measure(probe, current)
        except InputError:
            continue  # no figure for it in one of the runs (no request completed)
        changes.append(
            EndpointChange(
                endpoint=endpoint.name,
                change=judge_change(criterion, baseline=before, current=after),
            )
        )
    return most_regressed(criterion.metric_name, changes)

"""The acceptance gate: criteria × results files → verdicts, each with its measured value, its
margin and, when it failed, the evidence of where to look.

Pure: reads nothing and prints nothing; the CLI reads the files and renders what this returns
(``loadkit.report.gate``, which does all the wording). The rules, so that the gate is honest:

- A comparison is strict as written: ``error_rate < 0.10`` fails at exactly 0.10.
- A criterion applies to one kind of results (smoke, load, lock audit). When no file of that kind
  was given, it is *not evaluated* (listed, never counted as passed). When a file of that kind was
  given but the measurement is not in it (no requests, so no P95; an endpoint that is not in the
  file), that is an ``InputError``: a missing measurement is never a pass.
- A results file with an invalid reason (aborted, generator overloaded, ...) makes the whole gate
  *invalid*: its criteria are still measured and shown, but none of them passes, and the outcome
  is invalid even when other criteria failed, because numbers from an invalid run cannot be
  judged either way.
- Several files of one kind: each criterion is judged on each of them (one verdict per file), and
  the gate passes only if every one of those verdicts passes: the worst file decides.
- Gating nothing is an error: if no criterion applies to the files given, the gate refuses.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from loadkit.config import Criterion, ResultsKind
from loadkit.exceptions import ConfigError, CriteriaNotMetError, InputError, InvalidRunError
from loadkit.gate.regression import RegressionVerdict
from loadkit.gate.window_figures import WindowFigures, WindowOutsideRunError, window_figures
from loadkit.measure.histogram import LatencyHistogram, us_to_ms
from loadkit.measure.kinds import NOT_SENT_ENDPOINT, ErrorKind
from loadkit.measure.results import (
    EndpointResults,
    ErrorGroup,
    LatencySummary,
    LoadResults,
    LockAuditResults,
    LockFinding,
    SmokeCheckResult,
    SmokeResults,
    Stall,
    Stopped,
    TimelinePoint,
)
from loadkit.measure.service_time import missing_service_time, service_summary
from loadkit.measure.user_exceptions import UserException
from loadkit.measure.validity import InvalidReason
from loadkit.traces.breakdown import TailBreakdown
from loadkit.windows import parse_window

AnyResults = SmokeResults | LoadResults | LockAuditResults
Status = Literal["passed", "failed", "invalid", "not_evaluated"]
Outcome = Literal["passed", "failed", "invalid"]

TOP_ERROR_GROUPS = 5
TOP_ENDPOINTS = 5
SLOWEST_SECONDS = 3
MAX_FINDINGS = 20
TOP_EXCEPTIONS = 5
STALL_CONTEXT_ROWS = 15

_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}

_KNOWN_KINDS: frozenset[str] = frozenset(kind.value for kind in ErrorKind)

_LATENCY_FIELDS: dict[str, str] = {
    "p50_ms": "p50",
    "p90_ms": "p90",
    "p95_ms": "p95",
    "p99_ms": "p99",
    "p999_ms": "p999",
    "max_ms": "max",
    "mean_ms": "mean",
}
_SERVICE_FIELDS: dict[str, str] = {
    "service_p50_ms": "p50",
    "service_p90_ms": "p90",
    "service_p95_ms": "p95",
    "service_p99_ms": "p99",
}
"""Service-time metrics (from the send): the response time's in a closed run."""


# --- what the gate returns -----------------------------------------------------------------------


@dataclass(frozen=True)
class RunCheck:
    """Whether one results file can be gated on at all."""

    source: str
    kind: ResultsKind
    valid: bool
    reasons: tuple[InvalidReason, ...] = ()


# The evidence of a failure: where to look. Rows are the results' own records, unformatted; the
# tables shown (and their length) are report/'s business, except the caps below, which keep
# the evidence short in every rendering alike.


@dataclass(frozen=True)
class ErrorGroups:
    """The largest error groups (endpoint × kind) among the errors a criterion counts."""

    endpoint: str | None
    """The endpoint the criterion is about; None for every endpoint."""
    total: int
    """Errors in all the matching groups, shown or not."""
    groups: tuple[ErrorGroup, ...]
    """The largest first, at most ``TOP_ERROR_GROUPS``."""
    omitted: int = 0


@dataclass(frozen=True)
class StallWindow:
    """The longest stall (no completion while requests were in flight) and the seconds around
    it (empty when only the window is evidence)."""

    stall: Stall
    began: datetime
    ended: datetime
    seconds: tuple[TimelinePoint, ...] = ()
    omitted: int = 0
    """Seconds around the stall left out (beyond ``STALL_CONTEXT_ROWS``)."""


@dataclass(frozen=True)
class SlowestEndpoints:
    """Endpoints by the latency figure a criterion is about, slowest first."""

    metric: str
    """The metric's name without its prefix (``p95_ms``)."""
    endpoints: tuple[EndpointResults, ...]
    omitted: int = 0
    service: bool = False
    """Ranked by service time (``service_*`` metrics), which the rows then show."""


@dataclass(frozen=True)
class SlowestSeconds:
    """The seconds of the run with the highest p95 of what completed in each."""

    seconds: tuple[TimelinePoint, ...]
    service_p95_ms: tuple[float | None, ...] | None = None
    """A service metric in an open run: each second's service-time P95 (from its
    ``service_histogram``), which ranked them; None: ranked by response time."""


@dataclass(frozen=True)
class QuietestSeconds:
    """The seconds of the run with the fewest completions."""

    seconds: tuple[TimelinePoint, ...]


@dataclass(frozen=True)
class GeneratorNotes:
    """What the load generator noted about itself (why throughput may be its own)."""

    notes: tuple[str, ...]


@dataclass(frozen=True)
class FailedChecks:
    """The smoke checks that failed, of ``total``."""

    checks: tuple[SmokeCheckResult, ...]
    total: int


@dataclass(frozen=True)
class UserExceptions:
    """The exceptions user code raised, most frequent first (type, where, count, traceback)."""

    total: int
    groups: tuple[UserException, ...]
    """At most ``TOP_EXCEPTIONS``."""
    omitted: int = 0


@dataclass(frozen=True)
class LockSites:
    """Lock-safety violations by site, at most ``MAX_FINDINGS``."""

    findings: tuple[LockFinding, ...]
    violations: int
    files_checked: int
    omitted: int = 0


Evidence = (
    ErrorGroups
    | StallWindow
    | SlowestEndpoints
    | SlowestSeconds
    | QuietestSeconds
    | GeneratorNotes
    | FailedChecks
    | LockSites
    | UserExceptions
    | TailBreakdown  # where the time went, from the service's spans (gate.trace_evidence)
)


@dataclass(frozen=True)
class Verdict:
    """One criterion judged on one results file (or not evaluated, with no file)."""

    criterion: Criterion
    status: Status
    source: str | None
    """The results file it was measured on; None when not evaluated."""
    measured: float | None
    margin: float | None
    """Signed headroom in the metric's unit: positive when met, negative by how much it missed
    (for ``==``: minus the distance; for ``!=``: the distance)."""
    met: bool | None = None
    """Whether the measured value meets the threshold, the run's validity aside (what an invalid
    run's verdict would have been); None when nothing was measured."""
    run: RunCheck | None = None
    """The check of the results file it was judged on; None when not evaluated."""
    missing: str | None = None
    """Why an invalid run has no measurement (what a valid run would raise as ``InputError``)."""
    frozen: Stall | None = None
    """Why a valid run has no measurement: no request completed in it, through this stall."""
    evidence: tuple[Evidence, ...] = ()
    stopped_run_at_s: float | None = None
    """Set when this criterion stopped the run (abort on fail): seconds from its start."""
    window: str | None = None
    """The span judged, as resolved (``steady (8 s-60 s, after stage 1)``); None for the run."""

    @property
    def margin_percent(self) -> float | None:
        """The margin relative to the threshold, in percent (None for a zero threshold)."""
        if self.margin is None or self.criterion.threshold == 0:
            return None
        return self.margin / abs(self.criterion.threshold) * 100.0


@dataclass(frozen=True)
class GateReport:
    """Everything the gate decided, in the order of the criteria."""

    verdicts: tuple[Verdict, ...]
    runs: tuple[RunCheck, ...]
    ungated: tuple[RunCheck, ...] = field(default=())
    """Results files given that no criterion is about: not gated."""
    regressions: tuple[RegressionVerdict, ...] = field(default=())
    """The regression criteria judged against a baseline (``loadkit.gate.against_baseline``)."""
    baseline_notes: tuple[str, ...] = field(default=())
    """What the report must say about the baselines (one compared although it differs)."""
    unused_baselines: tuple[str, ...] = field(default=())
    """Baselines given while no regression criterion judges any: the gate did not use them."""

    @property
    def outcome(self) -> Outcome:
        """invalid if any run is invalid, else failed if any verdict (or regression) failed,
        else passed."""
        if any(not run.valid for run in self.runs):
            return "invalid"
        if any(v.status == "failed" for v in self.verdicts) or any(
            r.status == "failed" for r in self.regressions
        ):
            return "failed"
        return "passed"

    def with_status(self, status: Status) -> list[Verdict]:
        """The verdicts with one status."""
        return [v for v in self.verdicts if v.status == status]


# --- evaluation ----------------------------------------------------------------------------------


def evaluate_criteria(
    criteria: Sequence[Criterion], results: Sequence[tuple[str, AnyResults]]
) -> GateReport:
    """Judge every criterion on every results file of its kind.

    ``results`` pairs each results file with the name it is shown under (its path). Raises
    ``ConfigError`` when there are no criteria, ``InputError`` when a measurement a criterion
    needs is missing from a file of its kind, or when no criterion applies to any file given.
    """
    if not criteria:
        raise ConfigError("no [[criteria]] in the acceptance file: there is nothing to gate on")
    if not results:
        raise InputError("no results files given: there is nothing to gate")
    runs = tuple(_check_run(source, res) for source, res in results)
    for source, res in results:
        _check_stopped_by_a_known_criterion(source, res, criteria)
    valid_by_source = {run.source: run for run in runs}
    verdicts: list[Verdict] = []
    for criterion in criteria:
        given = [(s, r) for s, r in results if r.kind == criterion.results_kind]
        if not given:
            verdicts.append(
                Verdict(
                    criterion=criterion,
                    status="not_evaluated",
                    source=None,
                    measured=None,
                    margin=None,
                )
            )
            continue
        for source, res in given:
            verdicts.append(_judge(criterion, source, res, valid_by_source[source]))
    if all(v.status == "not_evaluated" for v in verdicts):
        kinds = ", ".join(sorted({r.kind for _, r in results}))
        wanted = ", ".join(sorted({c.results_kind for c in criteria}))
        raise InputError(
            f"none of the {len(criteria)} criteria applies to the results given ({kinds}); "
            f"the criteria are about: {wanted}"
        )
    ungated = tuple(run for run in runs if not any(c.results_kind == run.kind for c in criteria))
    return GateReport(verdicts=tuple(verdicts), runs=runs, ungated=ungated)


def _check_run(source: str, results: AnyResults) -> RunCheck:
    # Validity is the results' reasons alone: an overloaded generator or an aborted run always
    # carries its coded reason (loadkit.measure.results), so there is nothing to infer here.
    return RunCheck(
        source=source,
        kind=results.kind,
        valid=results.valid,
        reasons=tuple(dict.fromkeys(results.invalid_reasons)),
    )


def _judge(criterion: Criterion, source: str, results: AnyResults, run: RunCheck) -> Verdict:
    figures = None
    try:
        figures = _window(criterion, results, source=source)
        measured = _measure(criterion, results, source=source, figures=figures)
    except InputError as missing:
        window = _window_label(criterion, figures)
        stopped = None if isinstance(results, LockAuditResults) else results.stopped
        if isinstance(missing, WindowOutsideRunError) and stopped is not None:
            # A run stopped early (by a criterion, which fails it, or its locustfile) has
            # nothing in a window past its end: said, not judged (and never a pass).
            return Verdict(
                criterion=criterion,
                status="not_evaluated",
                source=source,
                measured=None,
                margin=None,
                run=run,
                missing=f"{missing}: the run stopped at {stopped.at_s:g} s",
            )
        if not run.valid:
            # An aborted run often has nothing to measure: that is the run being invalid
            # (exit 4), not a broken input (exit 2).
            return Verdict(
                criterion=criterion,
                status="invalid",
                source=source,
                measured=None,
                margin=None,
                run=run,
                missing=str(missing),
                window=window,
            )
        frozen = _frozen(results, figures)
        if frozen is None or not isinstance(results, LoadResults):
            raise
        # Nothing completed because the service froze: that is the failure to report (with
        # the stall as evidence), not a broken input file.
        return Verdict(
            criterion=criterion,
            status="failed",
            source=source,
            measured=None,
            margin=None,
            run=run,
            frozen=frozen,
            evidence=_stall(results),
            window=window,
        )
    window = _window_label(criterion, figures)
    stopper = _stopped_by(criterion, results)
    if stopper is not None and stopper.measured is not None:
        measured = stopper.measured  # what stopped the run, not what the run ended with
    met = _OPERATORS[criterion.op](measured, criterion.threshold)
    if stopper is not None:
        met = False  # it stopped the run by failing: the verdict cannot be a pass
    margin = _margin(criterion.op, measured, criterion.threshold)
    evidence = () if met else _evidence(criterion, results, figures)
    status: Status = "passed" if met else "failed"
    if not run.valid:
        status = "invalid"
        evidence = ()
    return Verdict(
        criterion=criterion,
        status=status,
        source=source,
        measured=measured,
        margin=margin,
        met=met,
        run=run,
        evidence=evidence,
        stopped_run_at_s=stopper.at_s if stopper is not None else None,
        window=window,
    )


def _window_label(criterion: Criterion, figures: WindowFigures | None) -> str | None:
    """The span judged, as the verdict shows it; None for the whole run as written."""
    if figures is not None:
        return figures.label
    if criterion.window is None or parse_window(criterion.window).judges_whole_run:
        return None
    return f"{criterion.window} (no ramp-up: the whole run)"  # steady, in a run without ramps


def _window(criterion: Criterion, results: AnyResults, *, source: str) -> WindowFigures | None:
    """The figures of the criterion's window; None when it judges the whole run."""
    if criterion.window is None or not isinstance(results, LoadResults):
        return None
    return window_figures(
        parse_window(criterion.window),
        results,
        source=source,
        service_times=criterion.metric_name in _SERVICE_FIELDS,
    )


def _stopped_by(criterion: Criterion, results: AnyResults) -> Stopped | None:
    """The run's stop record, when this criterion stopped it (abort on fail)."""
    stopped = None if isinstance(results, LockAuditResults) else results.stopped
    if stopped is None or stopped.by != "criterion" or stopped.criterion != criterion.label:
        return None
    return stopped


def _check_stopped_by_a_known_criterion(
    source: str, results: AnyResults, criteria: Sequence[Criterion]
) -> None:
    """A run an abort-on-fail criterion stopped fails on that criterion (DESIGN.md, "Stopped
    runs"); judged with criteria that do not include it, it could pass, so that is refused."""
    stopped = None if isinstance(results, LockAuditResults) else results.stopped
    if stopped is None or stopped.by != "criterion":
        return
    if not any(c.label == stopped.criterion for c in criteria):
        raise InputError(
            f"{source}: the run was stopped by the criterion {stopped.criterion!r}, which is not "
            "among the criteria given; gate it with the acceptance file it ran with"
        )


def _frozen(results: AnyResults, figures: WindowFigures | None) -> Stall | None:
    """The stall that explains why a valid load run (or the criterion's window of it) has
    nothing to measure: no request completed in it while requests were in flight (a freeze
    longer than the run, or than the window); None for any other run."""
    if not isinstance(results, LoadResults):
        return None
    stall = results.longest_stall
    if figures is None:
        return None if results.totals.requests else stall
    if figures.requests or stall is None:
        return None
    first, last = figures.seconds
    return stall if stall.start_s < last and stall.end_s > first else None


def _margin(op: str, measured: float, threshold: float) -> float:
    if op in ("<", "<="):
        return threshold - measured
    if op in (">", ">="):
        return measured - threshold
    if op == "==":
        return -abs(measured - threshold)
    return abs(measured - threshold)


# --- reading one metric from one results file ----------------------------------------------------


def measure(criterion: Criterion, results: AnyResults, *, source: str = "results") -> float:
    """The value a criterion's metric has in a results file of its kind.

    Raises ``InputError`` naming the file and the metric when the file does not hold it.
    """
    if results.kind != criterion.results_kind:
        raise InputError(
            f"{source}: {criterion.metric} is measured on {criterion.results_kind} results, "
            f"not {results.kind}"
        )
    metric = criterion.metric_name
    if isinstance(results, LockAuditResults):
        if results.files_checked == 0:
            # An audit of nothing finds nothing: 0 violations there is not a measurement.
            raise _missing(source, criterion, "the lock audit checked no file")
        return float(results.violations)
    if isinstance(results, SmokeResults):
        return _measure_smoke(metric, results, source=source)
    return _measure_load(
        criterion, results, source=source, figures=_window(criterion, results, source=source)
    )


def _measure(
    criterion: Criterion, results: AnyResults, *, source: str, figures: WindowFigures | None
) -> float:
    """``measure``, with the criterion's window already resolved (its figures merged once)."""
    if figures is None or not isinstance(results, LoadResults):
        return measure(criterion, results, source=source)
    return _measure_load(criterion, results, source=source, figures=figures)


def _missing(source: str, criterion: Criterion, why: str) -> InputError:
    where = f" for endpoint {criterion.endpoint!r}" if criterion.endpoint else ""
    return InputError(
        f"{source}: no measurement of {criterion.metric}{where}: {why}; "
        "a missing measurement is never a pass"
    )


def _measure_smoke(metric: str, results: SmokeResults, *, source: str) -> float:
    total = len(results.checks)
    passed = results.checks_passed
    if metric == "checks_passed":
        return float(passed)
    if metric == "checks_failed":
        if total == 0:
            raise InputError(
                f"{source}: no measurement of smoke.checks_failed: the smoke run holds no checks; "
                "a missing measurement is never a pass"
            )
        return float(total - passed)
    if metric == "pass_ratio":
        if total == 0:
            raise InputError(
                f"{source}: no measurement of smoke.pass_ratio: the smoke run holds no checks; "
                "a missing measurement is never a pass"
            )
        return passed / total
    raise InputError(f"{source}: unknown smoke metric {metric!r}")


def _measure_load(
    criterion: Criterion, results: LoadResults, *, source: str, figures: WindowFigures | None
) -> float:
    metric = criterion.metric_name
    if criterion.endpoint is not None:
        endpoint = _endpoint(criterion, results, source=source)
        if metric == "http2_internal_errors":
            # The endpoint is in the file (it was requested): none of its errors of this kind
            # is a measured 0, not a missing measurement.
            kind = ErrorKind.HTTP2_INTERNAL_ERROR.value
            return float(_kind_count(results, kind, endpoint=endpoint.name))
        return _traffic_metric(
            criterion,
            requests=endpoint.requests,
            errors=endpoint.errors,
            latency=endpoint.latency_ms,
            service=endpoint_service_time(endpoint),
            source=source,
        )
    if figures is not None:
        # config.py admits only the traffic metrics a window holds, and no endpoint with it.
        if metric == "rps":
            return figures.rps
        return _traffic_metric(
            criterion,
            requests=figures.requests,
            errors=figures.errors,
            latency=figures.latency,
            service=figures.service,
            source=source,
            no_service=figures.no_service,
        )
    if metric == "max_stall_s":
        if results.longest_stall is not None:
            return results.longest_stall.duration_s
        if results.totals.requests == 0:
            raise _missing(source, criterion, "no request completed and no stall was recorded")
        # No stall recorded means no span of at least the recorder's floor without completions.
        return 0.0
    if metric == "http2_internal_errors" or metric.startswith("errors."):
        kind = (
            ErrorKind.HTTP2_INTERNAL_ERROR.value
            if metric == "http2_internal_errors"
            else metric.removeprefix("errors.")
        )
        count = _kind_count(results, kind)
        if results.totals.requests == 0:
            raise _missing(source, criterion, "no request completed, so no error was counted")
        if count == 0 and kind not in _KNOWN_KINDS:
            # A service may have kinds of its own, but a kind loadkit does not know that the run
            # never saw cannot be told from a typo, which would pass every run.
            raise _missing(
                source,
                criterion,
                f"{kind!r} is not an error kind loadkit knows and the run recorded none; "
                f"known kinds: {', '.join(sorted(_KNOWN_KINDS))}",
            )
        # A known kind the run did not see: every failure was classified, none as this kind.
        return float(count)
    if metric == "exceptions":
        # Counted whether or not any request was sent: a run of broken tasks is all exceptions.
        return float(results.exception_count)
    if metric == "locust_exit_code":
        # Locust's own verdict on the run (the locustfile's process_exit_code, 2 after an
        # exception in its event handlers or greenlets). Not recorded (plain Locust with the
        # plugin, a web UI test, a file older than the field): no verdict asked for, 0.
        return float(results.locust_exit_code or 0)
    if metric == "rps":
        if results.duration_s <= 0:
            raise _missing(source, criterion, "the run has no duration")
        return results.totals.rps
    return _traffic_metric(
        criterion,
        requests=results.totals.requests,
        errors=results.totals.errors,
        latency=results.latency_ms,
        service=service_time(results),
        source=source,
        no_service=missing_service_time(results, sent=results.totals.requests - results.not_sent),
    )


def service_time(results: LoadResults) -> LatencySummary | None:
    """The run's service times: ``service_time_ms`` in an open run; in a closed one (and every
    file written before open runs) the response times, which are the service times there; None
    when no request was sent (only iterations never sent) or an open run's file kept none
    (``measure.service_time``'s rule, as the windows judge it)."""
    return service_summary(
        results,
        service=results.service_time_ms,
        latency=results.latency_ms,
        not_sent=results.not_sent,
    )


def endpoint_service_time(endpoint: EndpointResults) -> LatencySummary | None:
    """One endpoint's service times, as ``service_time``; None for ``(not sent)``."""
    if endpoint.service_time_ms is not None:
        return endpoint.service_time_ms
    return None if endpoint.name == NOT_SENT_ENDPOINT else endpoint.latency_ms


def _traffic_metric(
    criterion: Criterion,
    *,
    requests: int,
    errors: int,
    latency: LatencySummary,
    service: LatencySummary | None,
    source: str,
    no_service: str = "no request was sent, so there is no service time",
) -> float:
    """``criterion``'s traffic metric from these figures; ``no_service``: why ``service`` is
    None (or empty), as the gate then says."""
    metric = criterion.metric_name
    if metric == "requests":
        return float(requests)
    if metric == "errors":
        return float(errors)
    if metric == "error_rate":
        if requests == 0:
            raise _missing(source, criterion, "no request completed, so there is no error rate")
        # From the counts, not the stored rate: exact, whatever rounding a writer applied.
        return errors / requests
    service_field = _SERVICE_FIELDS.get(metric)
    if service_field is not None:
        value = None if service is None else getattr(service, service_field)
        if value is None:
            raise _missing(source, criterion, no_service)
        return float(value)
    field_name = _LATENCY_FIELDS.get(metric)
    if field_name is None:
        raise InputError(f"{source}: unknown load metric {criterion.metric!r}")
    value = getattr(latency, field_name)
    if value is None:
        raise _missing(source, criterion, "no request completed, so there is no latency")
    return float(value)


def _endpoint(criterion: Criterion, results: LoadResults, *, source: str) -> EndpointResults:
    for endpoint in results.endpoints:
        if endpoint.name == criterion.endpoint:
            return endpoint
    known = ", ".join(repr(e.name) for e in results.endpoints) or "none"
    raise _missing(source, criterion, f"the file has no such endpoint (it has: {known})")


def _kind_count(results: LoadResults, kind: str, *, endpoint: str | None = None) -> int:
    return sum(
        group.count
        for group in results.errors
        if group.kind == kind and (endpoint is None or group.endpoint == endpoint)
    )


# --- evidence ------------------------------------------------------------------------------------


def _evidence(
    criterion: Criterion, results: AnyResults, figures: WindowFigures | None = None
) -> tuple[Evidence, ...]:
    """Where to look when ``criterion`` failed; with a window, its seconds only."""
    metric = criterion.metric_name
    if isinstance(results, LockAuditResults):
        return (_lock_sites(results),)
    if isinstance(results, SmokeResults):
        return (_failed_checks(results),)
    if metric in ("errors", "error_rate"):
        return (_error_groups(results, endpoint=criterion.endpoint, kind=None),)
    if metric == "http2_internal_errors":
        kind = ErrorKind.HTTP2_INTERNAL_ERROR.value
        return (_error_groups(results, endpoint=criterion.endpoint, kind=kind),)
    if metric.startswith("errors."):
        return (_error_groups(results, endpoint=None, kind=metric.removeprefix("errors.")),)
    if metric == "max_stall_s":
        return _stall(results)
    if metric == "exceptions":
        return (_user_exceptions(results),)
    seconds = results.timeline
    if figures is not None:
        first, last = figures.seconds
        seconds = [p for p in results.timeline if first <= p.t_s < last]
    if metric in _LATENCY_FIELDS or metric in _SERVICE_FIELDS:
        return _latency(results, metric, endpoint=criterion.endpoint, seconds=seconds)
    if metric in ("rps", "requests") and criterion.endpoint is None:
        return _throughput(results, seconds)
    return ()


def _error_groups(results: LoadResults, *, endpoint: str | None, kind: str | None) -> ErrorGroups:
    groups = [
        g
        for g in results.errors
        if (endpoint is None or g.endpoint == endpoint) and (kind is None or g.kind == kind)
    ]
    groups.sort(key=lambda g: (-g.count, g.endpoint, g.kind))
    return ErrorGroups(
        endpoint=endpoint,
        total=sum(g.count for g in groups),
        groups=tuple(groups[:TOP_ERROR_GROUPS]),
        omitted=max(len(groups) - TOP_ERROR_GROUPS, 0),
    )


def _stall(results: LoadResults, *, with_seconds: bool = True) -> tuple[StallWindow, ...]:
    stall = results.longest_stall
    if stall is None:
        return ()
    began = results.started_at + timedelta(seconds=stall.start_s)
    ended = results.started_at + timedelta(seconds=stall.end_s)
    if not with_seconds:
        return (StallWindow(stall=stall, began=began, ended=ended),)
    first = max(math.floor(stall.start_s) - 1, 0)
    last = math.ceil(stall.end_s) + 1
    around = [p for p in results.timeline if first <= p.t_s <= last]
    shown = around[:STALL_CONTEXT_ROWS]
    return (
        StallWindow(
            stall=stall,
            began=began,
            ended=ended,
            seconds=tuple(shown),
            omitted=len(around) - len(shown),
        ),
    )


def _latency(
    results: LoadResults,
    metric: str,
    *,
    endpoint: str | None,
    seconds: Sequence[TimelinePoint],
) -> tuple[Evidence, ...]:
    service = metric in _SERVICE_FIELDS
    field_name = _SERVICE_FIELDS[metric] if service else _LATENCY_FIELDS[metric]
    endpoints = [e for e in results.endpoints if endpoint is None or e.name == endpoint]

    def figure(e: EndpointResults) -> float:
        summary = endpoint_service_time(e) if service else e.latency_ms
        return (getattr(summary, field_name) if summary is not None else None) or 0.0

    endpoints.sort(key=lambda e: -figure(e))
    evidence: list[Evidence] = [
        SlowestEndpoints(
            metric=metric,
            endpoints=tuple(endpoints[:TOP_ENDPOINTS]),
            omitted=max(len(endpoints) - TOP_ENDPOINTS, 0),
            service=service,
        )
    ]
    if endpoint is None:
        slowest = _slowest_seconds(seconds, service=service)
        if slowest is not None:
            evidence.append(slowest)
        if results.longest_stall is not None and results.longest_stall.duration_s >= 1.0:
            evidence.extend(_stall(results, with_seconds=False))
    return tuple(evidence)


def _slowest_seconds(seconds: Sequence[TimelinePoint], *, service: bool) -> SlowestSeconds | None:
    """The seconds with the highest P95; of the service times for a service metric in an open
    run (where a queue makes the response times' slowest seconds others), else the response
    times'. None when no second has one."""
    if service and any(p.service_histogram is not None for p in seconds):
        # Decoded only here, for a failed service criterion: ~1.5 ms a second.
        ranked = sorted(
            ((p, _service_p95_ms(p)) for p in seconds if p.service_histogram is not None),
            key=lambda pair: -(pair[1] or 0.0),
        )[:SLOWEST_SECONDS]
        return SlowestSeconds(
            seconds=tuple(p for p, _ in ranked), service_p95_ms=tuple(v for _, v in ranked)
        )
    timed = sorted(
        (p for p in seconds if p.p95_ms is not None),
        key=lambda p: -(p.p95_ms or 0.0),
    )[:SLOWEST_SECONDS]
    return SlowestSeconds(seconds=tuple(timed)) if timed else None


def _service_p95_ms(point: TimelinePoint) -> float | None:
    if point.service_histogram is None:
        return None
    histogram = LatencyHistogram.decode(point.service_histogram)
    return us_to_ms(histogram.percentiles_us((95.0,)).get(95.0))


def _throughput(results: LoadResults, seconds: Sequence[TimelinePoint]) -> tuple[Evidence, ...]:
    # Low throughput is either a slow service (the slowest seconds show where) or a generator
    # that could not keep up (its notes say so).
    quiet = sorted(seconds, key=lambda p: (p.completions, p.t_s))[:SLOWEST_SECONDS]
    evidence: list[Evidence] = [QuietestSeconds(seconds=tuple(quiet))]
    if results.generator.notes:
        evidence.append(GeneratorNotes(notes=tuple(results.generator.notes)))
    return tuple(evidence)


def _user_exceptions(results: LoadResults) -> UserExceptions:
    groups = sorted(results.exceptions, key=lambda g: (-g.count, g.type, g.where))
    return UserExceptions(
        total=results.exception_count,
        groups=tuple(groups[:TOP_EXCEPTIONS]),
        omitted=max(len(groups) - TOP_EXCEPTIONS, 0),
    )


def _failed_checks(results: SmokeResults) -> FailedChecks:
    failed = tuple(c for c in results.checks if not c.passed)
    return FailedChecks(checks=failed, total=len(results.checks))


def _lock_sites(results: LockAuditResults) -> LockSites:
    findings = sorted(results.findings, key=lambda f: (f.path, f.line, f.col))
    return LockSites(
        findings=tuple(findings[:MAX_FINDINGS]),
        violations=results.violations,
        files_checked=results.files_checked,
        omitted=max(len(findings) - MAX_FINDINGS, 0),
    )


def raise_for_outcome(report: GateReport, *, message: str) -> None:
    """Raise what the outcome means for the exit code: ``InvalidRunError`` for an invalid run,
    ``CriteriaNotMetError`` for a failed criterion, each carrying ``message`` (the rendered
    headline); return quietly when the gate passed."""
    if report.outcome == "invalid":
        raise InvalidRunError(message)
    if report.outcome == "failed":
        raise CriteriaNotMetError(message)

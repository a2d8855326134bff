"""The acceptance gate: criteria × results files → verdicts, each with its measured value, its
margin and, when it failed, the evidence of where to look.

Pure: reads nothing and prints nothing; the CLI reads the files and renders what this returns
(``loadkit.report.gate``). The rules, so that the gate is honest:

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
from datetime import timedelta
from typing import Literal

from loadkit.config import Criterion, ResultsKind
from loadkit.exceptions import ConfigError, CriteriaNotMetError, InputError, InvalidRunError
from loadkit.measure.kinds import ErrorKind
from loadkit.measure.results import (
    EndpointResults,
    LatencySummary,
    LoadResults,
    LockAuditResults,
    SmokeResults,
)
from loadkit.measure.validity import InvalidReason
from loadkit.report.units import format_delta, format_percent, format_value

AnyResults = SmokeResults | LoadResults | LockAuditResults
Status = Literal["passed", "failed", "invalid", "not_evaluated"]
Outcome = Literal["passed", "failed", "invalid"]
Cell = str | int | float | None

TOP_ERROR_GROUPS = 5
TOP_ENDPOINTS = 5
SLOWEST_SECONDS = 3
MAX_FINDINGS = 20
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


# --- what the gate returns -----------------------------------------------------------------------


@dataclass(frozen=True)
class Evidence:
    """A small table that shows where to look: error groups, a stall's window, lock sites."""

    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[Cell, ...], ...]
    omitted: int = 0
    """Rows left out to keep the table short (``… and N more``)."""


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
    reason: str
    evidence: tuple[Evidence, ...] = ()

    @property
    def margin_percent(self) -> float | None:
        """The margin relative to the threshold, in percent (None for a zero threshold)."""
        if self.margin is None or self.criterion.threshold == 0:
            return None
        return self.margin / abs(self.criterion.threshold) * 100.0


@dataclass(frozen=True)
class RunCheck:
    """Whether one results file can be gated on at all."""

    source: str
    kind: ResultsKind
    valid: bool
    reasons: tuple[InvalidReason, ...] = ()


@dataclass(frozen=True)
class GateReport:
    """Everything the gate decided, in the order of the criteria."""

    verdicts: tuple[Verdict, ...]
    runs: tuple[RunCheck, ...]
    notes: tuple[str, ...] = field(default=())

    @property
    def outcome(self) -> Outcome:
        """invalid if any run is invalid, else failed if any verdict failed, else passed."""
        if any(not run.valid for run in self.runs):
            return "invalid"
        if any(v.status == "failed" for v in self.verdicts):
            return "failed"
        return "passed"

    def with_status(self, status: Status) -> list[Verdict]:
        """The verdicts with one status."""
        return [v for v in self.verdicts if v.status == status]

    def headline(self) -> str:
        """One line: the outcome and the criteria behind it."""
        judged = [v for v in self.verdicts if v.status != "not_evaluated"]
        skipped = len(self.verdicts) - len(judged)
        tail = f"; {skipped} not evaluated" if skipped else ""
        if self.outcome == "invalid":
            bad = [
                f"{run.source} ({'; '.join(map(str, run.reasons))})"
                for run in self.runs
                if not run.valid
            ]
            failed = self.with_status("failed")
            also = f"; also failed: {_labels(failed)}" if failed else ""
            return f"INVALID: run cannot be gated on: {', '.join(bad)}{also}{tail}"
        if self.outcome == "failed":
            failed = self.with_status("failed")
            return (
                f"FAILED: {len(failed)} of {len(judged)} criteria not met: {_labels(failed)}{tail}"
            )
        return f"PASSED: {len(judged)} of {len(judged)} criteria met{tail}"


def _labels(verdicts: Sequence[Verdict]) -> str:
    return ", ".join(v.criterion.label for v in verdicts)


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
                    reason=f"no {criterion.results_kind} results given",
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
    notes = tuple(
        f"{source}: no criterion is about {res.kind} results; it was not gated"
        for source, res in results
        if not any(c.results_kind == res.kind for c in criteria)
    )
    return GateReport(verdicts=tuple(verdicts), runs=runs, notes=notes)


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
    if not run.valid:
        try:
            measured = measure(criterion, results, source=source)
        except InputError as missing:
            # An aborted run often has nothing to measure: that is the run being invalid
            # (exit 4), not a broken input (exit 2).
            return Verdict(
                criterion=criterion,
                status="invalid",
                source=source,
                measured=None,
                margin=None,
                reason=f"{missing}; not trusted: {'; '.join(map(str, run.reasons))}",
            )
    else:
        try:
            measured = measure(criterion, results, source=source)
        except InputError:
            frozen = _frozen(results)
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
                reason=f"{frozen}, so {criterion.metric} has no value and is not met",
                evidence=_stall(results),
            )
    met = _OPERATORS[criterion.op](measured, criterion.threshold)
    margin = _margin(criterion.op, measured, criterion.threshold)
    reason = _reason(criterion, measured, margin, met)
    evidence = () if met else _evidence(criterion, results)
    status: Status = "passed" if met else "failed"
    if not run.valid:
        status = "invalid"
        evidence = ()
        reason = (
            f"{reason}; not trusted: {'; '.join(map(str, run.reasons))} "
            f"(it would have {'passed' if met else 'failed'})"
        )
    return Verdict(
        criterion=criterion,
        status=status,
        source=source,
        measured=measured,
        margin=margin,
        reason=reason,
        evidence=evidence,
    )


def _frozen(results: AnyResults) -> str | None:
    """Why a valid load run has nothing to measure when no request ever completed in it while
    requests were in flight (a freeze longer than the run); None for any other run."""
    if not isinstance(results, LoadResults) or results.totals.requests:
        return None
    stall = results.longest_stall
    if stall is None:
        return None
    return (
        f"no request completed in the whole run: the service froze for {stall.duration_s:.2f} s "
        "with requests in flight"
    )


def _margin(op: str, measured: float, threshold: float) -> float:
    if op in ("<", "<="):
        return threshold - measured
    if op in (">", ">="):
        return measured - threshold
    if op == "==":
        return -abs(measured - threshold)
    return abs(measured - threshold)


def _reason(criterion: Criterion, measured: float, margin: float, met: bool) -> str:
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
    return _measure_load(criterion, results, source=source)


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


def _measure_load(criterion: Criterion, results: LoadResults, *, source: str) -> float:
    metric = criterion.metric_name
    if criterion.endpoint is not None:
        endpoint = _endpoint(criterion, results, source=source)
        return _traffic_metric(
            criterion,
            requests=endpoint.requests,
            errors=endpoint.errors,
            latency=endpoint.latency_ms,
            source=source,
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
    if metric == "rps":
        if results.duration_s <= 0:
            raise _missing(source, criterion, "the run has no duration")
        return results.totals.rps
    return _traffic_metric(
        criterion,
        requests=results.totals.requests,
        errors=results.totals.errors,
        latency=results.latency_ms,
        source=source,
    )


def _traffic_metric(
    criterion: Criterion, *, requests: int, errors: int, latency: LatencySummary, source: str
) -> float:
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


def _kind_count(results: LoadResults, kind: str) -> int:
    return sum(group.count for group in results.errors if group.kind == kind)


# --- evidence ------------------------------------------------------------------------------------


def _evidence(criterion: Criterion, results: AnyResults) -> tuple[Evidence, ...]:
    metric = criterion.metric_name
    if isinstance(results, LockAuditResults):
        return (_lock_sites(results),)
    if isinstance(results, SmokeResults):
        return (_failed_checks(results),)
    if metric in ("errors", "error_rate"):
        return (_error_groups(results, endpoint=criterion.endpoint, kind=None),)
    if metric == "http2_internal_errors":
        kind = ErrorKind.HTTP2_INTERNAL_ERROR.value
        return (_error_groups(results, endpoint=None, kind=kind),)
    if metric.startswith("errors."):
        return (_error_groups(results, endpoint=None, kind=metric.removeprefix("errors.")),)
    if metric == "max_stall_s":
        return _stall(results)
    if metric in _LATENCY_FIELDS:
        return _latency(results, metric, endpoint=criterion.endpoint)
    if metric in ("rps", "requests") and criterion.endpoint is None:
        return _throughput(results)
    return ()


def _error_groups(results: LoadResults, *, endpoint: str | None, kind: str | None) -> Evidence:
    groups = [
        g
        for g in results.errors
        if (endpoint is None or g.endpoint == endpoint) and (kind is None or g.kind == kind)
    ]
    groups.sort(key=lambda g: (-g.count, g.endpoint, g.kind))
    total = sum(g.count for g in groups)
    rows = tuple(
        (
            g.endpoint,
            g.kind,
            g.count,
            f"{g.count / total * 100:.1f} %",
            ", ".join(f"{status}×{n}" for status, n in g.status_codes.items()),
            f"{g.first_s:.1f}–{g.last_s:.1f} s",
            g.example_trace_id,
            _shorten(g.example_message),
        )
        for g in groups[:TOP_ERROR_GROUPS]
    )
    scope = " on " + endpoint if endpoint else ""
    return Evidence(
        title=f"Top error kinds by endpoint{scope} ({total} errors)",
        columns=("endpoint", "kind", "count", "share", "status", "seen", "trace id", "message"),
        rows=rows,
        omitted=max(len(groups) - TOP_ERROR_GROUPS, 0),
    )


def _stall(results: LoadResults) -> tuple[Evidence, ...]:
    stall = results.longest_stall
    if stall is None:
        return ()
    began = results.started_at + timedelta(seconds=stall.start_s)
    ended = results.started_at + timedelta(seconds=stall.end_s)
    window = Evidence(
        title="The longest stall: no request completed while requests were in flight",
        columns=("from", "to", "duration", "wall clock (UTC)"),
        rows=(
            (
                f"{stall.start_s:.2f} s",
                f"{stall.end_s:.2f} s",
                f"{stall.duration_s:.2f} s",
                f"{began:%H:%M:%S.%f}"[:-3] + " – " + f"{ended:%H:%M:%S.%f}"[:-3],
            ),
        ),
    )
    first = max(math.floor(stall.start_s) - 1, 0)
    last = math.ceil(stall.end_s) + 1
    around = [p for p in results.timeline if first <= p.t_s <= last]
    shown = around[:STALL_CONTEXT_ROWS]
    seconds = Evidence(
        title="Seconds around the stall (completions per second)",
        columns=("second", "completions", "errors", "p95 ms"),
        rows=tuple((p.t_s, p.completions, p.errors, p.p95_ms) for p in shown),
        omitted=len(around) - len(shown),
    )
    return (window, seconds) if shown else (window,)


def _latency(results: LoadResults, metric: str, *, endpoint: str | None) -> tuple[Evidence, ...]:
    field_name = _LATENCY_FIELDS[metric]
    endpoints = [e for e in results.endpoints if endpoint is None or e.name == endpoint]
    endpoints.sort(key=lambda e: -(getattr(e.latency_ms, field_name) or 0.0))
    slowest = Evidence(
        title=f"Slowest endpoints by {metric}",
        columns=("endpoint", "requests", "error rate", "p50 ms", "p95 ms", "p99 ms", "max ms"),
        rows=tuple(
            (
                e.name,
                e.requests,
                f"{e.error_rate * 100:.2f} %",
                e.latency_ms.p50,
                e.latency_ms.p95,
                e.latency_ms.p99,
                e.latency_ms.max,
            )
            for e in endpoints[:TOP_ENDPOINTS]
        ),
        omitted=max(len(endpoints) - TOP_ENDPOINTS, 0),
    )
    evidence = [slowest]
    if endpoint is None:
        timed = sorted(
            (p for p in results.timeline if p.p95_ms is not None),
            key=lambda p: -(p.p95_ms or 0.0),
        )[:SLOWEST_SECONDS]
        if timed:
            evidence.append(
                Evidence(
                    title="Slowest seconds of the run (p95 of what completed in each)",
                    columns=("second", "completions", "errors", "p95 ms"),
                    rows=tuple((p.t_s, p.completions, p.errors, p.p95_ms) for p in timed),
                )
            )
        if results.longest_stall is not None and results.longest_stall.duration_s >= 1.0:
            evidence.extend(_stall(results)[:1])
    return tuple(evidence)


def _throughput(results: LoadResults) -> tuple[Evidence, ...]:
    # Low throughput is either a slow service (the slowest seconds show where) or a generator
    # that could not keep up (its notes say so).
    quiet = sorted(results.timeline, key=lambda p: (p.completions, p.t_s))[:SLOWEST_SECONDS]
    evidence = [
        Evidence(
            title="Seconds with the fewest completions",
            columns=("second", "completions", "errors", "p95 ms"),
            rows=tuple((p.t_s, p.completions, p.errors, p.p95_ms) for p in quiet),
        )
    ]
    if results.generator.notes:
        evidence.append(
            Evidence(
                title="Load generator notes",
                columns=("note",),
                rows=tuple((note,) for note in results.generator.notes),
            )
        )
    return tuple(evidence)


def _failed_checks(results: SmokeResults) -> Evidence:
    failed = [c for c in results.checks if not c.passed]
    return Evidence(
        title=f"Failed smoke checks ({len(failed)} of {len(results.checks)})",
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
            for c in failed
        ),
    )


def _lock_sites(results: LockAuditResults) -> Evidence:
    findings = sorted(results.findings, key=lambda f: (f.path, f.line, f.col))
    return Evidence(
        title=f"Lock-safety violations ({results.violations} in {results.files_checked} files)",
        columns=("site", "code", "problem", "lock taken at"),
        rows=tuple(
            (
                f"{f.path}:{f.line}:{f.col}",
                f.code,
                _shorten(f.message, 100),
                f"line {f.lock_line}" if f.lock_line is not None else None,
            )
            for f in findings[:MAX_FINDINGS]
        ),
        omitted=max(len(findings) - MAX_FINDINGS, 0),
    )


def _shorten(text: str | None, width: int = 60) -> str | None:
    if text is None:
        return None
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def raise_for_outcome(report: GateReport) -> None:
    """Raise what the outcome means for the exit code: ``InvalidRunError`` for an invalid run,
    ``CriteriaNotMetError`` for a failed criterion; return quietly when the gate passed."""
    if report.outcome == "invalid":
        raise InvalidRunError(report.headline())
    if report.outcome == "failed":
        raise CriteriaNotMetError(report.headline())

"""Crafted inputs of the gate: results files of each kind (made through the real recorder where
they carry measurements), the seed criteria of acceptance.toml, and a one-criterion judge. Shared
by the gate's tests, its renderers' tests, the validity tests and accept's."""

from __future__ import annotations

from datetime import UTC, datetime

from loadkit.config import Criterion, parse_config
from loadkit.gate.evaluate import AnyResults, GateReport, Verdict, evaluate_criteria
from loadkit.measure.recorder import LatencyRecorder
from loadkit.measure.results import (
    GeneratorHealth,
    LatencySummary,
    LoadResults,
    LockAuditResults,
    LockFinding,
    SmokeCheckResult,
    SmokeResults,
    with_reason,
)
from loadkit.measure.validity import aborted_reason

T0 = 1_800_000_000.0
LOGIN = "POST /api/auth/login"
ITEMS = "GET /api/items"

SEED = parse_config(
    {
        "criteria": [
            {"name": "smoke 10/10", "metric": "smoke.checks_passed", "op": ">=", "threshold": 10},
            {"metric": "smoke.checks_failed", "op": "==", "threshold": 0},
            {"metric": "load.error_rate", "op": "<", "threshold": 0.10},
            {"metric": "load.p95_ms", "op": "<", "threshold": 1000},
            {"metric": "load.http2_internal_errors", "op": "==", "threshold": 0},
            {"metric": "load.max_stall_s", "op": "<", "threshold": 5},
            {"metric": "lock_audit.lock_violations", "op": "==", "threshold": 0},
        ]
    },
    source="seed",
).criteria


# --- crafted results ---------------------------------------------------------------------------


def crafted_load(
    *,
    ok: int = 90,
    errors: tuple[tuple[str, str, int], ...] = ((LOGIN, "storage_lock_timeout", 5),),
    latency_s: float = 0.05,
    duration_s: float = 10.0,
    stall: tuple[float, float] | None = None,
) -> LoadResults:
    """A load run recorded through the real recorder: ``ok`` fast successes spread over the run
    (alternating two endpoints), the given error groups, and optionally one request that was in
    flight through a silent span ``(from_s, to_s)``."""
    recorder = LatencyRecorder(start=T0)
    total = ok + sum(count for _, _, count in errors)
    step = duration_s / (total + 1)
    t = T0
    outcomes: list[tuple[str, str | None]] = [
        (LOGIN if i % 2 == 0 else ITEMS, None) for i in range(ok)
    ]
    for endpoint, error_kind, count in errors:
        outcomes.extend((endpoint, error_kind) for _ in range(count))
    for index, (endpoint, kind) in enumerate(outcomes):
        t = T0 + (index + 1) * step
        if stall is not None and stall[0] <= t - T0 < stall[1]:
            t = T0 + stall[1] + 0.001 * index  # nothing completes inside the stall
        recorder.record(
            endpoint=endpoint,
            latency_s=latency_s,
            end=t,
            error_kind=kind,
            status=503 if kind else 200,
            trace_id=f"trace-{index}" if kind else None,
            message=f"{kind} on {endpoint}" if kind else None,
        )
    if stall is not None:
        recorder.record(endpoint=ITEMS, latency_s=stall[1] - stall[0], end=T0 + stall[1] + 0.0005)
    recorder.finish(end=T0 + max(duration_s, t - T0 + 0.01))
    return LoadResults(
        target="http://127.0.0.1:1",
        config={"scenario": "login", "concurrency": 10},
        **recorder.traffic_fields(),
    )


def with_latency(results: LoadResults, **percentiles: float) -> LoadResults:
    """The same run with some latency figures overridden (to sit exactly on a threshold); the
    others are moved just enough to stay possible (min <= p50 <= ... <= max, mean within)."""
    order = ("min", "p50", "p90", "p95", "p99", "p999", "max")
    figures = results.latency_ms.model_dump()
    figures.update(percentiles)
    for index, name in enumerate(order):
        if name in percentiles:
            continue
        below = [percentiles[n] for n in order[:index] if n in percentiles]
        above = [percentiles[n] for n in order[index + 1 :] if n in percentiles]
        figures[name] = min(max([figures[name], *below]), *above, float("inf"))
    if "mean" not in percentiles:
        figures["mean"] = min(max(figures["mean"], figures["min"]), figures["max"])
    latency = LatencySummary.model_validate(figures)
    return results.model_copy(update={"latency_ms": latency})


def crafted_smoke(*, passed: int = 10, failed: int = 0) -> SmokeResults:
    """A smoke run with the given numbers of passed and failed checks."""
    checks = [
        SmokeCheckResult(
            name=f"check {i}",
            method="GET",
            path=f"/c/{i}",
            expected_status=200,
            status=200,
            passed=True,
        )
        for i in range(passed)
    ] + [
        SmokeCheckResult(
            name=f"broken {i}",
            method="POST",
            path="/api/auth/login",
            expected_status=200,
            status=500,
            passed=False,
            error_kind="internal_error",
            trace_id=f"t-{i}",
            message="boom",
        )
        for i in range(failed)
    ]
    recorder = LatencyRecorder(start=T0)
    recorder.record(endpoint="GET /health", latency_s=0.01, end=T0 + 0.1)
    recorder.finish(end=T0 + 0.2)
    return SmokeResults(
        target="http://127.0.0.1:1",
        started_at=recorder.started_at,
        duration_s=0.2,
        totals=recorder.totals(),
        latency_ms=recorder.overall_histogram().summary(),
        histogram=recorder.overall_histogram().encode(),
        checks=checks,
    )


def crafted_audit(*, violations: int = 0, aborted: bool = False) -> LockAuditResults:
    """A lock audit with ``violations`` LK001 findings."""
    findings = [
        LockFinding(
            path="service/storage.py",
            line=40 + i,
            col=8,
            code="LK001",
            message="bcrypt.hashpw called while holding _storage_lock",
            lock_line=38,
        )
        for i in range(violations)
    ]
    return LockAuditResults(
        target="service",
        started_at=datetime.fromtimestamp(T0, tz=UTC),
        duration_s=0.1,
        files_checked=12,
        violations=violations,
        findings=findings,
        invalid_reasons=[aborted_reason("service/broken.py: cannot parse")] if aborted else [],
    )


def overloaded(results: LoadResults, generator: GeneratorHealth) -> LoadResults:
    """``results`` measured by an overloaded ``generator``, validated as a results file is (a
    ``model_copy`` would skip the validation that adds the overload's reason)."""
    return LoadResults.model_validate({**results.model_dump(), "generator": generator})


def aborted(results: LoadResults) -> LoadResults:
    """``results`` of a run that was interrupted."""
    return with_reason(results, aborted_reason("interrupted (Ctrl-C or SIGTERM)"))


def criterion(metric: str, op: str, threshold: float, **extra: object) -> Criterion:
    """One criterion, validated as acceptance.toml would be."""
    return Criterion.model_validate({"metric": metric, "op": op, "threshold": threshold, **extra})


def judge(crit: Criterion, *results: AnyResults) -> GateReport:
    """Evaluate one criterion on results named by their kind."""
    return evaluate_criteria([crit], [(f"{r.kind}.json", r) for r in results])


def only(report: GateReport) -> Verdict:
    """The one verdict of a report on one criterion."""
    (verdict,) = report.verdicts
    return verdict

"""Regression criteria: how much worse than a baseline run a metric may get.

Pure: figures in, a judgement out. ``op = "regression"`` criteria (``loadkit.config``) allow a
metric to be worse than the baseline's by ``max_worse_pct`` percent of the baseline value and/or
by ``max_worse_abs`` in the metric's own unit; with both, a change fails only when it exceeds
both (2 ms → 3 ms is 50 % worse but 1 ms: within ``max_worse_abs = 5``). "Worse" is up for
latencies, errors and stalls, down for throughput and checks passed (``RegressionCriterion.worse``).
A change exactly at the allowance passes: the tolerance says how much worse is still a pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from loadkit.config import RegressionCriterion

RegressionStatus = Literal["passed", "failed", "invalid", "not_evaluated"]

TOP_REGRESSED_ENDPOINTS = 5


@dataclass(frozen=True)
class RegressionChange:
    """One metric in the baseline run and in the current one, and what the criterion allows."""

    baseline: float
    current: float
    allowed: float
    """How much worse (in the metric's unit, ≥ 0) still passes: the larger of the tolerances
    given (a percentage of a zero baseline allows nothing)."""
    worse: Literal["up", "down"]

    @property
    def delta(self) -> float:
        """current - baseline, signed."""
        return self.current - self.baseline

    @property
    def percent(self) -> float | None:
        """The change relative to the baseline, in percent, signed (None from a zero baseline
        unless nothing changed)."""
        if self.baseline == 0:
            return 0.0 if self.delta == 0 else None
        return self.delta / abs(self.baseline) * 100.0

    @property
    def worse_by(self) -> float:
        """How much worse the current run is, in the metric's unit (negative when better)."""
        return self.delta if self.worse == "up" else -self.delta

    @property
    def regressed(self) -> bool:
        """Worse by more than allowed."""
        return self.worse_by > self.allowed


def allowed_change(criterion: RegressionCriterion, baseline: float) -> float:
    """How much worse than ``baseline`` the criterion allows, in the metric's unit: when both
    tolerances are given, the larger (a change fails only when it exceeds both)."""
    allowances = []
    if criterion.max_worse_pct is not None:
        allowances.append(abs(baseline) * criterion.max_worse_pct / 100.0)
    if criterion.max_worse_abs is not None:
        allowances.append(criterion.max_worse_abs)
    return max(allowances)


def judge_change(
    criterion: RegressionCriterion, *, baseline: float, current: float
) -> RegressionChange:
    """The change of one metric from ``baseline`` to ``current`` under ``criterion``."""
    return RegressionChange(
        baseline=baseline,
        current=current,
        allowed=allowed_change(criterion, baseline),
        worse=criterion.worse,
    )


@dataclass(frozen=True)
class EndpointChange:
    """One endpoint's figure in both runs."""

    endpoint: str
    change: RegressionChange


@dataclass(frozen=True)
class RegressedEndpoints:
    """The endpoints whose figure got worse the most (relative to their baseline), worst first:
    where a run-wide regression comes from."""

    metric: str
    """The metric without its prefix (``p95_ms``)."""
    endpoints: tuple[EndpointChange, ...]
    omitted: int = 0


def most_regressed(metric: str, changes: list[EndpointChange]) -> RegressedEndpoints:
    """The endpoints that got worse, most first (by percent, then by amount; an endpoint worse
    from a zero baseline counts as the most), at most ``TOP_REGRESSED_ENDPOINTS``."""

    def order(item: EndpointChange) -> tuple[float, float]:
        percent = item.change.percent
        relative = float("inf") if percent is None else abs(percent)
        return (-relative, -item.change.worse_by)

    worse = sorted((c for c in changes if c.change.worse_by > 0), key=order)
    return RegressedEndpoints(
        metric=metric,
        endpoints=tuple(worse[:TOP_REGRESSED_ENDPOINTS]),
        omitted=max(len(worse) - TOP_REGRESSED_ENDPOINTS, 0),
    )


@dataclass(frozen=True)
class RegressionVerdict:
    """One regression criterion judged on one results file against the baseline of its kind."""

    criterion: RegressionCriterion
    status: RegressionStatus
    source: str | None
    """The results file judged; None when there was none of its kind."""
    baseline_source: str | None
    """The baseline results file; None when no baseline of its kind was given."""
    change: RegressionChange | None = None
    """None when not evaluated, or when an invalid run has no measurement."""
    why: str | None = None
    """Why it was not evaluated (or why an invalid run has no measurement)."""
    evidence: RegressedEndpoints | None = None

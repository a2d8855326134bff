"""Before/after comparison of two runs: the "P99 -99.9 %, errors -60 %" report of a fix.

Pure: takes two results objects, returns the differences (overall, per endpoint, per error kind)
with the change in percent and whether it is better or worse. Rendering lives in
``loadkit.report.compare``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from loadkit.exceptions import InputError
from loadkit.measure.results import LatencySummary, LoadResults, LockAuditResults, SmokeResults

Better = Literal["lower", "higher"]
Direction = Literal["better", "worse", "same", "n/a"]

_LATENCIES: tuple[tuple[str, str], ...] = (
    ("p50_ms", "p50"),
    ("p95_ms", "p95"),
    ("p99_ms", "p99"),
    ("max_ms", "max"),
)
_LATENCY_LABELS = {"p50_ms": "P50", "p95_ms": "P95", "p99_ms": "P99", "max_ms": "max"}


@dataclass(frozen=True)
class Change:
    """One figure before and after."""

    label: str
    metric: str
    """What the figure is (``p95_ms``, ``error_rate``, ``rps``...): decides its unit."""
    before: float | None
    after: float | None
    better: Better

    @property
    def delta(self) -> float | None:
        """after - before (None when either is missing)."""
        if self.before is None or self.after is None:
            return None
        return self.after - self.before

    @property
    def percent(self) -> float | None:
        """The change relative to before, in percent (None when before is 0 or missing)."""
        delta = self.delta
        if delta is None or self.before is None:
            return None
        if self.before == 0:
            return 0.0 if delta == 0 else None
        return delta / abs(self.before) * 100.0

    @property
    def direction(self) -> Direction:
        """Whether the change is an improvement, given which way is better for this figure."""
        delta = self.delta
        if delta is None:
            return "n/a"
        if delta == 0:
            return "same"
        improved = delta < 0 if self.better == "lower" else delta > 0
        return "better" if improved else "worse"


@dataclass(frozen=True)
class Section:
    """A group of changes shown together (the run, one endpoint, the error kinds)."""

    title: str
    changes: tuple[Change, ...]


@dataclass(frozen=True)
class Comparison:
    """Two runs side by side."""

    before_source: str
    after_source: str
    sections: tuple[Section, ...]
    notes: tuple[str, ...] = ()


def compare_results(
    before: SmokeResults | LoadResults | LockAuditResults,
    after: SmokeResults | LoadResults | LockAuditResults,
    *,
    before_source: str = "before",
    after_source: str = "after",
) -> Comparison:
    """Compare two traffic runs (load, or smoke) of the same kind.

    Raises ``InputError`` for lock-audit results (nothing to compare in percent) or for two
    different kinds. An invalid run is compared anyway, with a note saying so.
    """
    for source, results in ((before_source, before), (after_source, after)):
        if isinstance(results, LockAuditResults):
            raise InputError(
                f"{source}: lock-audit results have no traffic to compare; "
                "compare load (or smoke) results"
            )
    assert not isinstance(before, LockAuditResults)
    assert not isinstance(after, LockAuditResults)
    if before.kind != after.kind:
        raise InputError(
            f"cannot compare {before.kind} results ({before_source}) with {after.kind} results "
            f"({after_source}); give two files of one kind"
        )
    notes: list[str] = []
    for source, results in ((before_source, before), (after_source, after)):
        if not results.valid:
            reasons = "; ".join(map(str, results.invalid_reasons))
            notes.append(f"{source} is an invalid run ({reasons}): read with care")
    if before.target != after.target:
        notes.append(f"the targets differ: {before.target} → {after.target}")
    sections = [
        Section(title="Run", changes=_run_changes(before, after)),
        *_endpoint_sections(before, after),
    ]
    kinds = _kind_changes(before, after)
    if kinds:
        sections.append(Section(title="Errors by kind", changes=kinds))
    return Comparison(
        before_source=before_source,
        after_source=after_source,
        sections=tuple(sections),
        notes=tuple(notes),
    )


def _latency_changes(
    prefix: str, before: LatencySummary | None, after: LatencySummary | None
) -> list[Change]:
    return [
        Change(
            label=f"{prefix}{_LATENCY_LABELS[name]}",
            metric=name,
            before=getattr(before, attr) if before is not None else None,
            after=getattr(after, attr) if after is not None else None,
            better="lower",
        )
        for name, attr in _LATENCIES
    ]


def _stall(results: SmokeResults | LoadResults) -> float:
    return results.longest_stall.duration_s if results.longest_stall is not None else 0.0


def _run_changes(
    before: SmokeResults | LoadResults, after: SmokeResults | LoadResults
) -> tuple[Change, ...]:
    b, a = before.totals, after.totals
    return (
        Change("requests", "requests", b.requests, a.requests, "higher"),
        Change("RPS", "rps", b.rps, a.rps, "higher"),
        Change("errors", "errors", b.errors, a.errors, "lower"),
        Change("error rate", "error_rate", b.error_rate, a.error_rate, "lower"),
        *_latency_changes("", before.latency_ms, after.latency_ms),
        Change("longest stall", "max_stall_s", _stall(before), _stall(after), "lower"),
    )


def _endpoint_sections(
    before: SmokeResults | LoadResults, after: SmokeResults | LoadResults
) -> list[Section]:
    old = {e.name: e for e in before.endpoints}
    new = {e.name: e for e in after.endpoints}
    # Busiest endpoints of the after run first, then any the after run no longer has.
    names = [e.name for e in after.endpoints] + [n for n in old if n not in new]
    sections = []
    for name in names:
        b, a = old.get(name), new.get(name)
        changes = [
            Change(
                "requests",
                "requests",
                b.requests if b else None,
                a.requests if a else None,
                "higher",
            ),
            Change(
                "error rate",
                "error_rate",
                b.error_rate if b else None,
                a.error_rate if a else None,
                "lower",
            ),
            *_latency_changes("", b.latency_ms if b else None, a.latency_ms if a else None),
        ]
        title = name
        if b is None:
            title += " (new)"
        elif a is None:
            title += " (gone)"
        sections.append(Section(title=title, changes=tuple(changes)))
    return sections


def _kind_changes(
    before: SmokeResults | LoadResults, after: SmokeResults | LoadResults
) -> tuple[Change, ...]:
    def by_kind(results: SmokeResults | LoadResults) -> dict[str, int]:
        counts: dict[str, int] = {}
        for group in results.errors:
            counts[group.kind] = counts.get(group.kind, 0) + group.count
        return counts

    old, new = by_kind(before), by_kind(after)
    kinds = sorted(set(old) | set(new), key=lambda k: (-max(old.get(k, 0), new.get(k, 0)), k))
    return tuple(
        Change(kind, "errors", old.get(kind, 0), new.get(kind, 0), "lower") for kind in kinds
    )

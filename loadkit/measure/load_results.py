"""From a load run's recorder to its results file (``LoadResults``), and marking runs invalid.

Pure: the Locust plugin builds results here at the end of a run (single process, or a master
that merged its workers' shares), and the launcher marks a run aborted when it interrupted it.
"""

from __future__ import annotations

from typing import Any

from loadkit.measure.recorder import LatencyRecorder
from loadkit.measure.results import GeneratorHealth, LoadResults

OVERLOAD_REASON = "generator overloaded"
ABORT_REASON = "aborted"


def build_load_results(
    recorder: LatencyRecorder,
    *,
    target: str,
    config: dict[str, Any],
    generator: GeneratorHealth,
    aborted: bool = False,
    invalid_reasons: list[str] | None = None,
) -> LoadResults:
    """The results of a finished run (``recorder.finish()`` already called).

    An overloaded generator or an aborted run adds its reason to ``invalid_reasons``, so that
    every reader sees why the numbers must not be gated on.
    """
    reasons = list(invalid_reasons or [])
    if generator.overloaded and not any(r.startswith(OVERLOAD_REASON) for r in reasons):
        reasons.append(overload_reason(generator))
    if aborted and not any(r.startswith(ABORT_REASON) for r in reasons):
        reasons.append(f"{ABORT_REASON}: the run was stopped before its planned end")
    return LoadResults(
        target=target,
        config=config,
        **recorder.traffic_fields(),
        generator=generator,
        aborted=aborted,
        invalid_reasons=reasons,
    )


def overload_reason(generator: GeneratorHealth) -> str:
    """Why an overloaded generator makes a run invalid, with what was measured."""
    peak = f", peak {generator.max_cpu_percent:.0f} %" if generator.max_cpu_percent else ""
    return (
        f"{OVERLOAD_REASON}: a load generator process ran above 90 % CPU "
        f"({generator.cpu_warnings} warning(s){peak}); its latencies include its own queueing. "
        "Use more --processes or a lighter scenario"
    )


def mark_aborted(results: LoadResults, why: str) -> LoadResults:
    """A copy of ``results`` marked aborted (idempotent: an existing abort reason is kept)."""
    if results.aborted and any(r.startswith(ABORT_REASON) for r in results.invalid_reasons):
        return results
    reasons = [*results.invalid_reasons]
    if not any(r.startswith(ABORT_REASON) for r in reasons):
        reasons.append(f"{ABORT_REASON}: {why}")
    return results.model_copy(update={"aborted": True, "invalid_reasons": reasons})

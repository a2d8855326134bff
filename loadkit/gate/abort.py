"""Abort on fail: which criterion stops a run while it runs.

Pure. ``loadkit load --config FILE`` hands the criteria marked ``abort_on_fail`` and, every
second, a snapshot of the live recorder (``loadkit.measure.load_results.live_results``); the
first criterion that fails on it, once its ``delay_s`` has passed, stops the run. The figures are
read exactly as the gate reads them (``measure``), so the value that stopped the run is the one
the gate then fails the criterion with (``Stopped.measured``). A criterion with nothing to
measure yet (no request completed, an endpoint not seen yet) cannot fail: it waits.
"""

from __future__ import annotations

from collections.abc import Sequence

from loadkit.config import Criterion
from loadkit.exceptions import InputError
from loadkit.gate.evaluate import _OPERATORS, measure
from loadkit.measure.results import LoadResults, Stopped


def abort_criteria(criteria: Sequence[Criterion]) -> tuple[Criterion, ...]:
    """The criteria that stop a run when they fail (``abort_on_fail = true``)."""
    return tuple(c for c in criteria if c.abort_on_fail)


def named_endpoints(criteria: Sequence[Criterion]) -> frozenset[str]:
    """The endpoints ``criteria`` are about: the only ones a live snapshot needs to hold
    (``live_results(endpoints=...)``), each costing an encoding and a percentile scan."""
    return frozenset(c.endpoint for c in criteria if c.endpoint is not None)


def first_failure(
    criteria: Sequence[Criterion], live: LoadResults, *, elapsed_s: float
) -> Stopped | None:
    """The stop record of the first criterion (in the file's order) that fails on ``live`` at
    ``elapsed_s`` seconds into the run, past its delay; None while every one holds."""
    for criterion in criteria:
        if elapsed_s < criterion.abort_delay_s:
            continue
        try:
            value = measure(criterion, live, source="the live run")
        except InputError:
            continue
        if not _OPERATORS[criterion.op](value, criterion.threshold):
            return Stopped(
                by="criterion",
                at_s=round(max(elapsed_s, 0.0), 3),
                criterion=criterion.label,
                measured=value,
            )
    return None

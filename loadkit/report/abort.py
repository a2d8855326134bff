"""The words of a run stopped by an abort-on-fail criterion."""

from __future__ import annotations

from collections.abc import Sequence

from loadkit.config import Criterion
from loadkit.measure.results import Stopped
from loadkit.report.units import format_seconds, format_value

_NEGATED = {"<": "≥", "<=": ">", ">": "≤", ">=": "<", "==": "≠", "!=": "="}
"""What a failed comparison says about the value: it failed ``< 10 %`` by being ``≥ 10 %``."""


def stopped_early(stopped: Stopped, criteria: Sequence[Criterion]) -> str:
    """``stopped early at 12.0 s: load.error_rate 31.00 % ≥ 10.00 % (abort on fail)``."""
    at = format_seconds(stopped.at_s, decimals=1)
    criterion = next((c for c in criteria if c.label == stopped.criterion), None)
    if criterion is None or stopped.measured is None:
        return f"stopped early at {at} by the criterion {stopped.criterion!r} (abort on fail)"
    metric = criterion.metric_name
    where = f"[{criterion.endpoint}]" if criterion.endpoint else ""
    value = format_value(metric, stopped.measured, against=criterion.threshold)
    limit = format_value(metric, criterion.threshold, exact=True)
    return (
        f"stopped early at {at}: {criterion.metric}{where} {value} "
        f"{_NEGATED[criterion.op]} {limit} (abort on fail: {criterion.label})"
    )

"""Whether a baseline run can be compared with the current one.

Pure. Two load runs compare when they ran the same scenario, on the same model and engine, with
the same load (users or rate, duration, stages): otherwise a "regression" would be the change of
the test, not of the service. The target's host and port are never part of it (the bundled
service gets a new port on every ``loadkit accept``). Smoke runs compare by kind alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from loadkit.exceptions import ConfigError
from loadkit.measure.results import LoadResults, LockAuditResults, SmokeResults

AnyResults = SmokeResults | LoadResults | LockAuditResults

IDENTITY_KEYS: tuple[str, ...] = (
    "scenario",
    "model",
    "engine",
    "concurrency",
    "rate",
    "duration_s",
    "stages",
    "spawn_rate",
    "url_path",
    "method",
    "http2",
)
"""The keys of a load run's ``config`` that make two runs comparable (docs/results.md): what ran
(scenario, or a URL run's path and method; engine; protocol) and how hard (users or rate, their
ramp, the duration or stages)."""

_DEFAULTS: dict[str, Any] = {"engine": "locust", "http2": False}
"""What an absent key means: files written before there were two engines all ran on Locust,
and before HTTP/2 over HTTP/1.1."""


@dataclass(frozen=True)
class Difference:
    """One key on which the baseline's run differs from the current one."""

    key: str
    baseline: Any
    current: Any


def baseline_differences(baseline: AnyResults, current: AnyResults) -> tuple[Difference, ...]:
    """What makes ``baseline`` not comparable with ``current`` (empty when comparable)."""
    if baseline.kind != current.kind:
        return (Difference("kind", baseline.kind, current.kind),)
    if not isinstance(baseline, LoadResults) or not isinstance(current, LoadResults):
        return ()
    found = []
    for key in IDENTITY_KEYS:
        before = baseline.config.get(key, _DEFAULTS.get(key))
        after = current.config.get(key, _DEFAULTS.get(key))
        if _normal(before) != _normal(after):
            found.append(Difference(key, before, after))
    return tuple(found)


def _normal(value: Any) -> Any:
    # 60 and 60.0 are one duration; JSON gives either.
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, list | tuple):
        return [_normal(item) for item in value]
    if isinstance(value, dict):
        return {key: _normal(item) for key, item in value.items()}
    return value


def check_comparable(
    baseline: AnyResults,
    current: AnyResults,
    *,
    baseline_source: str,
    current_source: str,
    force: bool = False,
) -> tuple[Difference, ...]:
    """Raise ``ConfigError`` naming each differing key with both values, unless ``force`` (then
    the differences are returned, for the report to show)."""
    differences = baseline_differences(baseline, current)
    if differences and not force:
        listed = "; ".join(
            f"{d.key}: baseline {d.baseline!r}, current {d.current!r}" for d in differences
        )
        raise ConfigError(
            f"baseline {baseline_source} is not comparable with {current_source} ({listed}); "
            "run the same profile for both, or pass --force-baseline to compare anyway"
        )
    return differences

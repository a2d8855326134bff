"""Each second of a run as the report's charts and CSV show it: counts, percentiles, errors by kind.

P50, P99 and the maximum of a second are read from that second's encoded histogram (the
timeline stores its P95 alone); a second without one (a file written before windows, or past the
writer's size bound) has its P95 and counts only. Errors by kind come from the optional
``errors_by_kind``; a file without it has them under ``UNKNOWN_KIND``. In an open-model run, the
service times' P50, P95, P99 and maximum come from the second's optional ``service_histogram``
(None without it: a closed run, or a file written before it).

Pure: results in, figures out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from loadkit.measure.histogram import LatencyHistogram, us_to_ms
from loadkit.measure.results import EncodedHistogram, TimelinePoint

UNKNOWN_KIND = "(kind not recorded)"
"""The kind shown for a second's errors in a results file written before ``errors_by_kind``."""
_PERCENTILES = (50.0, 95.0, 99.0)


@dataclass(frozen=True)
class SecondFigures:
    """One second of the run (``t_s`` from its start), latencies in ms (None: not known)."""

    t_s: int
    completions: int
    errors: int
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    errors_by_kind: dict[str, int] = field(default_factory=dict)
    service_p50_ms: float | None = None
    service_p95_ms: float | None = None
    service_p99_ms: float | None = None
    service_max_ms: float | None = None


def _figures(encoded: EncodedHistogram) -> tuple[float | None, ...]:
    """P50, P95, P99 and max (ms) of an encoded histogram."""
    histogram = LatencyHistogram.decode(encoded)
    values = histogram.percentiles_us(_PERCENTILES)
    return (*(us_to_ms(values.get(p)) for p in _PERCENTILES), us_to_ms(histogram.max_us))


def second_figures(timeline: Sequence[TimelinePoint]) -> list[SecondFigures]:
    """The figures of every second of ``timeline``, in order."""
    figures = []
    for point in timeline:
        p50 = p99 = top = None
        p95 = point.p95_ms
        if point.histogram is not None and point.histogram.count:
            p50, p95, p99, top = _figures(point.histogram)
        service: tuple[float | None, ...] = (None, None, None, None)
        if point.service_histogram is not None and point.service_histogram.count:
            service = _figures(point.service_histogram)
        if point.errors_by_kind is not None:
            kinds = dict(point.errors_by_kind)
        else:
            kinds = {UNKNOWN_KIND: point.errors} if point.errors else {}
        figures.append(
            SecondFigures(
                t_s=point.t_s,
                completions=point.completions,
                errors=point.errors,
                p50_ms=p50,
                p95_ms=p95,
                p99_ms=p99,
                max_ms=top,
                errors_by_kind=kinds,
                service_p50_ms=service[0],
                service_p95_ms=service[1],
                service_p99_ms=service[2],
                service_max_ms=service[3],
            )
        )
    return figures


def has_service_times(figures: Sequence[SecondFigures]) -> bool:
    """Whether any second has its service times (an open-model run's file that keeps them)."""
    return any(second.service_p95_ms is not None for second in figures)


def error_kinds(figures: Sequence[SecondFigures]) -> list[str]:
    """Every error kind of the timeline, the most frequent first (then by name)."""
    totals: dict[str, int] = {}
    for second in figures:
        for kind, count in second.errors_by_kind.items():
            totals[kind] = totals.get(kind, 0) + count
    return sorted(totals, key=lambda kind: (-totals[kind], kind))

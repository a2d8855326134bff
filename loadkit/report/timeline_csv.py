"""The per-second timeline as CSV (``loadkit report --csv``), one row per second.

Columns: ``t_s, completions, errors, p50_ms, p95_ms, p99_ms, max_ms``; in an open-model run whose
file keeps each second's service times, ``service_p50_ms, service_p95_ms, service_p99_ms,
service_max_ms`` next; then one ``errors:<kind>`` column per error kind of the run (most frequent
first). An unknown latency is
an empty cell. Latencies are written as the results file holds them (ms to the µs), not rounded
for display: the CSV is for tools, not eyes.

Pure: figures in, bytes out.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence

from loadkit.report.timeline_figures import SecondFigures, error_kinds, has_service_times

BASE_COLUMNS = ("t_s", "completions", "errors", "p50_ms", "p95_ms", "p99_ms", "max_ms")
SERVICE_COLUMNS = ("service_p50_ms", "service_p95_ms", "service_p99_ms", "service_max_ms")
KIND_PREFIX = "errors:"


def _cell(value: float | None) -> str:
    return "" if value is None else repr(value)


def render_timeline_csv(figures: Sequence[SecondFigures]) -> bytes:
    """The CSV text of ``figures`` (UTF-8, ``\\n`` line ends)."""
    kinds = error_kinds(figures)
    service = SERVICE_COLUMNS if has_service_times(figures) else ()
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*BASE_COLUMNS, *service, *(KIND_PREFIX + kind for kind in kinds)])
    for second in figures:
        writer.writerow(
            [
                second.t_s,
                second.completions,
                second.errors,
                _cell(second.p50_ms),
                _cell(second.p95_ms),
                _cell(second.p99_ms),
                _cell(second.max_ms),
                *(_cell(getattr(second, column)) for column in service),
                *(second.errors_by_kind.get(kind, 0) for kind in kinds),
            ]
        )
    return out.getvalue().encode()

"""Rendering of smoke results: one table row per check, then "10/10 passed".

Nothing here judges; the verdicts come from ``loadkit.engines.smoke``. Failures carry their error
kind,
trace id (look it up in the service's log) and what went wrong, under the table.
"""

from __future__ import annotations

from tabulate import tabulate

from loadkit.measure.results import SmokeCheckResult, SmokeResults
from loadkit.report.units import format_ms

HEADERS = (
    "check",
    "request",
    "status",
    "expected",
    "latency ms",
    "verdict",
    "error kind",
    "trace id",
)


def check_row(check: SmokeCheckResult) -> tuple[str, ...]:
    """One check's cells under ``HEADERS`` (the terminal's table and the HTML report's)."""
    failed = not check.passed
    return (
        check.name,
        f"{check.method} {check.path}",
        str(check.status) if check.status is not None else "—",
        str(check.expected_status),
        format_ms(check.latency_ms),
        "pass" if check.passed else "FAIL",
        (check.error_kind or "") if failed else "",
        (check.trace_id or "") if failed else "",
    )


def summary_line(results: SmokeResults) -> str:
    """ "10/10 passed", or "8/10 passed" and the names of the failed checks."""
    total = len(results.checks)
    passed = results.checks_passed
    line = f"{passed}/{total} passed"
    if passed < total:
        failed = ", ".join(c.name for c in results.checks if not c.passed)
        line += f" (failed: {failed})"
    return line


def render_smoke_table(results: SmokeResults) -> str:
    """The terminal report: the table, a line per failure saying why, the summary line, and
    why the run is invalid when it is."""
    table = tabulate(
        [check_row(c) for c in results.checks],
        headers=HEADERS,
        tablefmt="simple",
        colalign=("left", "left", "right", "right", "right", "left", "left", "left"),
        disable_numparse=True,
    )
    lines = [f"smoke: {results.target} ({results.duration_s * 1000:.0f} ms)", "", table, ""]
    for check in results.checks:
        if not check.passed and check.message:
            lines.append(f"  {check.name}: {check.message}")
    if any(not c.passed and c.message for c in results.checks):
        lines.append("")
    lines.append(summary_line(results))
    if not results.valid:
        lines.append("INVALID — do not gate on these results:")
        lines += [f"  - {reason}" for reason in results.invalid_reasons]  # "code: detail"
    return "\n".join(lines)

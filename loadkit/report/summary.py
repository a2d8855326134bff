"""``loadkit report`` without ``--html``: the terminal's summary of each results file and the
verdict, worded by the renderers the other commands use (load, smoke, gate).

Pure: results and the gate's report in, text out.
"""

from __future__ import annotations

from collections.abc import Sequence

from loadkit.gate.evaluate import AnyResults, GateReport
from loadkit.measure.results import LoadResults, LockAuditResults, SmokeResults
from loadkit.report.gate import render_gate_table
from loadkit.report.load import render_load_table
from loadkit.report.smoke import render_smoke_table


def _lock_audit_text(source: str, results: LockAuditResults) -> str:
    lines = [
        f"lock audit: {results.target}: {results.files_checked} files checked, "
        f"{results.violations} violations, {results.suppressed} suppressed",
        *(f"  {f.path}:{f.line}:{f.col}: {f.code} {f.message}" for f in results.findings),
        f"results: {source}",
    ]
    return "\n".join(lines)


def render_summary(results: Sequence[tuple[str, AnyResults]], gate: GateReport | None) -> str:
    """Each results file as its command prints it at the end of a run, then the verdict (when
    there are criteria), as ``loadkit gate`` prints it."""
    parts = []
    for source, run in results:
        if isinstance(run, LoadResults):
            parts.append(render_load_table(run, path=source))
        elif isinstance(run, SmokeResults):
            parts.append(f"{render_smoke_table(run)}\nresults: {source}")
        else:
            parts.append(_lock_audit_text(source, run))
    if gate is not None:
        parts.append(render_gate_table(gate).rstrip("\n"))
    return "\n\n".join(parts) + "\n"

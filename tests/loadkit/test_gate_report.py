"""The gate's renderings pinned as golden files: the terminal table, Markdown, JUnit XML and the
JSON verdict of a passed, a failed and an invalid gate, each judged on results files in
``fixtures/gate/<case>/``. A change of the text shows here as a diff to review; after a change
that is meant, rewrite them with ``LOADKIT_UPDATE_GOLDEN=1 pytest`` on this file.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from loadkit.config import load_config
from loadkit.gate.evaluate import GateReport, evaluate_criteria
from loadkit.measure.results import read_results
from loadkit.report.gate import (
    render_gate_json,
    render_gate_junit,
    render_gate_markdown,
    render_gate_table,
)

FIXTURES = Path(__file__).parent / "fixtures" / "gate"
CASES = {
    "passed": ("smoke.json", "load.json", "lock_audit.json"),
    "failed": ("smoke.json", "load.json", "frozen.json", "lock_audit.json"),
    "invalid": ("load.json", "aborted.json", "lock_audit.json"),
}
UPDATE = os.environ.get("LOADKIT_UPDATE_GOLDEN") == "1"


def gate_report(case: str) -> GateReport:
    """The gate on a case's results files, each shown under its file name."""
    criteria = load_config(FIXTURES / "acceptance.toml").criteria
    folder = FIXTURES / case
    return evaluate_criteria(
        criteria, [(name, read_results(folder / name)) for name in CASES[case]]
    )


def renderings(report: GateReport) -> dict[str, str]:
    """Every rendering of one report, by the golden file's extension."""
    return {
        "txt": render_gate_table(report),
        "md": render_gate_markdown(report),
        "xml": render_gate_junit(report),
        "json": render_gate_json(report).decode(),
    }


def test_the_cases_have_the_outcomes_they_are_named_for() -> None:
    for case in CASES:
        assert gate_report(case).outcome == case


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("extension", ["txt", "md", "xml", "json"])
def test_rendering_matches_the_golden_file(case: str, extension: str) -> None:
    text = renderings(gate_report(case))[extension]
    golden = FIXTURES / "golden" / f"{case}.{extension}"
    if UPDATE:
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(text, encoding="utf-8")
    assert text == golden.read_text(encoding="utf-8")

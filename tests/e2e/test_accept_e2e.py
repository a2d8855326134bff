"""`loadkit accept` end to end, as a user runs it: the real CLI in a process of its own, the
repository's acceptance.toml, the bundled service, the lock audit, smoke, Locust, the gate.

It passes on the healthy service and fails (exit 1, the right criterion named) on the same
service with one fault switched on: the gate is proven able to fail. Runs are short (a few
seconds of load) and bcrypt is at its cheapest cost, so that what is tested is the gate, not the
speed of this machine; no assertion is about speed.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from junitparser import JUnitXml

from loadkit.run.bundled_service import BundledService
from tests.e2e.accept_run import run_accept

ARTIFACTS = ("lock_audit.json", "smoke.json", "load.json", "gate.md", "junit.xml", "verdict.json")

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


def test_accept_passes_on_the_healthy_service(tmp_path: Path) -> None:
    run = run_accept(tmp_path, duration_s=2)
    assert run.code == 0, run.output
    assert run.verdict["outcome"] == "passed"
    assert "PASSED: 9 of 9 criteria met" in run.output
    for stage in ("lock audit", "bundled service", "smoke", "load", "gate"):
        assert stage in run.output
    for name in ARTIFACTS:
        assert (run.folder / name).is_file(), name
    assert (run.folder / "service" / "service.log").is_file()
    cases = [case for suite in JUnitXml.fromfile(str(run.folder / "junit.xml")) for case in suite]
    assert len(cases) == 9
    assert all(case.is_passed for case in cases)
    assert (run.folder / "gate.md").read_text().startswith("## Acceptance gate: ✅ PASSED")


def test_accept_against_a_running_host_starts_no_service(
    tmp_path: Path, service: BundledService
) -> None:
    run = run_accept(tmp_path, duration_s=2, host=service.url)
    assert run.code == 0, run.output
    assert "[1/4] lock audit" in run.output
    assert "bundled service" not in run.output
    assert f"smoke against {service.url}" in run.output
    assert not (run.folder / "service").exists()

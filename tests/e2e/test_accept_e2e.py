"""`loadkit accept` end to end, as a user runs it: the real CLI in a process of its own, the
repository's acceptance.toml, the bundled service, the lock audit, smoke, Locust, the gate.

It passes on the healthy service and fails (exit 1, the right criterion named) on the same
service with one fault switched on: the gate is proven able to fail. Runs are short (a few
seconds of load) and bcrypt is at its cheapest cost, so that what is tested is the gate, not the
speed of this machine; no assertion is about speed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from junitparser import JUnitXml

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "acceptance.toml"
ARTIFACTS = ("lock_audit.json", "smoke.json", "load.json", "gate.md", "junit.xml", "verdict.json")
FAST_HASHING = "ENGINES_BCRYPT_ROUNDS=4"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


@dataclass
class Accepted:
    """One `loadkit accept` run: exit code, output, and the verdict it wrote."""

    code: int
    output: str
    folder: Path
    verdict: dict[str, Any]

    def status(self, metric: str) -> str:
        (criterion,) = [c for c in self.verdict["criteria"] if c["metric"] == metric]
        return str(criterion["status"])

    def failed(self) -> set[str]:
        return {c["metric"] for c in self.verdict["criteria"] if c["status"] == "failed"}


def run_accept(
    tmp_path: Path, *, duration_s: float, env: tuple[str, ...] = (), host: str | None = None
) -> Accepted:
    out_dir = tmp_path / "reports"
    args = [
        sys.executable,
        "-m",
        "loadkit",
        "accept",
        "--config",
        str(CONFIG),
        "--profile",
        "default",
        "--duration",
        f"{duration_s:g}",
        # Relative, as a user's default `reports/` is: the service's database lives under it.
        "--out-dir",
        "reports",
        "--service-env",
        FAST_HASHING,
    ]
    for setting in env:
        args += ["--service-env", setting]
    if host is not None:
        args += ["--host", host]
    environ = {k: v for k, v in os.environ.items() if not k.startswith("ENGINES_")}
    environ.pop("GITHUB_STEP_SUMMARY", None)
    done = subprocess.run(
        args, cwd=tmp_path, env=environ, capture_output=True, text=True, timeout=150, check=False
    )
    output = done.stdout + done.stderr
    folders = list(out_dir.iterdir()) if out_dir.exists() else []
    assert len(folders) == 1, output
    verdict_path = folders[0] / "verdict.json"
    assert verdict_path.is_file(), output
    return Accepted(
        code=done.returncode,
        output=output,
        folder=folders[0],
        verdict=json.loads(verdict_path.read_text()),
    )


def test_accept_passes_on_the_healthy_service(tmp_path: Path) -> None:
    run = run_accept(tmp_path, duration_s=4)
    assert run.code == 0, run.output
    assert run.verdict["outcome"] == "passed"
    assert "PASSED: 7 of 7 criteria met" in run.output
    for stage in ("lock audit", "bundled service", "smoke", "load", "gate"):
        assert stage in run.output
    for name in ARTIFACTS:
        assert (run.folder / name).is_file(), name
    assert (run.folder / "service" / "service.log").is_file()
    cases = [case for suite in JUnitXml.fromfile(str(run.folder / "junit.xml")) for case in suite]
    assert len(cases) == 7
    assert all(case.is_passed for case in cases)
    assert (run.folder / "gate.md").read_text().startswith("## Acceptance gate: ✅ PASSED")


def test_accept_against_a_running_host_starts_no_service(tmp_path: Path, service: Any) -> None:
    run = run_accept(tmp_path, duration_s=3, host=service.url)
    assert run.code == 0, run.output
    assert "[1/4] lock audit" in run.output
    assert "bundled service" not in run.output
    assert f"smoke against {service.url}" in run.output
    assert not (run.folder / "service").exists()

"""`loadkit accept --baseline` end to end on the bundled service (issue #17): a run saves its load
results as the baseline after a pass; the service with a latency fault on then fails against it,
naming the regression, and is not saved. Short runs (1 s of load, two
users) and a tolerance wide enough for a shared machine's noise, far below the fault's 300 ms."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.accept_run import FAST_HASHING

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

ACCEPTANCE = """
[[criteria]]
metric = "lock_audit.lock_violations"
op = "=="
threshold = 0

[[criteria]]
name = "P95 no more than 100 ms or 100 % worse than the baseline"
metric = "load.p95_ms"
op = "regression"
max_worse_pct = 100
max_worse_abs = 100

[lock_audit]
paths = ["src"]

[profiles.quick]
concurrency = 2
duration_s = 1
"""


def accept(project: Path, name: str, *args: str) -> tuple[int, str, dict[str, Any]]:
    """`loadkit accept --profile quick` in ``project``; its reports under ``reports-<name>``."""
    out_dir = project / f"reports-{name}"
    command = [
        sys.executable,
        "-m",
        "loadkit",
        "accept",
        "--config",
        str(project / "acceptance.toml"),
        "--profile",
        "quick",
        "--out-dir",
        str(out_dir),
        "--service-env",
        FAST_HASHING,
        *args,
    ]
    environ = {k: v for k, v in os.environ.items() if not k.startswith("ENGINES_")}
    environ.pop("GITHUB_STEP_SUMMARY", None)
    done = subprocess.run(
        command, cwd=project, env=environ, capture_output=True, text=True, timeout=150, check=False
    )
    output = done.stdout + done.stderr
    (folder,) = out_dir.iterdir()
    return done.returncode, output, json.loads((folder / "verdict.json").read_text())


def test_accept_judges_against_a_saved_baseline(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "app.py").write_text("def handler() -> int:\n    return 1\n")
    (tmp_path / "acceptance.toml").write_text(ACCEPTANCE)
    baseline = tmp_path / "baseline.json"

    # No baseline yet: the regression criterion is not evaluated; the pass saves one.
    code, output, _ = accept(tmp_path, "first", "--save-baseline", str(baseline))
    assert code == 0, output
    assert f"baseline saved: {baseline}" in output
    assert baseline.is_file()

    # (A pass within the tolerance is the gate's: test_regression.py, test_within_tolerance_passes.)

    # 300 ms slower on every API request: fails against the faster baseline, naming it, and a
    # failing run is never saved as the next baseline.
    saved_before = baseline.read_bytes()
    code, output, verdict = accept(
        tmp_path,
        "slow",
        "--baseline",
        str(baseline),
        "--save-baseline",
        str(baseline),
        "--service-env",
        "ENGINES_FAULT_LATENCY_MS=300",
    )
    assert code == 1, output
    assert "FAILED: 1 of 2 criteria not met: P95 no more than 100 ms" in output
    assert "against the baseline's" in output
    assert "endpoints that regressed most" in output
    assert "baseline not saved" in output
    assert baseline.read_bytes() == saved_before
    (entry,) = verdict["regressions"]
    assert entry["status"] == "failed"
    assert entry["current"] - entry["baseline"] > 100

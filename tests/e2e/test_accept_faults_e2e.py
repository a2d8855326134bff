"""`loadkit accept` fails, exit 1 with the right criterion named, on the healthy service with one
fault switched on (service/faults.py, ENGINES_FAULT_*): the gate is proven able to fail."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.accept_run import run_accept

LOGIN_ONLY = "ENGINES_FAULT_PATHS=/api/auth/login"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


def test_accept_fails_when_errors_exceed_ten_percent(tmp_path: Path) -> None:
    run = run_accept(tmp_path, duration_s=4, env=("ENGINES_FAULT_ERROR_SHARE=0.3", LOGIN_ONLY))
    assert run.code == 1, run.output
    assert run.status("load.error_rate") == "failed"
    assert "error rate < 10 %" in run.output
    assert "Top error kinds by endpoint" in run.output
    assert "internal_error" in run.output  # the injected kind, named as the evidence
    assert run.status("load.p95_ms") == "passed"
    assert run.status("lock_audit.lock_violations") == "passed"


def test_accept_fails_on_a_six_second_stall(tmp_path: Path) -> None:
    # The stall starts 5 s after the service starts: after smoke, inside the 11 s of load,
    # which begin 1-2 s after the service and end after the stall (5 s to 11 s).
    run = run_accept(
        tmp_path,
        duration_s=11,
        env=("ENGINES_FAULT_STALL_AT_S=5", "ENGINES_FAULT_STALL_S=6"),
    )
    assert run.code == 1, run.output
    assert "load.max_stall_s" in run.failed()
    assert "no API freeze" in run.output
    assert "The longest stall" in run.output
    stall = json.loads((run.folder / "load.json").read_text())["longest_stall"]
    assert stall["duration_s"] >= 5

"""The plugin's role classes without a Locust run: a worker's shares through a master, a reset,
and a share from another loadkit (run in a child process: the classes import Locust)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson

PROBE = Path(__file__).with_name("plugin_roles_probe.py")


def test_master_merges_a_worker_and_refuses_a_share_from_another_loadkit(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(PROBE), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    findings = orjson.loads(done.stdout)
    assert findings["reset_is_a_new_recording"]
    assert findings["master_live"] == [3, 0, 812.0, 3.0]  # requests, errors, P95, service P95
    assert findings["final_message"] == "loadkit_final"
    # worker-a: 3 successes after the reset, 1 failure; the request before the reset is gone.
    assert (findings["requests"], findings["errors"]) == (4, 1)
    # Every worker has answered (worker-b's answer was refused): written without waiting for
    # Locust to quit, and invalid, naming the refused worker and why.
    assert findings["written_before_quit"]
    [reason] = findings["invalid_reasons"]
    assert reason.startswith("worker_share_missing: a share from worker worker-b was refused (")
    assert "version 999" in reason and reason.endswith("; its requests are missing")
    # A refused periodic report is not made good by a final share that merges.
    assert findings["late_reasons"] == ["worker_share_missing", "generator_overloaded"]
    assert findings["late_cpu_warnings"] == 1  # the worker's count, not summed per report
    assert findings["processes"] == 2
    assert "version 999" in done.stderr and "same loadkit" in done.stderr
    assert findings["local_requests"] == 1

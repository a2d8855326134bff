"""`loadkit accept` end to end, as a user runs it: the real CLI in a process of its own, the
repository's acceptance.toml, the bundled service, the lock audit, smoke, Locust, the gate.

It passes on the healthy service (test_installed_wheel.py, as an installed user runs it; here
against a service already running) and fails (exit 1, the right criterion named) on the same
service with one fault switched on: the gate is proven able to fail. Runs are short (a few
seconds of load) and bcrypt is at its cheapest cost, so that what is tested is the gate, not the
speed of this machine; no assertion is about speed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from loadkit.run.bundled_service import BundledService
from tests.e2e.accept_run import run_accept

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


def test_accept_against_a_running_host_starts_no_service(
    tmp_path: Path, service: BundledService
) -> None:
    run = run_accept(tmp_path, duration_s=2, host=service.url)
    assert run.code == 0, run.output
    assert "[1/4] lock audit" in run.output
    assert "bundled service" not in run.output
    assert f"smoke against {service.url}" in run.output
    assert not (run.folder / "service").exists()

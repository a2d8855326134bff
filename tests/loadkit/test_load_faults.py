"""loadkit load against the fault-injected service: it must see what the faults do.

Guarded on the fault settings (issue 3): skipped where the service has no such switches.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from loadkit.config import LoadProfile
from loadkit.run.bundled_service import BundledService
from loadkit.run.load import run_load
from service.settings import Settings

ServiceFactory = Callable[..., BundledService]

pytestmark = pytest.mark.slow

FAULTS = set(Settings.model_fields)


@pytest.mark.skipif(
    not {"fault_lock_hold_ms", "fault_paths"} <= FAULTS, reason="no lock-hold fault setting"
)
def test_held_storage_lock_shows_storage_lock_timeouts_on_login(
    start_service: ServiceFactory, tmp_path: Path
) -> None:
    service = start_service(
        env={
            "ENGINES_FAULT_LOCK_HOLD_MS": "300",
            "ENGINES_STORAGE_LOCK_TIMEOUT_S": "0.1",
            "ENGINES_FAULT_PATHS": "/api/auth/login",
        }
    )
    results = run_load(
        target=service.url,
        profile=LoadProfile(scenario="login", concurrency=4, duration_s=2.5),
        out=tmp_path / "load.json",
        quiet=True,
    )
    groups = {(g.endpoint, g.kind): g for g in results.errors}
    lock = groups.get(("POST /api/auth/login", "storage_lock_timeout"))
    assert lock is not None, results.errors
    assert lock.count > 0 and lock.status_codes.get("503") == lock.count
    assert lock.example_trace_id
    login = next(e for e in results.endpoints if e.name == "POST /api/auth/login")
    assert login.errors >= lock.count


@pytest.mark.skipif(
    not {"fault_stall_at_s", "fault_stall_s", "fault_paths"} <= FAULTS,
    reason="no stall fault setting",
)
def test_stall_fault_shows_a_stall_of_about_its_length(
    start_service: ServiceFactory, tmp_path: Path
) -> None:
    # The stall starts 5 s after the service did: Locust takes 1-4 s to start sending, so it
    # falls inside the 6.5 s run (which goes on a second or more after the stall ends), and
    # the registrations before it are left alone.
    service = start_service(
        env={
            "ENGINES_FAULT_STALL_AT_S": "5",
            "ENGINES_FAULT_STALL_S": "1.5",
            "ENGINES_FAULT_PATHS": "/api/auth/login",
        }
    )
    results = run_load(
        target=service.url,
        profile=LoadProfile(scenario="login", concurrency=4, duration_s=6.5),
        out=tmp_path / "load.json",
        quiet=True,
    )
    stall = results.longest_stall
    assert stall is not None
    assert 1.2 <= stall.duration_s <= 1.8, stall
    assert results.totals.errors == 0

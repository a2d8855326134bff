"""`loadkit accept` on the bundled service with the storage lock held 1.5 s per use
(``ENGINES_FAULT_LOCK_HOLD_MS``): it fails naming P95, and the evidence, read from the spans the
service recorded in the report folder, is where the time went: waiting for the storage lock."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.accept_run import run_accept

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


def test_a_held_storage_lock_fails_p95_with_the_lock_wait_as_evidence(tmp_path: Path) -> None:
    run = run_accept(tmp_path, duration_s=6, env=("ENGINES_FAULT_LOCK_HOLD_MS=1500",))
    assert run.code == 1, run.output
    assert run.status("load.p95_ms") == "failed"
    assert (run.folder / "spans.jsonl").is_file()
    (p95,) = [c for c in run.verdict["criteria"] if c["metric"] == "load.p95_ms"]
    where = p95["evidence"][0]
    assert where["title"].startswith("Where the time went: P95 all endpoints"), where
    assert "waiting for the storage lock" in where["title"], where
    # The lock wait is the largest share, and the lock (waiting and holding) nearly all of it.
    assert where["rows"][0][0] == "lock wait", where
    lock = {row[0]: float(row[1].removesuffix(" %")) for row in where["rows"]}
    assert lock["lock wait"] + lock.get("lock hold", 0.0) > 90, where
    assert "waiting for the storage lock" in run.output

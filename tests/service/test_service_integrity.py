"""Data integrity under each fault, on SQLite and PostgreSQL (issue 13): concurrent clients
create items and record every answer; the database is then reconciled against the answers (see
``integrity``). A bounded matrix for CI; bench/bench_integrity.py runs a larger one."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.service.integrity import FAULTS, Attempt, Retry, reconcile, run_fault

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("fault", list(FAULTS))
async def test_every_answer_agrees_with_the_database(
    fault: str, database_url: str, tmp_path: Path
) -> None:
    backend = "sqlite" if database_url.startswith("sqlite") else "postgres"
    outcome = await run_fault(
        FAULTS[fault],
        workdir=tmp_path,
        database_url=database_url,
        backend=backend,
        duration_s=1.5,  # CI's budget; bench/bench_integrity.py runs longer and more users
    )
    summary = outcome.summary()
    assert outcome.violations == [], (summary, outcome.violations[:20])
    assert summary["creates"] and outcome.rows_after, summary  # the run really wrote
    if fault in ("error_share", "slow_query"):
        # The fault really failed some creates (else the run proves nothing about errors).
        assert any(not a.succeeded for a in outcome.attempts), summary


def test_reconcile_names_each_broken_promise() -> None:
    ok = Attempt("a", None, 201, 1)
    told_503_but_saved = Attempt("b", None, 503, None, "storage_lock_timeout")
    keyed_lost = Attempt("c", "k", None, None, "ReadTimeout")
    rows = [(1, "a"), (2, "b"), (3, "c")]
    duplicate_retry = Retry(keyed_lost, 201, 4, replayed=False, tries=1)
    problems = reconcile(
        [ok, told_503_but_saved, keyed_lost],
        [duplicate_retry],
        rows,
        [*rows, (4, "c"), (5, "z")],
        shutdown=False,
    )
    text = "\n".join(problems)
    assert "'b' answered 503 storage_lock_timeout but was saved" in text
    assert "'c' stored 2 times" in text
    assert "'c': saved as 3 but the retry gave 4" in text
    assert "row 5 'z' was never sent" in text
    assert reconcile([ok], [], [(1, "a")], [(1, "a")], shutdown=False) == []
    # The same 503 is in doubt when the service was being shut down.
    assert reconcile([told_503_but_saved], [], [(2, "b")], [(2, "b")], shutdown=True) == []

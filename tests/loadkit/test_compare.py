"""Before/after comparison on two known runs: the "P99 -99.9 %, errors -60 %" report of a fix."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from loadkit.cli import app
from loadkit.exceptions import InputError
from loadkit.gate.compare import Change, Comparison, compare_results
from loadkit.measure.load_results import mark_aborted
from loadkit.measure.recorder import LatencyRecorder
from loadkit.measure.results import LoadResults, LockAuditResults, write_results
from loadkit.report.compare import render_compare_markdown, render_compare_table

T0 = 1_800_000_000.0
LOGIN = "POST /api/auth/login"
ITEMS = "GET /api/items"


def known_run(
    *,
    latency_s: float,
    login_errors: int,
    duration_s: float,
    kind: str = "storage_lock_timeout",
    items: int = 0,
) -> LoadResults:
    """100 login requests, all at ``latency_s``, ``login_errors`` of them failed with ``kind``,
    plus ``items`` fast item listings, spread over ``duration_s``."""
    recorder = LatencyRecorder(start=T0)
    total = 100 + items
    for i in range(total):
        endpoint = LOGIN if i < 100 else ITEMS
        failed = endpoint == LOGIN and i < login_errors
        recorder.record(
            endpoint=endpoint,
            latency_s=latency_s if endpoint == LOGIN else 0.001,
            end=T0 + (i + 1) * duration_s / (total + 1),
            error_kind=kind if failed else None,
            status=503 if failed else 200,
        )
    recorder.finish(end=T0 + duration_s)
    return LoadResults(
        target="http://127.0.0.1:8000",
        **recorder.traffic_fields(),
    )


@pytest.fixture
def before() -> LoadResults:
    return known_run(latency_s=2.0, login_errors=10, duration_s=20.0)


@pytest.fixture
def after() -> LoadResults:
    return known_run(latency_s=0.002, login_errors=4, duration_s=10.0, items=50)


def change(comparison: Comparison, section: str, label: str) -> Change:
    for s in comparison.sections:
        if s.title == section:
            for c in s.changes:
                if c.label == label:
                    return c
    raise AssertionError(f"no {label} in {section}")


def test_the_fix_report(before: LoadResults, after: LoadResults) -> None:
    comparison = compare_results(before, after, before_source="phase0", after_source="phase1")
    p99 = change(comparison, "Run", "P99")
    assert p99.before == 2000.0
    assert p99.after == 2.0
    assert p99.percent == pytest.approx(-99.9)
    assert p99.direction == "better"
    errors = change(comparison, "Run", "errors")
    assert (errors.before, errors.after) == (10, 4)
    assert errors.percent == pytest.approx(-60.0)
    requests = change(comparison, "Run", "requests")
    assert (requests.before, requests.after) == (100, 150)
    assert requests.percent == pytest.approx(50.0)
    assert requests.direction == "better"
    rps = change(comparison, "Run", "RPS")
    assert rps.before == pytest.approx(5.0)
    assert rps.after == pytest.approx(15.0)
    assert rps.percent == pytest.approx(200.0)
    rate = change(comparison, "Run", "error rate")
    assert rate.before == pytest.approx(0.10)
    assert rate.after == pytest.approx(4 / 150)


def test_per_endpoint_and_per_kind(before: LoadResults, after: LoadResults) -> None:
    comparison = compare_results(before, after)
    titles = [s.title for s in comparison.sections]
    assert titles == ["Run", LOGIN, f"{ITEMS} (new)", "Errors by kind"]
    login_p95 = change(comparison, LOGIN, "P95")
    assert (login_p95.before, login_p95.after) == (2000.0, 2.0)
    login_rate = change(comparison, LOGIN, "error rate")
    assert login_rate.percent == pytest.approx(-60.0)
    new_endpoint = change(comparison, f"{ITEMS} (new)", "requests")
    assert (new_endpoint.before, new_endpoint.after) == (None, 50)
    assert new_endpoint.percent is None
    kind = change(comparison, "Errors by kind", "storage_lock_timeout")
    assert (kind.before, kind.after) == (10, 4)
    assert kind.percent == pytest.approx(-60.0)


def test_a_kind_that_appears_and_one_that_disappears(before: LoadResults) -> None:
    after = known_run(latency_s=0.002, login_errors=3, duration_s=10.0, kind="db_pool_exhausted")
    comparison = compare_results(before, after)
    gone = change(comparison, "Errors by kind", "storage_lock_timeout")
    assert (gone.before, gone.after, gone.percent) == (10, 0, -100.0)
    new = change(comparison, "Errors by kind", "db_pool_exhausted")
    assert (new.before, new.after, new.percent, new.direction) == (0, 3, None, "worse")


def test_rendered_table_and_markdown(before: LoadResults, after: LoadResults) -> None:
    comparison = compare_results(
        before, after, before_source="before.json", after_source="after.json"
    )
    table = render_compare_table(comparison)
    assert table.startswith("before.json → after.json: P95 -99.9 %, P99 -99.9 %, errors -60.0 %")
    assert "2000.0 ms" in table and "2.0 ms" in table
    assert "-60.0 %" in table
    assert "WORSE" not in table.split("Errors by kind")[0].split(LOGIN)[0]
    markdown = render_compare_markdown(comparison)
    assert markdown.startswith("## Comparison: `before.json` → `after.json`")
    assert "| P99 " in markdown
    assert "✅ better" in markdown


def test_invalid_run_is_compared_with_a_note(before: LoadResults, after: LoadResults) -> None:
    comparison = compare_results(mark_aborted(before, "interrupted"), after)
    assert any(
        "before is an invalid run (aborted: interrupted)" in note for note in comparison.notes
    )


def test_refuses_lock_audits_and_mixed_kinds(before: LoadResults) -> None:
    audit = LockAuditResults(
        target="service",
        started_at=datetime.fromtimestamp(T0, tz=UTC),
        duration_s=0.1,
        files_checked=1,
        violations=0,
    )
    with pytest.raises(InputError, match="lock-audit results have no traffic"):
        compare_results(before, audit)


def test_compare_command(tmp_path: Path, before: LoadResults, after: LoadResults) -> None:
    write_results(tmp_path / "before.json", before)
    write_results(tmp_path / "after.json", after)
    markdown = tmp_path / "compare.md"
    result = CliRunner().invoke(
        app,
        [
            "compare",
            str(tmp_path / "before.json"),
            str(tmp_path / "after.json"),
            "--markdown",
            str(markdown),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "P99 -99.9 %" in result.output
    assert "storage_lock_timeout" in result.output
    assert markdown.read_text().startswith("## Comparison")


def test_compare_command_missing_file_is_exit_2(tmp_path: Path, before: LoadResults) -> None:
    write_results(tmp_path / "before.json", before)
    result = CliRunner().invoke(
        app, ["compare", str(tmp_path / "before.json"), str(tmp_path / "nope.json")]
    )
    assert result.exit_code == 2, result.output
    assert "nope.json: no such results file" in result.output

"""The gate's renderings pinned as golden files: the terminal table, Markdown, JUnit XML and the
JSON verdict of a passed, a failed and an invalid gate, each judged on results files in
``fixtures/gate/<case>/``. A change of the text shows here as a diff to review; after a change
that is meant, rewrite them with ``LOADKIT_UPDATE_GOLDEN=1 pytest`` on this file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from loadkit.config import load_config
from loadkit.exceptions import ConfigError, CriteriaNotMetError
from loadkit.gate.evaluate import GateReport, Verdict, evaluate_criteria, raise_for_outcome
from loadkit.measure.recorder import LatencyRecorder
from loadkit.measure.results import GeneratorHealth, LoadResults, Stall, read_results, with_reason
from loadkit.measure.validity import InvalidReason
from loadkit.report.gate import (
    render_gate_headline,
    render_gate_json,
    render_gate_junit,
    render_gate_markdown,
    render_gate_table,
    verdict_reason,
    write_gate_error_reports,
    write_gate_reports,
)
from loadkit.report.gate_evidence import EvidenceTable, verdict_tables
from loadkit.report.units import format_delta, format_value
from tests.loadkit.crafted import (
    ITEMS,
    LOGIN,
    SEED,
    T0,
    aborted,
    crafted_audit,
    crafted_load,
    crafted_smoke,
    criterion,
    judge,
    only,
    overloaded,
    with_latency,
)

FIXTURES = Path(__file__).parent / "fixtures" / "gate"
CASES = {
    "passed": ("smoke.json", "load.json", "lock_audit.json"),
    "failed": ("smoke.json", "load.json", "frozen.json", "lock_audit.json"),
    "invalid": ("load.json", "aborted.json", "lock_audit.json"),
}
UPDATE = os.environ.get("LOADKIT_UPDATE_GOLDEN") == "1"


def gate_report(case: str) -> GateReport:
    """The gate on a case's results files, each shown under its file name."""
    criteria = load_config(FIXTURES / "acceptance.toml").criteria
    folder = FIXTURES / case
    return evaluate_criteria(
        criteria, [(name, read_results(folder / name)) for name in CASES[case]]
    )


def renderings(report: GateReport) -> dict[str, str]:
    """Every rendering of one report, by the golden file's extension."""
    return {
        "txt": render_gate_table(report),
        "md": render_gate_markdown(report),
        "xml": render_gate_junit(report),
        "json": render_gate_json(report).decode(),
    }


def test_the_cases_have_the_outcomes_they_are_named_for() -> None:
    for case in CASES:
        assert gate_report(case).outcome == case


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("extension", ["txt", "md", "xml", "json"])
def test_rendering_matches_the_golden_file(case: str, extension: str) -> None:
    text = renderings(gate_report(case))[extension]
    golden = FIXTURES / "golden" / f"{case}.{extension}"
    if UPDATE:
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(text, encoding="utf-8")
    assert text == golden.read_text(encoding="utf-8")


# --- the words, criterion by criterion ---------------------------------------------------------


def tables(verdict: Verdict) -> list[EvidenceTable]:
    """A verdict's evidence as the tables every format shows."""
    return verdict_tables(verdict)


def test_a_passed_gate_counts_the_criteria_met() -> None:
    report = evaluate_criteria(
        SEED,
        [
            ("smoke.json", crafted_smoke()),
            ("load.json", crafted_load()),
            ("locks.json", crafted_audit()),
        ],
    )
    assert render_gate_headline(report).startswith("PASSED: 7 of 7")


def test_exactly_at_the_threshold_says_the_comparison_is_strict() -> None:
    run = crafted_load(ok=90, errors=((LOGIN, "database_error", 10),))
    reason = verdict_reason(only(judge(criterion("load.error_rate", "<", 0.10), run)))
    assert "exactly at the threshold" in reason
    assert "strict" in reason


def test_a_p95_failure_says_by_how_much_and_shows_the_slowest_endpoints() -> None:
    run = with_latency(crafted_load(), p95=1040.0)
    verdict = only(judge(criterion("load.p95_ms", "<", 1000), run))
    assert "40.0 ms (4.0 %) over" in verdict_reason(verdict)
    slowest = tables(verdict)[0]
    assert slowest.title == "Slowest endpoints by p95_ms"
    assert {row[0] for row in slowest.rows} == {LOGIN, ITEMS}


def test_error_groups_show_share_statuses_and_a_trace_id() -> None:
    run = crafted_load(
        ok=80,
        errors=(
            (LOGIN, "storage_lock_timeout", 12),
            (LOGIN, "invalid_credentials", 3),
            (ITEMS, "db_pool_exhausted", 5),
        ),
    )
    (table,) = tables(only(judge(criterion("load.error_rate", "<", 0.10), run)))
    assert table.title == "Top error kinds by endpoint (20 errors)"
    assert table.rows[0][:3] == (LOGIN, "storage_lock_timeout", 12)
    assert table.rows[0][3] == "60.0 %"  # share of the errors
    assert table.rows[0][4] == "503×12"
    assert table.rows[0][6] is not None  # an example trace id to look up


def test_a_stall_shows_its_window_and_the_seconds_around_it() -> None:
    run = crafted_load().model_copy(
        update={"longest_stall": Stall(start_s=3.0, end_s=8.0, duration_s=5.0)}
    )
    window, seconds = tables(only(judge(criterion("load.max_stall_s", "<", 5), run)))
    assert window.rows[0][:3] == ("3.00 s", "8.00 s", "5.00 s")
    assert window.rows[0][3] == "08:00:03.000 – 08:00:08.000"
    assert [row[0] for row in seconds.rows] == list(range(2, 10))


def test_lock_sites_and_failed_checks_are_named_as_an_editor_finds_them() -> None:
    (sites,) = tables(
        only(judge(criterion("lock_audit.lock_violations", "==", 0), crafted_audit(violations=2)))
    )
    assert [row[0] for row in sites.rows] == ["service/storage.py:40:8", "service/storage.py:41:8"]
    assert sites.rows[0][1] == "LK001"
    (checks,) = tables(
        only(judge(criterion("smoke.checks_passed", ">=", 10), crafted_smoke(passed=9, failed=1)))
    )
    assert checks.title == "Failed smoke checks (1 of 10)"
    assert checks.rows[0][:4] == ("broken 0", "POST /api/auth/login", 200, 500)


def test_low_throughput_shows_the_quietest_seconds() -> None:
    run = crafted_load(stall=(2.0, 6.5), duration_s=10.0)
    (quiet,) = tables(only(judge(criterion("load.rps", ">=", 100), run)))
    assert quiet.title == "Seconds with the fewest completions"
    assert all(row[1] == 0 for row in quiet.rows)


def test_an_invalid_run_says_why_and_what_the_verdict_would_have_been() -> None:
    run = overloaded(
        crafted_load(), GeneratorHealth(overloaded=True, cpu_warnings=2, max_cpu_percent=97)
    )
    report = evaluate_criteria(SEED, [("load.json", run)])
    judged = [v for v in report.verdicts if v.source == "load.json"]
    assert all("would have passed" in verdict_reason(v) for v in judged)
    headline = render_gate_headline(report)
    assert (
        "load.json (generator_overloaded: a load generator process ran above 90 % CPU" in headline
    )
    assert "peak 97 %" in headline


def test_an_aborted_run_is_named_and_the_failures_of_valid_runs_too() -> None:
    report = evaluate_criteria(
        SEED,
        [("load.json", aborted(crafted_load())), ("locks.json", crafted_audit(violations=1))],
    )
    headline = render_gate_headline(report)
    assert "load.json (aborted: interrupted (Ctrl-C or SIGTERM))" in headline
    assert "also failed: lock_audit.lock_violations" in headline


def test_an_aborted_run_with_nothing_measured_says_what_is_missing() -> None:
    empty = aborted(crafted_load(ok=0, errors=()))
    reason = verdict_reason(only(judge(criterion("load.p95_ms", "<", 1000), empty)))
    assert reason.startswith("load.json: no measurement of load.p95_ms")
    assert reason.endswith("; not trusted: aborted: interrupted (Ctrl-C or SIGTERM)")


def test_reasons_recorded_by_the_runner_are_shown_with_their_code() -> None:
    spawned = InvalidReason(code="incomplete", detail="only 3 of 10 users spawned")
    report = judge(criterion("load.p95_ms", "<", 1000), with_reason(crafted_load(), spawned))
    data = json.loads(render_gate_json(report))
    assert data["runs"][0]["reasons"] == [
        {"code": "incomplete", "detail": "only 3 of 10 users spawned"}
    ]
    assert "INVALID RUN load.json: incomplete: only 3 of 10 users spawned" in render_gate_table(
        report
    )


def test_a_frozen_run_fails_on_the_freeze() -> None:
    recorder = LatencyRecorder(start=T0)
    recorder.finish(end=T0 + 10.0, in_flight=10)
    frozen = LoadResults(target="http://127.0.0.1:1", **recorder.traffic_fields())
    criteria = [criterion("load.p95_ms", "<", 1000), criterion("load.error_rate", "<", 0.1)]
    p95, error_rate = evaluate_criteria(criteria, [("load.json", frozen)]).verdicts
    assert "service froze for 10.00 s" in verdict_reason(p95)
    assert "load.error_rate has no value" in verdict_reason(error_rate)
    assert "longest stall" in tables(p95)[0].title


def test_criteria_not_evaluated_are_counted_apart() -> None:
    report = evaluate_criteria(SEED, [("load.json", crafted_load())])
    assert "4 of 4 criteria met; 3 not evaluated" in render_gate_headline(report)
    smoke = next(v for v in report.verdicts if v.criterion.metric == "smoke.checks_passed")
    assert verdict_reason(smoke) == "no smoke results given"


def test_the_exit_message_is_the_headline_naming_the_failed_criterion() -> None:
    report = evaluate_criteria(
        [criterion("load.p95_ms", "<", 1000)],
        [("a.json", crafted_load()), ("b.json", with_latency(crafted_load(), p95=1500.0))],
    )
    with pytest.raises(
        CriteriaNotMetError, match=r"^FAILED: 1 of 2 criteria not met: load\.p95_ms < 1000$"
    ):
        raise_for_outcome(report, message=render_gate_headline(report))


# --- units -----------------------------------------------------------------------------------


def test_format_value_units() -> None:
    assert format_value("error_rate", 0.1) == "10.00 %"
    assert format_value("load.p95_ms", 999.9) == "999.9 ms"
    assert format_value("max_stall_s", 6) == "6.00 s"
    assert format_value("errors.timeout", 3) == "3"
    assert format_value("requests", 1234567) == "1234567"


def test_a_value_near_its_threshold_never_prints_as_the_threshold() -> None:
    # 999.96 ms passes `< 1000`: it must not be shown as 1000.0 ms beside PASS.
    assert format_value("p95_ms", 999.96, against=1000) == "999.96 ms"
    assert format_value("error_rate", 0.09999, against=0.1) == "9.999 %"
    assert format_value("p95_ms", 1000.0, against=1000) == "1000.0 ms"
    assert format_value("p95_ms", 999.95, exact=True) == "999.95 ms"
    assert format_delta("p95_ms", 0.04) == "0.04 ms"
    run = with_latency(crafted_load(), p95=999.96)
    report = judge(criterion("load.p95_ms", "<", 1000), run)
    verdict = only(report)
    assert verdict.status == "passed"
    assert verdict_reason(verdict).startswith("999.96 ms, 0.04 ms")
    table = render_gate_table(report)
    assert "999.96 ms" in table
    assert "1000.0 ms " not in table.replace("< 1000.0 ms", "")


# --- files -----------------------------------------------------------------------------------


def test_a_report_file_accept_cannot_write_is_named_without_a_flag(tmp_path: Path) -> None:
    # accept chooses its report paths itself: no --markdown was given, so none is named.
    report = judge(criterion("load.p95_ms", "<", 1000), crafted_load())
    (tmp_path / "gate.md").mkdir()
    with pytest.raises(ConfigError) as info:
        write_gate_reports(report, markdown=tmp_path / "gate.md", from_options=False, environ={})
    assert str(info.value).startswith(f"{tmp_path / 'gate.md'}: cannot write the gate's report")
    assert "--" not in str(info.value)
    with pytest.raises(ConfigError) as info:
        write_gate_error_reports(
            "no measurement", markdown=tmp_path / "gate.md", from_options=False, environ={}
        )
    assert "--markdown" not in str(info.value)


def test_a_report_file_the_user_asked_for_is_named_with_its_option(tmp_path: Path) -> None:
    report = judge(criterion("load.p95_ms", "<", 1000), crafted_load())
    (tmp_path / "gate.md").mkdir()
    with pytest.raises(ConfigError, match=r"^--markdown .*gate\.md: cannot write"):
        write_gate_reports(report, markdown=tmp_path / "gate.md", environ={})

"""The gate on crafted results: verdicts at and around each threshold, invalid runs, missing
measurements, criteria not evaluated, several files of one kind, the evidence of each failure.

The gate returns data; how it is worded (reasons, headline, evidence tables) is tested with the
renderer, in test_gate_report.py."""

from __future__ import annotations

import math
from typing import Any

import pytest

from loadkit.config import AcceptanceConfig, parse_config
from loadkit.exceptions import ConfigError, CriteriaNotMetError, InputError, InvalidRunError
from loadkit.gate.evaluate import (
    ErrorGroups,
    FailedChecks,
    GateReport,
    LockSites,
    QuietestSeconds,
    SlowestEndpoints,
    StallWindow,
    evaluate_criteria,
    raise_for_outcome,
)
from loadkit.measure.recorder import LatencyRecorder
from loadkit.measure.results import (
    GeneratorHealth,
    LatencySummary,
    LoadResults,
    Stall,
    Stopped,
    with_reason,
)
from loadkit.measure.validity import InvalidReason
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


def raise_for(report: GateReport) -> None:
    """``raise_for_outcome`` with a stand-in message (the headline's words are report/'s)."""
    raise_for_outcome(report, message="headline")


# --- the seed criteria on healthy results -------------------------------------------------------


def test_crafted_results_are_what_they_claim() -> None:
    run = crafted_load()
    assert run.totals.requests == 95
    assert run.totals.errors == 5
    assert run.longest_stall is None or run.longest_stall.duration_s < 0.1
    assert run.valid
    assert LoadResults.model_validate(run.model_dump(by_alias=True)) == run


def test_healthy_results_pass_every_seed_criterion() -> None:
    report = evaluate_criteria(
        SEED,
        [
            ("smoke.json", crafted_smoke()),
            ("load.json", crafted_load()),
            ("locks.json", crafted_audit()),
        ],
    )
    assert [v.status for v in report.verdicts] == ["passed"] * 7
    assert report.outcome == "passed"
    raise_for(report)  # no exception


# --- at and around each threshold ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("ok", "errors", "status"),
    [
        (90, 10, "failed"),  # exactly 0.10: `<` is strict
        (901, 99, "passed"),  # 0.099
        (899, 101, "failed"),  # 0.101
        (100, 0, "passed"),
    ],
)
def test_error_rate_is_strict(ok: int, errors: int, status: str) -> None:
    run = crafted_load(ok=ok, errors=((LOGIN, "storage_lock_timeout", errors),) if errors else ())
    verdict = only(judge(criterion("load.error_rate", "<", 0.10), run))
    assert verdict.measured == errors / (ok + errors)
    assert verdict.status == status


def test_error_rate_exactly_at_threshold_says_the_comparison_is_strict() -> None:
    verdict = only(
        judge(
            criterion("load.error_rate", "<", 0.10),
            crafted_load(ok=90, errors=((LOGIN, "database_error", 10),)),
        )
    )
    assert verdict.measured == 0.10
    assert verdict.margin == 0
    assert verdict.status == "failed"
    assert verdict.met is False


@pytest.mark.parametrize(
    ("p95", "status"),
    [
        (999.0, "passed"),
        (999.9, "passed"),
        (1000.0, "failed"),
        (1000.1, "failed"),
        (1040.0, "failed"),
    ],
)
def test_p95_threshold(p95: float, status: str) -> None:
    run = with_latency(crafted_load(), p95=p95, p99=max(p95, 1100.0), max=1200.0)
    verdict = only(judge(criterion("load.p95_ms", "<", 1000), run))
    assert verdict.measured == p95
    assert verdict.status == status
    assert verdict.margin is not None and math.isclose(verdict.margin, 1000.0 - p95)


def test_p95_failure_says_by_how_much_and_shows_slowest_endpoints() -> None:
    run = with_latency(crafted_load(), p95=1040.0)
    verdict = only(judge(criterion("load.p95_ms", "<", 1000), run))
    assert verdict.status == "failed"
    assert verdict.margin == pytest.approx(-40.0)
    assert verdict.margin_percent == pytest.approx(-4.0)
    slowest = verdict.evidence[0]
    assert isinstance(slowest, SlowestEndpoints)
    assert slowest.metric == "p95_ms"
    assert {e.name for e in slowest.endpoints} == {LOGIN, ITEMS}


def test_p95_just_under_one_second_from_the_recorder_passes() -> None:
    # All requests at 999.9 ms: the HDR bucket's upper end is capped at the exact max.
    run = crafted_load(latency_s=0.9999, errors=())
    assert run.latency_ms.p95 == 999.9
    assert only(judge(criterion("load.p95_ms", "<", 1000), run)).status == "passed"
    slow = crafted_load(latency_s=1.0, errors=())
    assert only(judge(criterion("load.p95_ms", "<", 1000), slow)).status == "failed"


def test_http2_internal_errors_counts_that_kind_and_names_the_endpoint() -> None:
    clean = crafted_load()
    assert only(judge(criterion("load.http2_internal_errors", "==", 0), clean)).status == "passed"
    broken = crafted_load(
        errors=((LOGIN, "storage_lock_timeout", 5), (ITEMS, "http2_internal_error", 2))
    )
    verdict = only(judge(criterion("load.http2_internal_errors", "==", 0), broken))
    assert verdict.status == "failed"
    assert verdict.measured == 2
    (evidence,) = verdict.evidence
    assert isinstance(evidence, ErrorGroups)
    assert [(g.endpoint, g.kind, g.count) for g in evidence.groups] == [
        (ITEMS, "http2_internal_error", 2)
    ]


def test_http2_internal_errors_per_endpoint_counts_that_endpoint_only() -> None:
    broken = crafted_load(
        errors=(
            (LOGIN, "http2_internal_error", 3),
            (ITEMS, "http2_internal_error", 2),
            (LOGIN, "storage_lock_timeout", 4),
        )
    )
    on_login = criterion("load.http2_internal_errors", "==", 0, endpoint=LOGIN)
    verdict = only(judge(on_login, broken))
    assert (verdict.status, verdict.measured) == ("failed", 3)
    (evidence,) = verdict.evidence
    assert isinstance(evidence, ErrorGroups) and evidence.endpoint == LOGIN
    assert [(g.endpoint, g.kind, g.count) for g in evidence.groups] == [
        (LOGIN, "http2_internal_error", 3)
    ]
    # An endpoint the run requested without one such error measured 0: passed, not missing.
    clean_items = crafted_load(errors=((LOGIN, "http2_internal_error", 3),))
    on_items = criterion("load.http2_internal_errors", "==", 0, endpoint=ITEMS)
    items = only(judge(on_items, clean_items))
    assert (items.status, items.measured) == ("passed", 0)
    with pytest.raises(InputError, match=r"for endpoint 'GET /nope'"):
        judge(criterion("load.http2_internal_errors", "==", 0, endpoint="GET /nope"), broken)


def test_error_rate_failure_shows_top_error_kinds_by_endpoint() -> None:
    run = crafted_load(
        ok=80,
        errors=(
            (LOGIN, "storage_lock_timeout", 12),
            (LOGIN, "invalid_credentials", 3),
            (ITEMS, "db_pool_exhausted", 5),
        ),
    )
    verdict = only(judge(criterion("load.error_rate", "<", 0.10), run))
    assert verdict.status == "failed"
    (evidence,) = verdict.evidence
    assert isinstance(evidence, ErrorGroups)
    assert [(g.endpoint, g.kind, g.count) for g in evidence.groups] == [
        (LOGIN, "storage_lock_timeout", 12),
        (ITEMS, "db_pool_exhausted", 5),
        (LOGIN, "invalid_credentials", 3),
    ]
    assert evidence.total == 20  # the share of each group is of these
    assert evidence.groups[0].status_codes == {"503": 12}
    assert evidence.groups[0].example_trace_id is not None  # an example trace id to look up


@pytest.mark.parametrize(
    ("stall", "status"),
    [(None, "passed"), ((2.0, 6.5), "passed"), ((2.0, 7.5), "failed"), ((2.0, 9.0), "failed")],
)
def test_max_stall_threshold(stall: tuple[float, float] | None, status: str) -> None:
    run = crafted_load(stall=stall, duration_s=12.0)
    verdict = only(judge(criterion("load.max_stall_s", "<", 5), run))
    assert verdict.status == status
    if stall is None:
        assert verdict.measured is not None and verdict.measured < 0.1
    else:
        assert verdict.measured == pytest.approx(stall[1] - stall[0], abs=0.2)


def test_no_stall_recorded_in_a_valid_run_measures_zero() -> None:
    run = crafted_load().model_copy(update={"longest_stall": None})
    verdict = only(judge(criterion("load.max_stall_s", "<", 5), run))
    assert verdict.measured == 0.0
    assert verdict.status == "passed"


def test_stall_exactly_five_seconds_fails_and_shows_the_window() -> None:
    run = crafted_load().model_copy(
        update={"longest_stall": Stall(start_s=3.0, end_s=8.0, duration_s=5.0)}
    )
    verdict = only(judge(criterion("load.max_stall_s", "<", 5), run))
    assert verdict.status == "failed"
    (window,) = verdict.evidence
    assert isinstance(window, StallWindow)
    assert window.stall == Stall(start_s=3.0, end_s=8.0, duration_s=5.0)
    assert (window.ended - window.began).total_seconds() == 5.0
    assert [p.t_s for p in window.seconds] == list(range(2, 10))


def test_lock_violations_fail_with_the_sites() -> None:
    assert (
        only(judge(criterion("lock_audit.lock_violations", "==", 0), crafted_audit())).status
        == "passed"
    )
    verdict = only(
        judge(criterion("lock_audit.lock_violations", "==", 0), crafted_audit(violations=2))
    )
    assert verdict.status == "failed"
    assert verdict.measured == 2
    (evidence,) = verdict.evidence
    assert isinstance(evidence, LockSites)
    assert [(f.path, f.line, f.col) for f in evidence.findings] == [
        ("service/storage.py", 40, 8),
        ("service/storage.py", 41, 8),
    ]
    assert evidence.findings[0].code == "LK001"


def test_smoke_ten_of_ten() -> None:
    crit = criterion("smoke.checks_passed", ">=", 10)
    assert only(judge(crit, crafted_smoke(passed=10))).status == "passed"
    verdict = only(judge(crit, crafted_smoke(passed=9, failed=1)))
    assert verdict.status == "failed"
    (evidence,) = verdict.evidence
    assert isinstance(evidence, FailedChecks)
    assert evidence.total == 10
    failed = evidence.checks[0]
    assert (failed.name, failed.method, failed.path) == ("broken 0", "POST", "/api/auth/login")
    assert (failed.expected_status, failed.status) == (200, 500)
    ratio = only(judge(criterion("smoke.pass_ratio", "==", 1), crafted_smoke(passed=9, failed=1)))
    assert ratio.measured == 0.9
    assert ratio.status == "failed"


@pytest.mark.parametrize(("op", "value", "met"), [
    (">", 95, False), (">", 94, True), (">=", 95, True), ("<=", 95, True), ("<=", 94, False),
    ("==", 95, True), ("==", 96, False), ("!=", 95, False), ("!=", 96, True),
])  # fmt: skip
def test_every_operator_as_written(op: str, value: float, met: bool) -> None:
    verdict = only(judge(criterion("load.requests", op, value), crafted_load()))
    assert verdict.measured == 95
    assert verdict.status == ("passed" if met else "failed")


def test_per_endpoint_and_per_kind_criteria() -> None:
    run = crafted_load(ok=90, errors=((LOGIN, "storage_lock_timeout", 10), (ITEMS, "not_found", 1)))
    login_rate = only(judge(criterion("load.error_rate", "<", 0.1, endpoint=LOGIN), run))
    assert login_rate.measured == 10 / 55
    assert login_rate.status == "failed"
    (groups,) = login_rate.evidence
    assert isinstance(groups, ErrorGroups)
    assert groups.endpoint == LOGIN
    assert {g.endpoint for g in groups.groups} == {LOGIN}
    items_rate = only(judge(criterion("load.error_rate", "<", 0.1, endpoint=ITEMS), run))
    assert items_rate.measured == 1 / 46
    assert items_rate.status == "passed"
    capped = only(judge(criterion("load.errors.storage_lock_timeout", "<=", 5), run))
    assert capped.measured == 10
    assert capped.status == "failed"
    absent = only(judge(criterion("load.errors.query_timeout", "==", 0), run))
    assert absent.measured == 0  # errors are grouped exhaustively: an absent kind is 0
    assert absent.status == "passed"
    rps = only(judge(criterion("load.rps", ">=", 5), run))
    assert rps.measured == pytest.approx(run.totals.rps)


def test_low_throughput_shows_the_quietest_seconds() -> None:
    run = crafted_load(stall=(2.0, 6.5), duration_s=10.0)
    verdict = only(judge(criterion("load.rps", ">=", 100), run))
    assert verdict.status == "failed"
    (quiet,) = verdict.evidence
    assert isinstance(quiet, QuietestSeconds)
    assert quiet.seconds and all(p.completions == 0 for p in quiet.seconds)


# --- invalid runs never pass --------------------------------------------------------------------


def test_overloaded_generator_makes_the_gate_invalid_even_when_every_criterion_is_met() -> None:
    run = overloaded(
        crafted_load(), GeneratorHealth(overloaded=True, cpu_warnings=2, max_cpu_percent=97)
    )
    assert not run.valid
    report = evaluate_criteria(SEED, [("load.json", run)])
    assert report.outcome == "invalid"
    judged = [v for v in report.verdicts if v.source == "load.json"]
    assert {v.status for v in judged} == {"invalid"}
    assert all(v.met for v in judged)  # it would have passed
    assert [r.code for r in report.runs[0].reasons] == ["generator_overloaded"]
    assert "peak 97 %" in report.runs[0].reasons[0].detail
    with pytest.raises(InvalidRunError):
        raise_for(report)


def test_aborted_run_is_invalid_and_outranks_a_failure() -> None:
    report = evaluate_criteria(
        SEED,
        [
            ("load.json", aborted(crafted_load())),
            ("locks.json", crafted_audit(violations=1)),
        ],
    )
    assert report.outcome == "invalid"
    assert [r.code for r in report.runs[0].reasons] == ["aborted"]
    # The failure of a valid run is still there to name.
    assert [v.criterion.metric for v in report.with_status("failed")] == [
        "lock_audit.lock_violations"
    ]
    with pytest.raises(InvalidRunError):
        raise_for(report)


def test_aborted_lock_audit_is_invalid() -> None:
    report = judge(criterion("lock_audit.lock_violations", "==", 0), crafted_audit(aborted=True))
    assert report.outcome == "invalid"


def test_an_aborted_run_with_nothing_measured_is_invalid_not_an_input_error() -> None:
    empty = aborted(crafted_load(ok=0, errors=()))
    report = judge(criterion("load.p95_ms", "<", 1000), empty)
    assert report.outcome == "invalid"
    verdict = only(report)
    assert (verdict.status, verdict.measured, verdict.met) == ("invalid", None, None)
    assert verdict.missing is not None and "no measurement of load.p95_ms" in verdict.missing
    with pytest.raises(InvalidRunError):
        raise_for(report)


def test_invalid_reasons_recorded_by_the_runner_are_shown() -> None:
    spawned = InvalidReason(code="incomplete", detail="only 3 of 10 users spawned")
    run = with_reason(crafted_load(), spawned)
    report = judge(criterion("load.p95_ms", "<", 1000), run)
    assert report.outcome == "invalid"
    assert report.runs[0].reasons == (spawned,)


# --- missing measurements are errors, never passes ----------------------------------------------


def test_no_requests_means_no_p95_and_no_error_rate() -> None:
    empty = crafted_load(ok=0, errors=())
    assert empty.totals.requests == 0
    with pytest.raises(InputError, match=r"load\.json: no measurement of load\.p95_ms"):
        judge(criterion("load.p95_ms", "<", 1000), empty)
    with pytest.raises(InputError, match=r"no measurement of load\.error_rate"):
        judge(criterion("load.error_rate", "<", 0.1), empty)


def test_a_run_frozen_from_start_to_end_fails_on_the_freeze_not_exit_2() -> None:
    """Users waited the whole run on a frozen service: no request completed, so there is no
    P95 or error rate, and that is the service failing, with the stall as the evidence."""
    recorder = LatencyRecorder(start=T0)
    recorder.finish(end=T0 + 10.0, in_flight=10)
    frozen = LoadResults(target="http://127.0.0.1:1", **recorder.traffic_fields())
    assert frozen.totals.requests == 0 and frozen.longest_stall is not None
    criteria = [
        criterion("load.p95_ms", "<", 1000),
        criterion("load.error_rate", "<", 0.1),
        criterion("load.max_stall_s", "<", 5),
    ]
    report = evaluate_criteria(criteria, [("load.json", frozen)])
    assert [v.status for v in report.verdicts] == ["failed", "failed", "failed"]
    p95, error_rate, stall = report.verdicts
    assert p95.measured is None and p95.frozen == frozen.longest_stall
    assert error_rate.measured is None and error_rate.frozen == frozen.longest_stall
    assert p95.evidence and isinstance(p95.evidence[0], StallWindow)
    assert stall.measured == 10.0
    with pytest.raises(CriteriaNotMetError):
        raise_for(report)


def test_unknown_endpoint_is_missing_not_passed() -> None:
    with pytest.raises(
        InputError, match=r"for endpoint 'GET /nope'.*it has: 'POST /api/auth/login'"
    ):
        judge(criterion("load.p95_ms", "<", 1000, endpoint="GET /nope"), crafted_load())


def test_missing_latency_figure_is_an_error() -> None:
    run = crafted_load().model_copy(update={"latency_ms": LatencySummary(count=95)})
    with pytest.raises(InputError, match="missing measurement is never a pass"):
        judge(criterion("load.p99_ms", "<", 2000), run)


def test_smoke_without_checks_has_no_pass_ratio() -> None:
    with pytest.raises(InputError, match="pass_ratio"):
        judge(criterion("smoke.pass_ratio", "==", 1), crafted_smoke(passed=0))


def test_smoke_without_checks_has_no_failed_count() -> None:
    # "0 checks failed" of no checks at all is not a smoke run that passed.
    with pytest.raises(InputError, match=r"no measurement of smoke\.checks_failed"):
        judge(criterion("smoke.checks_failed", "==", 0), crafted_smoke(passed=0))


def test_lock_audit_of_no_file_is_missing_not_zero_violations() -> None:
    audit = crafted_audit().model_copy(update={"files_checked": 0})
    with pytest.raises(InputError, match="checked no file"):
        judge(criterion("lock_audit.lock_violations", "==", 0), audit)


def test_counts_of_a_run_without_requests_are_missing() -> None:
    empty = crafted_load(ok=0, errors=())
    for metric in ("load.http2_internal_errors", "load.errors.timeout", "load.max_stall_s"):
        with pytest.raises(InputError, match="missing measurement is never a pass"):
            judge(criterion(metric, "==", 0), empty)


def test_an_unknown_kind_the_run_never_saw_is_missing_not_zero() -> None:
    # A typo ("timout") would otherwise measure 0 and pass every run.
    with pytest.raises(InputError, match=r"'timout' is not an error kind loadkit knows"):
        judge(criterion("load.errors.timout", "==", 0), crafted_load())
    # A kind of the service's own that the run did record is counted.
    run = crafted_load(errors=((LOGIN, "quota_exceeded", 2),))
    assert only(judge(criterion("load.errors.quota_exceeded", "<=", 1), run)).measured == 2


# --- what was not given is not evaluated --------------------------------------------------------


def test_criteria_of_a_kind_not_given_are_not_evaluated() -> None:
    report = evaluate_criteria(SEED, [("load.json", crafted_load())])
    statuses = {v.criterion.metric: v.status for v in report.verdicts}
    assert statuses["smoke.checks_passed"] == "not_evaluated"
    assert statuses["lock_audit.lock_violations"] == "not_evaluated"
    assert statuses["load.p95_ms"] == "passed"
    assert report.outcome == "passed"
    assert [v.status for v in report.verdicts].count("not_evaluated") == 3


def test_gating_nothing_is_an_error() -> None:
    load_only = [c for c in SEED if c.results_kind == "load"]
    with pytest.raises(InputError, match="none of the 4 criteria applies"):
        evaluate_criteria(load_only, [("locks.json", crafted_audit())])
    with pytest.raises(ConfigError, match="no \\[\\[criteria\\]\\]"):
        evaluate_criteria([], [("load.json", crafted_load())])


def test_several_files_of_one_kind_are_each_judged_and_the_worst_decides() -> None:
    good = crafted_load()
    bad = with_latency(crafted_load(), p95=1500.0)
    report = evaluate_criteria(
        [criterion("load.p95_ms", "<", 1000)], [("a.json", good), ("b.json", bad)]
    )
    assert [(v.source, v.status) for v in report.verdicts] == [
        ("a.json", "passed"),
        ("b.json", "failed"),
    ]
    assert report.outcome == "failed"
    with pytest.raises(CriteriaNotMetError):
        raise_for(report)


# --- criteria are validated on load --------------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"metric": "load.error_rate", "op": "<", "threshold": 10}, "criteria.[0]: Value"),
        ({"metric": "load.p95_ms", "op": "<", "threshold": -1}, "negative"),
        ({"metric": "load.p95_ms", "op": "<", "threshold": float("nan")}, "finite"),
        ({"metric": "load.p95_ms", "op": "=<", "threshold": 1}, "criteria[0].op"),
        ({"metric": "load.p96_ms", "op": "<", "threshold": 1}, "unknown load metric 'p96_ms'"),
        ({"metric": "load.p95_ms", "op": "<", "threshold": "fast"}, "criteria[0].threshold"),
        ({"metric": "load.p95_ms", "op": "<", "threshold": 1, "treshold": 2}, "treshold: unknown"),
        ({"metric": "load.rps", "op": ">", "threshold": 1, "endpoint": LOGIN}, "endpoint applies"),
    ],
)
def test_bad_criteria_are_config_errors_naming_the_key(entry: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"criteria": [entry]}, source="acceptance.toml")
    text = str(info.value)
    assert text.startswith("acceptance.toml is invalid")
    assert "criteria[0]" in text
    if message != "criteria.[0]: Value":
        assert message in text
    else:
        assert "above 1" in text and "0.10" in text


def test_a_criterion_label_keeps_every_digit() -> None:
    assert criterion("load.requests", ">=", 1234567).label == "load.requests >= 1234567"
    assert isinstance(AcceptanceConfig().criteria, tuple)


@pytest.mark.parametrize(
    ("update", "measured", "outcome"),
    [
        # Stopped at its threshold, or just a quitting listener's verdict: the same code.
        ({"locust_exit_code": 1, "stopped": Stopped(by="locustfile", at_s=3.0)}, 1.0, "failed"),
        ({"locust_exit_code": 1}, 1.0, "failed"),
        ({"locust_exit_code": 2}, 2.0, "failed"),  # an exception in an event handler
        ({"locust_exit_code": 0, "stopped": Stopped(by="locustfile", at_s=3.0)}, 0.0, "passed"),
        ({}, 0.0, "passed"),  # not recorded (plain Locust with the plugin, a web UI test)
    ],
)
def test_locusts_own_exit_code_is_its_verdict_at_the_gate(
    update: dict[str, object], measured: float, outcome: str
) -> None:
    # A nonzero exit code fails the seed criterion, as plain Locust's exit code fails its CI.
    results = crafted_load().model_copy(update=update)
    seed = criterion("load.locust_exit_code", "==", 0, name="Locust's own verdict (exit code 0)")
    report = judge(seed, results)
    assert (report.outcome, only(report).measured) == (outcome, measured)

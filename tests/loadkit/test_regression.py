"""Regression criteria against a baseline run (issue #17): the tolerance rules, min_requests,
comparable baselines, the evidence, and the commands (`gate --baseline`, `compare
--fail-on-regression`) on crafted results files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from loadkit.cli import app
from loadkit.config import RegressionCriterion, parse_config
from loadkit.exceptions import ConfigError
from loadkit.gate.against_baseline import evaluate_gate
from loadkit.gate.baseline import baseline_differences
from loadkit.gate.regression import judge_change
from loadkit.measure.recorder import LatencyRecorder
from loadkit.measure.results import LoadResults, Stopped, write_results
from loadkit.report.gate import gate_notes
from loadkit.run.report import load_report, page_gate
from tests.loadkit.crafted import ITEMS, LOGIN, T0, aborted, crafted_load, crafted_smoke

P95_20_PCT = """
[[criteria]]
metric = "load.p95_ms"
op = "regression"
max_worse_pct = 20
"""


def regression(**keys: object) -> RegressionCriterion:
    """One regression criterion, validated as acceptance.toml would be."""
    return RegressionCriterion.model_validate({"op": "regression", **keys})


def two_endpoints(*, login_s: float, items_s: float, requests: int = 40) -> LoadResults:
    """A run whose two endpoints answer in the given times (through the real recorder)."""
    recorder = LatencyRecorder(start=T0)
    for index in range(requests):
        endpoint, latency = (LOGIN, login_s) if index % 2 else (ITEMS, items_s)
        recorder.record(endpoint=endpoint, latency_s=latency, end=T0 + 0.1 + index * 0.05)
    recorder.finish(end=T0 + 5.0)
    return LoadResults(
        target="http://127.0.0.1:1",
        config={"scenario": "login", "concurrency": 10, "duration_s": 5, "model": "closed"},
        **recorder.traffic_fields(),
    )


def files(tmp_path: Path, **runs: LoadResults) -> dict[str, Path]:
    paths = {}
    for name, results in runs.items():
        paths[name] = write_results(tmp_path / f"{name}.json", results)
    return paths


def cli(*args: str | Path) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(map(str, args)))
    return result.exit_code, result.output


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "acceptance.toml"
    path.write_text(P95_20_PCT)
    return path


# --- the rule ------------------------------------------------------------------------------------


def test_a_percentage_alone_fails_a_small_absolute_change() -> None:
    change = judge_change(regression(metric="load.p95_ms", max_worse_pct=20), baseline=2, current=3)
    assert change.regressed
    assert change.percent == pytest.approx(50.0)


def test_with_both_tolerances_a_regression_must_exceed_both() -> None:
    both = regression(metric="load.p95_ms", max_worse_pct=20, max_worse_abs=5)
    assert not judge_change(both, baseline=2, current=3).regressed  # +50 % but only +1 ms
    assert not judge_change(both, baseline=100, current=119).regressed  # +19 ms but only +19 %
    assert judge_change(both, baseline=2, current=8).regressed  # +300 % and +6 ms
    assert judge_change(both, baseline=100, current=121).regressed  # +21 % and +21 ms


def test_exactly_the_allowed_change_passes() -> None:
    crit = regression(metric="load.p95_ms", max_worse_pct=20)
    assert not judge_change(crit, baseline=100, current=120).regressed
    assert judge_change(crit, baseline=100, current=120.1).regressed


def test_throughput_and_checks_passed_regress_downwards() -> None:
    rps = regression(metric="load.rps", max_worse_pct=10)
    assert judge_change(rps, baseline=100, current=85).regressed
    assert not judge_change(rps, baseline=100, current=150).regressed
    checks = regression(metric="smoke.checks_passed", max_worse_abs=0)
    assert judge_change(checks, baseline=10, current=9).regressed
    latency = regression(metric="load.p95_ms", max_worse_pct=10)
    assert not judge_change(latency, baseline=100, current=50).regressed


def test_error_rate_tolerance_is_a_fraction() -> None:
    crit = regression(metric="load.error_rate", max_worse_abs=0.01)
    assert not judge_change(crit, baseline=0.02, current=0.029).regressed
    assert judge_change(crit, baseline=0.02, current=0.031).regressed


# --- strict configuration ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        (
            'metric = "load.p95_ms"\nop = "regression"\n',
            "criteria[0]: a regression criterion needs",
        ),
        (
            'metric = "load.p95_ms"\nop = "regression"\nmax_worse_pct = 5\nthreshold = 1\n',
            "criteria[0].threshold: unknown key",
        ),
        (
            'metric = "load.p95_ms"\nop = "regression"\nmax_worse_pct = 5\nmax_worse = 1\n',
            "criteria[0].max_worse: unknown key",
        ),
        (
            'metric = "load.p95_ms"\nop = "<"\nthreshold = 1\nmax_worse_pct = 5\n',
            "criteria[0].max_worse_pct: unknown key",
        ),
        (
            'metric = "load.p95_ms"\nop = "regression"\nmax_worse_pct = -5\n',
            "criteria[0].max_worse_pct: Input should be greater than or equal to 0",
        ),
    ],
)
def test_bad_regression_criteria_name_the_key(entry: str, expected: str) -> None:
    import tomllib

    with pytest.raises(ConfigError) as error:
        parse_config(tomllib.loads("[[criteria]]\n" + entry), source="acceptance.toml")
    assert expected in str(error.value)


def test_threshold_and_regression_criteria_live_in_one_array() -> None:
    config = parse_config(
        {
            "criteria": [
                {"metric": "load.p95_ms", "op": "<", "threshold": 1000},
                {"metric": "load.p95_ms", "op": "regression", "max_worse_pct": 20},
            ],
            "baseline": {"path": "baseline.json"},
        },
        source="acceptance.toml",
    )
    assert [c.metric for c in config.criteria] == ["load.p95_ms"]
    assert [c.max_worse_pct for c in config.regressions] == [20]
    assert config.baseline.path == "baseline.json"


# --- judged runs ---------------------------------------------------------------------------------


def test_min_requests_leaves_the_criterion_not_evaluated_with_why() -> None:
    threshold = parse_config(
        {"criteria": [{"metric": "load.p95_ms", "op": "<", "threshold": 1000}]}, source="t"
    ).criteria
    crit = regression(metric="load.p95_ms", max_worse_pct=1, min_requests=1000)
    report = evaluate_gate(
        threshold,
        [crit],
        [("now.json", crafted_load(latency_s=0.5))],
        baselines=[("base.json", crafted_load(latency_s=0.05))],
    )
    (verdict,) = report.regressions
    assert verdict.status == "not_evaluated"
    assert verdict.why == "95 requests in the baseline run, fewer than min_requests = 1000"
    assert report.outcome == "passed"  # neither a pass nor a fail of its own


def test_an_endpoint_criterion_judges_that_endpoint_alone() -> None:
    before = two_endpoints(login_s=0.05, items_s=0.05)
    after = two_endpoints(login_s=0.10, items_s=0.05)
    crits = [
        regression(metric="load.p95_ms", endpoint=LOGIN, max_worse_pct=20),
        regression(metric="load.p95_ms", endpoint=ITEMS, max_worse_pct=20),
    ]
    report = evaluate_gate((), crits, [("now.json", after)], baselines=[("b.json", before)])
    assert [v.status for v in report.regressions] == ["failed", "passed"]


def test_an_error_kind_regresses_by_its_count() -> None:
    before = crafted_load(errors=((LOGIN, "storage_lock_timeout", 5),))
    after = crafted_load(errors=((LOGIN, "storage_lock_timeout", 20),))
    crit = regression(metric="load.errors.storage_lock_timeout", max_worse_abs=5)
    report = evaluate_gate((), [crit], [("now.json", after)], baselines=[("b.json", before)])
    (verdict,) = report.regressions
    assert verdict.status == "failed"
    assert verdict.change is not None
    assert (verdict.change.baseline, verdict.change.current) == (5, 20)


def test_the_first_errors_of_a_kind_the_baseline_never_saw_are_a_regression() -> None:
    # A kind of the service's own (unknown to loadkit) that the baseline had none of.
    before = crafted_load(errors=())
    after = crafted_load(errors=((LOGIN, "payment_declined", 500),))
    crit = regression(metric="load.errors.payment_declined", max_worse_abs=10)
    report = evaluate_gate((), [crit], [("now.json", after)], baselines=[("b.json", before)])
    (verdict,) = report.regressions
    assert verdict.status == "failed"
    assert verdict.change is not None
    assert (verdict.change.baseline, verdict.change.current) == (0, 500)


def test_another_url_method_or_ramp_makes_a_baseline_incomparable() -> None:
    url = {"scenario": "url", "url_path": "/fast", "method": "GET", "spawn_rate": 10}
    before = crafted_load().model_copy(update={"config": url})
    for key, value in (("url_path", "/slow"), ("method", "POST"), ("spawn_rate", 1)):
        other = before.model_copy(update={"config": {**url, key: value}})
        (difference,) = baseline_differences(before, other)
        assert difference.key == key


def test_a_baseline_a_criterion_stopped_is_no_reference(tmp_path: Path, config: Path) -> None:
    stopped = Stopped(by="criterion", at_s=3.0, criterion="load.error_rate < 0.1", measured=0.3)
    base = crafted_load().model_copy(update={"stopped": stopped})
    paths = files(tmp_path, base=base, now=crafted_load())
    code, output = cli("gate", paths["now"], "--config", config, "--baseline", paths["base"])
    assert code == 2, output
    assert "is a failed run (stopped at 3 s by load.error_rate < 0.1)" in output


def test_host_and_port_never_make_a_baseline_incomparable() -> None:
    before = crafted_load()
    after = crafted_load().model_copy(update={"target": "http://127.0.0.1:40123"})
    assert baseline_differences(before, after) == ()
    other = after.model_copy(update={"config": {**after.config, "engine": "native"}})
    (difference,) = baseline_differences(before, other)
    assert (difference.key, difference.baseline, difference.current) == (
        "engine",
        "locust",
        "native",
    )


# --- the commands --------------------------------------------------------------------------------


def test_beyond_tolerance_fails_naming_metric_baseline_and_change(
    tmp_path: Path, config: Path
) -> None:
    paths = files(
        tmp_path,
        base=two_endpoints(login_s=0.05, items_s=0.05),
        now=two_endpoints(login_s=0.08, items_s=0.051),
    )
    verdict, junit, markdown = (tmp_path / name for name in ("v.json", "j.xml", "g.md"))
    code, output = cli(
        *("gate", paths["now"], "--config", config, "--baseline", paths["base"]),
        *("--json", verdict, "--junit", junit, "--markdown", markdown),
    )
    assert code == 1, output
    assert 'failures="1"' in junit.read_text() and 'type="regression"' in junit.read_text()
    assert "| load.p95_ms regression ≤ 20 % | 50.0 ms" in markdown.read_text()
    assert "load.p95_ms: 80.0 ms against the baseline's 50.0 ms, +30.0 ms (+60.0 %)" in output
    assert "allowed +10.0 ms" in output
    # The evidence names the endpoint that regressed, worst first.
    evidence = output.split("endpoints that regressed most:")[1]
    assert evidence.index(LOGIN) < evidence.index(ITEMS)
    data = json.loads(verdict.read_text())
    (entry,) = data["regressions"]
    assert (entry["status"], entry["baseline"], entry["current"]) == ("failed", 50.0, 80.0)
    assert entry["evidence"][0]["rows"][0][0] == LOGIN


def test_within_tolerance_passes(tmp_path: Path, config: Path) -> None:
    paths = files(
        tmp_path,
        base=two_endpoints(login_s=0.05, items_s=0.05),
        now=two_endpoints(login_s=0.055, items_s=0.05),
    )
    code, output = cli("gate", paths["now"], "--config", config, "--baseline", paths["base"])
    assert code == 0, output
    assert "+5.0 ms (+10.0 %)" in output
    assert "PASSED: 1 of 1 criteria met" in output


def test_a_baseline_of_another_load_is_exit_2_naming_what_differs(
    tmp_path: Path, config: Path
) -> None:
    before = two_endpoints(login_s=0.05, items_s=0.05)
    after = two_endpoints(login_s=0.05, items_s=0.05)
    after = after.model_copy(update={"config": {**after.config, "concurrency": 50}})
    paths = files(tmp_path, base=before, now=after)
    code, output = cli("gate", paths["now"], "--config", config, "--baseline", paths["base"])
    assert code == 2, output
    assert "concurrency: baseline 10, current 50" in output
    assert "--force-baseline" in output
    code, output = cli(
        "gate", paths["now"], "--config", config, "--baseline", paths["base"], "--force-baseline"
    )
    assert code == 0, output
    assert "differs from" in output and "compared anyway" in output


def test_an_invalid_baseline_is_exit_2(tmp_path: Path, config: Path) -> None:
    paths = files(tmp_path, base=aborted(crafted_load()), now=crafted_load())
    code, output = cli("gate", paths["now"], "--config", config, "--baseline", paths["base"])
    assert code == 2, output
    assert "is an invalid run" in output


def test_baseline_path_from_the_acceptance_file(tmp_path: Path) -> None:
    config = tmp_path / "acceptance.toml"
    config.write_text(
        P95_20_PCT
        + '[[criteria]]\nmetric = "load.error_rate"\nop = "<"\nthreshold = 0.5\n'
        + '[baseline]\npath = "baselines/main.json"\n'
    )
    paths = files(tmp_path, now=crafted_load(latency_s=0.08))
    # Not there yet (the first run of a branch): said, and the criterion is not evaluated.
    code, output = cli("gate", paths["now"], "--config", config)
    assert code == 0, output
    assert "does not exist yet" in output
    assert "not evaluated" in output
    (tmp_path / "baselines").mkdir()
    write_results(tmp_path / "baselines" / "main.json", crafted_load(latency_s=0.05))
    code, output = cli("gate", paths["now"], "--config", config)
    assert code == 1, output
    assert "baselines/main.json" in output


def test_compare_fail_on_regression_exit_codes(tmp_path: Path, config: Path) -> None:
    paths = files(
        tmp_path,
        base=two_endpoints(login_s=0.05, items_s=0.05),
        same=two_endpoints(login_s=0.05, items_s=0.05),
        slow=two_endpoints(login_s=0.09, items_s=0.09),
    )
    code, output = cli(
        "compare", paths["base"], paths["same"], "--fail-on-regression", "--config", config
    )
    assert code == 0, output
    code, output = cli(
        "compare", paths["base"], paths["slow"], "--fail-on-regression", "--config", config
    )
    assert code == 1, output
    assert "load.p95_ms regression ≤ 20 %" in output
    # Without the flag compare only shows the change, as before.
    code, output = cli("compare", paths["base"], paths["slow"])
    assert code == 0, output
    code, output = cli("compare", paths["base"], paths["slow"], "--fail-on-regression")
    assert code == 2
    assert "needs --config" in output


def test_a_baseline_no_criterion_judges_is_unused_by_the_gate_and_drawn_by_the_report(
    tmp_path: Path,
) -> None:
    config = tmp_path / "thresholds.toml"
    config.write_text('[[criteria]]\nmetric = "load.p95_ms"\nop = "<"\nthreshold = 1000\n')
    paths = files(tmp_path, base=crafted_load(), now=crafted_load())
    smoke = write_results(tmp_path / "smoke_base.json", crafted_smoke())

    def unused(source: object) -> str:
        return (
            f"baseline {source} not used: the acceptance criteria have no regression criterion "
            '(op = "regression") to judge the run against it'
        )

    code, output = cli("gate", paths["now"], "--config", config, "--baseline", paths["base"])
    assert code == 0, output
    assert f"note: {unused(paths['base'])}" in output
    # The page draws a load baseline beside the load run: that is what it says of it, never the
    # gate's "not used". A smoke baseline it does not draw: not used, there too.
    report = load_report([paths["now"]], config=config, baseline=[paths["base"], smoke])
    assert report.gate is not None
    assert gate_notes(report.gate) == [unused(f"{paths['base']}, {smoke}")]
    page = page_gate(report)
    assert page is not None
    assert gate_notes(page) == [
        f"baseline {paths['base']} drawn beside the run for comparison, not judged: the "
        'acceptance criteria have no regression criterion (op = "regression")',
        unused(smoke),
    ]
    # With a regression criterion the baseline is judged: neither note.
    config.write_text(P95_20_PCT)
    judged = page_gate(load_report([paths["now"]], config=config, baseline=[paths["base"]]))
    assert judged is not None and gate_notes(judged) == []

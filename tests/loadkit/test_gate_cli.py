"""`loadkit gate` end to end on files: exit codes 0/1/2/4, the table, JUnit (parsed with
junitparser), Markdown (and $GITHUB_STEP_SUMMARY), the JSON verdict, bad acceptance files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from junitparser import Error, Failure, JUnitXml, Skipped
from typer.testing import CliRunner

from loadkit.cli import app
from loadkit.measure.results import GeneratorHealth, LoadResults, Stopped, write_results
from tests.loadkit.crafted import (
    aborted,
    crafted_audit,
    crafted_load,
    crafted_smoke,
    overloaded,
    with_latency,
)

SEED_TOML = """
[[criteria]]
name = "smoke 10/10"
metric = "smoke.checks_passed"
op = ">="
threshold = 10

[[criteria]]
name = "error rate < 10 %"
metric = "load.error_rate"
op = "<"
threshold = 0.10

[[criteria]]
name = "P95 < 1 s"
metric = "load.p95_ms"
op = "<"
threshold = 1000

[[criteria]]
name = "no API freeze"
metric = "load.max_stall_s"
op = "<"
threshold = 5

[[criteria]]
name = "0 lock-safety violations"
metric = "lock_audit.lock_violations"
op = "=="
threshold = 0
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "acceptance.toml"
    path.write_text(SEED_TOML)
    return path


def gate(*args: str | Path, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["gate", *map(str, args)], env=env)
    return result.exit_code, result.output


def test_repository_acceptance_file_has_the_seed_criteria() -> None:
    from loadkit.config import load_config

    root = Path(__file__).resolve().parents[2]
    metrics = {c.metric for c in load_config(root / "acceptance.toml").criteria}
    assert {
        "smoke.checks_passed",
        "load.error_rate",
        "load.p95_ms",
        "load.http2_internal_errors",
        "load.max_stall_s",
        "lock_audit.lock_violations",
    } <= metrics


def test_pass_is_exit_0_with_the_table(tmp_path: Path, config: Path) -> None:
    load = write_results(tmp_path / "load.json", crafted_load())
    code, output = gate(load, "--config", config)
    assert code == 0, output
    assert "criterion" in output and "measured" in output and "margin" in output
    assert "P95 < 1 s" in output
    assert "not evaluated" in output  # smoke and lock audit were not given
    assert "PASSED: 3 of 3 criteria met; 2 not evaluated" in output


def test_fail_is_exit_1_naming_the_criterion_and_the_evidence(tmp_path: Path, config: Path) -> None:
    run = crafted_load(ok=80, errors=(("POST /api/auth/login", "storage_lock_timeout", 20),))
    load = write_results(tmp_path / "load.json", run)
    code, output = gate(load, "--config", config)
    assert code == 1, output
    assert "FAIL" in output
    assert "error rate < 10 %: 20.00 %, 10.00 pp (100.0 %) over the threshold" in output
    assert "Top error kinds by endpoint" in output
    assert "storage_lock_timeout" in output
    assert "error: FAILED: 1 of 3 criteria not met: error rate < 10 %" in output


def test_invalid_run_is_exit_4(tmp_path: Path, config: Path) -> None:
    run = overloaded(crafted_load(), GeneratorHealth(overloaded=True))
    load = write_results(tmp_path / "load.json", run)
    code, output = gate(load, "--config", config)
    assert code == 4, output
    assert "INVALID" in output
    assert "generator_overloaded: a load generator process ran above 90 % CPU" in output


def test_missing_measurement_is_exit_2(tmp_path: Path, config: Path) -> None:
    load = write_results(tmp_path / "load.json", crafted_load(ok=0, errors=()))
    code, output = gate(load, "--config", config)
    assert code == 2, output
    assert "no measurement of load.error_rate" in output
    assert "PASS" not in output


def test_missing_measurement_still_writes_the_requested_reports(
    tmp_path: Path, config: Path
) -> None:
    load = write_results(tmp_path / "load.json", crafted_load(ok=0, errors=()))
    verdict, junit = tmp_path / "verdict.json", tmp_path / "junit.xml"
    code, output = gate(load, "--config", config, "--json", verdict, "--junit", junit)
    assert code == 2, output
    data = json.loads(verdict.read_text())
    assert data["outcome"] == "error"
    assert "no measurement of load.error_rate" in data["headline"]
    (case,) = list(next(iter(JUnitXml.fromfile(str(junit)))))
    assert isinstance(case.result[0], Error)


def test_unreadable_results_replace_a_stale_passing_junit(tmp_path: Path, config: Path) -> None:
    junit = tmp_path / "junit.xml"
    load = write_results(tmp_path / "load.json", crafted_load())
    assert gate(load, "--config", config, "--junit", junit)[0] == 0
    broken = tmp_path / "broken.json"
    broken.write_text('{"schema": "loadkit.results/1", "kind": "lo')
    code, output = gate(broken, "--config", config, "--junit", junit)
    assert code == 2, output
    (case,) = list(next(iter(JUnitXml.fromfile(str(junit)))))
    assert isinstance(case.result[0], Error)


def test_unreadable_results_are_exit_2(tmp_path: Path, config: Path) -> None:
    (tmp_path / "junk.json").write_text('{"schema": "loadkit.results/1", "kind": "load"}')
    code, output = gate(tmp_path / "junk.json", "--config", config)
    assert code == 2
    assert "junk.json: invalid loadkit results file" in output
    code, output = gate(tmp_path / "absent.json", "--config", config)
    assert code == 2
    assert "absent.json: no such results file" in output


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[[criteria]\nmetric = 1", "not valid TOML"),
        (
            '[[criteria]]\nmetric = "load.p95_ms"\nop = "<"\nthreshold = "1s"',
            "criteria[0].threshold",
        ),
        ('[[criteria]]\nmetric = "load.error_rate"\nop = "<"\nthreshold = 10', "criteria[0]"),
        ('[[criteria]]\nmetric = "load.p95_ms"\nop = "<"\nthreshold = 1\nunit = "ms"', "unit"),
        ('[[criteria]]\nmetric = "load.p95"\nop = "<"\nthreshold = 1', "criteria[0].metric"),
        ('[[criteria]]\nmetric = "load.p95_ms"\nop = "lt"\nthreshold = 1', "criteria[0].op"),
        ('[[criteria]]\nmetric = "load.p95_ms"\nop = "<"', "criteria[0].threshold"),
        ('[[criteria]]\nmetric = "load.p95_ms"\nop = "<"\nthreshold = nan', "finite"),
    ],
)
def test_bad_acceptance_file_is_exit_2_naming_the_key(
    tmp_path: Path, text: str, expected: str
) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(text)
    load = write_results(tmp_path / "load.json", crafted_load())
    code, output = gate(load, "--config", config)
    assert code == 2, output
    assert str(config) in output
    assert expected in output


def test_missing_acceptance_file_is_exit_2(tmp_path: Path) -> None:
    load = write_results(tmp_path / "load.json", crafted_load())
    code, output = gate(load, "--config", tmp_path / "nope.toml")
    assert code == 2
    assert "nope.toml: no such file" in output


def test_reports_junit_markdown_json_and_step_summary(tmp_path: Path, config: Path) -> None:
    smoke = write_results(tmp_path / "smoke.json", crafted_smoke(passed=9, failed=1))
    load = write_results(tmp_path / "load.json", with_latency(crafted_load(), p95=1040.0))
    junit, markdown, verdict = tmp_path / "junit.xml", tmp_path / "gate.md", tmp_path / "v.json"
    summary = tmp_path / "step_summary.md"
    summary.write_text("# earlier step\n")
    code, output = gate(
        smoke,
        load,
        "--config",
        config,
        "--junit",
        junit,
        "--markdown",
        markdown,
        "--json",
        verdict,
        env={"GITHUB_STEP_SUMMARY": str(summary)},
    )
    assert code == 1, output

    xml = JUnitXml.fromfile(str(junit))
    cases = {case.name: case for suite in xml for case in suite}
    assert set(cases) == {
        "smoke 10/10",
        "error rate < 10 %",
        "P95 < 1 s",
        "no API freeze",
        "0 lock-safety violations",
    }
    assert isinstance(cases["smoke 10/10"].result[0], Failure)
    assert isinstance(cases["P95 < 1 s"].result[0], Failure)
    assert "40.0 ms (4.0 %) over" in cases["P95 < 1 s"].result[0].message
    assert cases["error rate < 10 %"].is_passed
    assert isinstance(cases["0 lock-safety violations"].result[0], Skipped)
    assert (xml.tests, xml.failures, xml.errors, xml.skipped) == (5, 2, 0, 1)

    text = markdown.read_text()
    assert text.startswith("## Acceptance gate: ❌ FAILED")
    assert "| P95 < 1 s" in text
    assert "### ❌ P95 < 1 s" in text
    assert summary.read_text() == "# earlier step\n" + text + "\n"

    data = json.loads(verdict.read_text())
    assert data["schema"] == "loadkit.verdict/2"
    assert data["outcome"] == "failed"
    p95 = next(c for c in data["criteria"] if c["metric"] == "load.p95_ms")
    assert p95["measured"] == 1040.0
    assert p95["margin"] == -40.0
    assert p95["status"] == "failed"
    assert p95["evidence"][0]["title"].startswith("Slowest endpoints")
    skipped = next(c for c in data["criteria"] if c["metric"] == "lock_audit.lock_violations")
    assert skipped["status"] == "not_evaluated"


def test_junit_marks_an_invalid_run_as_errors(tmp_path: Path, config: Path) -> None:
    load = write_results(tmp_path / "load.json", aborted(crafted_load()))
    junit = tmp_path / "junit.xml"
    code, _ = gate(load, "--config", config, "--junit", junit)
    assert code == 4
    cases = [case for suite in JUnitXml.fromfile(str(junit)) for case in suite]
    load_cases = [c for c in cases if c.classname == "loadkit.gate.load"]
    assert load_cases
    assert all(isinstance(c.result[0], Error) for c in load_cases)


def test_every_report_gives_an_invalid_runs_reasons_by_code_and_detail(
    tmp_path: Path, config: Path
) -> None:
    load = write_results(tmp_path / "load.json", aborted(crafted_load()))
    markdown, verdict = tmp_path / "gate.md", tmp_path / "verdict.json"
    code, output = gate(load, "--config", config, "--markdown", markdown, "--json", verdict)
    assert code == 4, output
    assert f"INVALID RUN {load}: aborted: interrupted (Ctrl-C or SIGTERM)" in output
    assert "`aborted`: interrupted (Ctrl-C or SIGTERM)" in markdown.read_text()
    (run,) = json.loads(verdict.read_text())["runs"]
    assert run == {
        "source": str(load),
        "kind": "load",
        "valid": False,
        "reasons": [{"code": "aborted", "detail": "interrupted (Ctrl-C or SIGTERM)"}],
    }


def test_every_kind_at_once(tmp_path: Path, config: Path) -> None:
    files = [
        write_results(tmp_path / "smoke.json", crafted_smoke()),
        write_results(tmp_path / "load.json", crafted_load()),
        write_results(tmp_path / "locks.json", crafted_audit(violations=1)),
    ]
    code, output = gate(*files, "--config", config)
    assert code == 1, output
    assert "service/storage.py:40:8" in output
    assert "LK001" in output
    assert "FAILED: 1 of 5 criteria not met: 0 lock-safety violations" in output


def test_a_report_path_that_cannot_be_written_is_exit_2_naming_it(
    tmp_path: Path, config: Path
) -> None:
    # Not a traceback with exit 1, which CI would read as "criteria not met".
    load = write_results(tmp_path / "load.json", crafted_load())
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    code, output = gate(load, "--config", config, "--junit", blocker / "junit.xml")
    assert code == 2, output
    assert f"--junit {blocker / 'junit.xml'}: cannot write" in output
    assert "Traceback" not in output


def stopped(results: LoadResults, stop: Stopped) -> LoadResults:
    """``results`` of a run that was stopped on purpose, as the file says."""
    return LoadResults.model_validate({**results.model_dump(), "stopped": stop.model_dump()})


def test_a_run_stopped_by_its_abort_on_fail_criterion_fails_on_it(
    tmp_path: Path, config: Path
) -> None:
    # The run's own figures are healthy (P95 50 ms): what stopped it (1.5 s) is what fails.
    stop = Stopped(by="criterion", at_s=12.0, criterion="P95 < 1 s", measured=1500.0)
    load = write_results(tmp_path / "load.json", stopped(crafted_load(errors=()), stop))
    code, output = gate(load, "--config", config)
    assert code == 1, output
    assert (
        "P95 < 1 s: 1500.0 ms, 500.0 ms (50.0 %) over the threshold (< 1000.0 ms); "
        "it stopped the run at 12.00 s"
    ) in output
    assert "FAILED: 1 of 3 criteria not met: P95 < 1 s" in output


def test_a_run_stopped_by_a_criterion_the_gate_was_not_given_is_refused(
    tmp_path: Path, config: Path
) -> None:
    stop = Stopped(by="criterion", at_s=12.0, criterion="P99 < 2 s", measured=2500.0)
    load = write_results(tmp_path / "load.json", stopped(crafted_load(errors=()), stop))
    code, output = gate(load, "--config", config)
    assert code == 2, output
    assert "stopped by the criterion 'P99 < 2 s', which is not among the criteria given" in output


def test_a_run_its_locustfile_stopped_is_judged_as_measured(tmp_path: Path, config: Path) -> None:
    stop = Stopped(by="locustfile", at_s=8.0)
    load = write_results(tmp_path / "load.json", stopped(crafted_load(errors=()), stop))
    code, output = gate(load, "--config", config)
    assert code == 0, output

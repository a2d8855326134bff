"""Run validity as coded reasons: the registry, each producer's code, idempotence, the rule that
an invalid run never passes (exit 4), and the ``stopped`` section, which is not a reason."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, get_args

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from loadkit.cli import app
from loadkit.config import LockAuditConfig
from loadkit.engines.smoke import aborted_smoke_results
from loadkit.exceptions import InputError
from loadkit.gate.evaluate import evaluate_criteria
from loadkit.lockaudit.run import write_failed_audit
from loadkit.measure.load_results import build_load_results, mark_aborted
from loadkit.measure.recorder import LatencyRecorder
from loadkit.measure.results import (
    GeneratorHealth,
    LoadResults,
    Stopped,
    read_results,
    with_reason,
    write_results,
)
from loadkit.measure.validity import (
    MEANINGS,
    InvalidCode,
    InvalidReason,
    aborted_reason,
    add_reason,
    generator_crashed_reason,
    incomplete_reason,
    no_requests_reason,
    overload_reason,
    worker_share_missing_reason,
)
from loadkit.report.smoke import render_smoke_table
from tests.loadkit.crafted import SEED, crafted_audit, crafted_load, crafted_smoke, overloaded

DOCS = Path(__file__).resolve().parents[2] / "docs" / "results.md"

# One reason per code, as its producer gives it.
PRODUCED: dict[InvalidCode, InvalidReason] = {
    "aborted": aborted_reason("interrupted (Ctrl-C or SIGTERM)"),
    "generator_overloaded": overload_reason(cpu_warnings=2, max_cpu_percent=97.4),
    "incomplete": incomplete_reason(ran_s=6.04, planned_s=20.0),
    "worker_share_missing": worker_share_missing_reason(["worker-a", "worker-b"]),
    "generator_crashed": generator_crashed_reason(exit_code=-9),
    "no_requests": no_requests_reason("12 exception(s) in user code"),
    "unspecified": InvalidReason(code="unspecified", detail="only 3 of 10 users spawned"),
}


# --- the registry --------------------------------------------------------------------------------


def test_every_code_has_a_meaning_and_a_producer_here() -> None:
    assert set(MEANINGS) == set(get_args(InvalidCode)) == set(PRODUCED)


def test_docs_list_every_code_with_its_meaning() -> None:
    section = DOCS.read_text().split("### Validity codes", 1)[1].split("\n#", 1)[0]
    rows = dict(re.findall(r"^\| `([a-z_]+)` \| (.+) \|$", section, re.MULTILINE))
    assert {code: rows.get(code) for code in MEANINGS} == dict(MEANINGS)


def test_an_unknown_code_is_refused() -> None:
    with pytest.raises(ValidationError):
        InvalidReason.model_validate({"code": "overloaded", "detail": "x"})


# --- producers -----------------------------------------------------------------------------------


def test_producers_say_what_was_measured() -> None:
    assert PRODUCED["generator_overloaded"].detail.startswith(
        "a load generator process ran above 90 % CPU (2 warning(s), peak 97 %)"
    )
    assert PRODUCED["incomplete"].detail == "the test stopped after 6.0 s of the planned 20 s"
    assert PRODUCED["worker_share_missing"].detail == (
        "no final share from worker(s) worker-a, worker-b; their last seconds are missing"
    )
    assert "killed by SIGKILL" in PRODUCED["generator_crashed"].detail
    assert "exited with code 1" in generator_crashed_reason(exit_code=1).detail
    assert str(PRODUCED["aborted"]) == "aborted: interrupted (Ctrl-C or SIGTERM)"


def test_an_overloaded_generator_always_carries_its_reason() -> None:
    # Through the builder, and through validation: a file that says overloaded but gives no
    # reason is read as invalid, never as a valid run.
    built = overloaded(crafted_load(), GeneratorHealth(overloaded=True, cpu_warnings=1))
    assert [r.code for r in built.invalid_reasons] == ["generator_overloaded"]
    data = crafted_load().model_dump(mode="json", by_alias=True)
    data["generator"]["overloaded"] = True
    read = LoadResults.model_validate(data)
    assert not read.valid and [r.code for r in read.invalid_reasons] == ["generator_overloaded"]


def test_a_measured_overload_is_kept_beside_its_reason() -> None:
    recorder = LatencyRecorder(start=0.0)
    recorder.record(endpoint="GET /", latency_s=0.01, end=0.5)
    recorder.finish(end=1.0)
    generator = GeneratorHealth(overloaded=True, cpu_warnings=3, max_cpu_percent=99.0)
    results = build_load_results(recorder, target="http://x", config={}, generator=generator)
    assert results.generator == generator
    assert "3 warning(s), peak 99 %" in results.invalid_reasons[0].detail


def test_smoke_and_lock_audit_that_could_not_run_are_aborted(tmp_path: Path) -> None:
    smoke = aborted_smoke_results(host="http://127.0.0.1:9", reason="cannot reach it")
    assert smoke.invalid_reasons == [InvalidReason(code="aborted", detail="cannot reach it")]
    audit_path = write_failed_audit(
        tmp_path / "locks.json", [Path("service")], LockAuditConfig(), "x.py: cannot parse"
    )
    audit = read_results(audit_path)
    assert audit.aborted and not audit.valid
    assert audit.invalid_reasons == [InvalidReason(code="aborted", detail="x.py: cannot parse")]


def test_the_smoke_report_says_why_a_run_is_invalid() -> None:
    text = render_smoke_table(
        aborted_smoke_results(host="http://127.0.0.1:9", reason="cannot reach it")
    )
    assert "INVALID" in text and "  - aborted: cannot reach it" in text
    assert "INVALID" not in render_smoke_table(crafted_smoke())


# --- validity is the reasons alone ---------------------------------------------------------------


def test_valid_and_aborted_are_derived_from_the_codes() -> None:
    run = crafted_load()
    assert run.valid and not run.aborted
    incomplete = with_reason(run, PRODUCED["incomplete"])
    assert not incomplete.valid and not incomplete.aborted
    assert with_reason(incomplete, PRODUCED["aborted"]).aborted
    assert "aborted" not in run.model_dump(by_alias=True)  # no second copy of the truth


def test_adding_a_reason_of_a_code_already_there_is_idempotent() -> None:
    first = aborted_reason("interrupted (Ctrl-C or SIGTERM)")
    again = aborted_reason("ran past its time bound")
    assert add_reason([first], again) == [first]
    assert add_reason([first], PRODUCED["incomplete"]) == [first, PRODUCED["incomplete"]]
    run = mark_aborted(crafted_load(), "interrupted (Ctrl-C or SIGTERM)")
    assert mark_aborted(run, "ran past its time bound") is run
    assert with_reason(run, again) is run


@pytest.mark.parametrize("code", sorted(PRODUCED))
def test_the_gate_never_passes_a_run_with_a_reason(code: InvalidCode) -> None:
    run = with_reason(crafted_load(), PRODUCED[code])
    report = evaluate_criteria(SEED, [("load.json", run)])
    assert report.outcome == "invalid"
    assert report.runs[0].reasons == (PRODUCED[code],)
    assert {v.status for v in report.verdicts if v.source == "load.json"} == {"invalid"}


def test_an_invalid_lock_audit_with_no_violations_is_still_invalid() -> None:
    report = evaluate_criteria(SEED, [("locks.json", crafted_audit(aborted=True))])
    assert report.outcome == "invalid"


@pytest.mark.parametrize("code", sorted(PRODUCED))
def test_gate_exits_4_for_a_results_file_with_a_reason(tmp_path: Path, code: InvalidCode) -> None:
    config = tmp_path / "acceptance.toml"
    config.write_text('[[criteria]]\nmetric = "load.p95_ms"\nop = "<"\nthreshold = 1000\n')
    load = write_results(tmp_path / "load.json", with_reason(crafted_load(), PRODUCED[code]))
    result = CliRunner().invoke(app, ["gate", str(load), "--config", str(config)])
    assert result.exit_code == 4, result.output
    assert f"{code}: {PRODUCED[code].detail}" in result.output


# --- stopped: a run ended on purpose is valid ----------------------------------------------------


def test_a_stopped_run_is_valid_and_round_trips(tmp_path: Path) -> None:
    stopped = Stopped(by="criterion", at_s=12.5, criterion="P95 < 1 s", measured=1040.0)
    run = crafted_load().model_copy(update={"stopped": stopped})
    assert run.valid
    again = read_results(write_results(tmp_path / "load.json", run))
    assert isinstance(again, LoadResults)
    assert again.stopped == stopped and again.valid
    plain = read_results(write_results(tmp_path / "plain.json", crafted_load()))
    assert isinstance(plain, LoadResults) and plain.stopped is None


@pytest.mark.parametrize(
    ("stopped", "problem"),
    [
        ({"by": "criterion", "at_s": 3}, "names the criterion"),
        ({"by": "locustfile", "at_s": 3, "criterion": "P95 < 1 s"}, 'by "criterion"'),
        ({"by": "timer", "at_s": 3}, "stopped.by"),
        ({"by": "user", "at_s": -1}, "stopped.at_s"),
    ],
)
def test_a_stopped_section_that_makes_no_sense_is_refused(
    tmp_path: Path, stopped: dict[str, Any], problem: str
) -> None:
    data = crafted_load().model_dump(mode="json", by_alias=True)
    path = tmp_path / "load.json"
    path.write_text(json.dumps({**data, "stopped": stopped}))
    with pytest.raises(InputError, match=re.escape(problem)):
        read_results(path)

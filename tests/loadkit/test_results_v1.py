"""``loadkit.results/1`` files, written by the loadkit before ``/2`` (fixtures/results_v1), read
as they meant: the same runs valid, the others invalid for the same reasons, now coded."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from loadkit.cli import app
from loadkit.exceptions import InputError
from loadkit.measure.results import (
    SCHEMA,
    LoadResults,
    LockAuditResults,
    SmokeResults,
    dump_results,
    parse_results,
    read_results,
)
from loadkit.measure.validity import InvalidReason

V1 = Path(__file__).parent / "fixtures" / "results_v1"

EXPECTED: dict[str, list[InvalidReason]] = {
    "load_valid.json": [],
    "load_aborted.json": [
        InvalidReason(code="aborted", detail="the run was stopped before its planned end")
    ],
    "load_timed_out.json": [InvalidReason(code="aborted", detail="ran past its time bound")],
    "load_overloaded.json": [
        InvalidReason(
            code="generator_overloaded",
            detail="a load generator process ran above 90 % CPU (2 warning(s), peak 97 %); its "
            "latencies include its own queueing. Use more --processes or a lighter scenario",
        )
    ],
    "load_incomplete.json": [
        InvalidReason(code="incomplete", detail="the test stopped after 6.0 s of the planned 20 s")
    ],
    "load_distributed_incomplete.json": [
        InvalidReason(
            code="worker_share_missing",
            detail="no final share from worker(s) worker-b; their last seconds are missing",
        )
    ],
    "smoke_aborted.json": [
        InvalidReason(
            code="aborted", detail="cannot reach http://127.0.0.1:8000: connection refused"
        )
    ],
    "lock_audit_aborted.json": [
        InvalidReason(
            code="aborted", detail="service/broken.py: cannot parse: invalid syntax (line 3)"
        )
    ],
    "lock_audit_valid.json": [],
}


def v1(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((V1 / name).read_text())
    assert data["schema"] == "loadkit.results/1"
    return data


def test_every_fixture_is_checked() -> None:
    assert {path.name for path in V1.glob("*.json")} == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_a_v1_file_reads_with_its_validity_coded(name: str) -> None:
    results = read_results(V1 / name)
    assert results.invalid_reasons == EXPECTED[name]
    assert results.valid == (not EXPECTED[name])
    assert results.aborted == v1(name)["aborted"]


def test_a_v1_file_keeps_its_numbers_and_reads_as_v2() -> None:
    results = read_results(V1 / "load_overloaded.json")
    assert isinstance(results, LoadResults)
    assert results.schema_ == SCHEMA == "loadkit.results/2"
    assert results.generator.overloaded and results.generator.max_cpu_percent == 97.3
    data = v1("load_overloaded.json")
    assert results.totals.model_dump() == data["totals"]
    assert results.histogram.model_dump() == data["histogram"]
    # Written again, it is a /2 file that reads back the same.
    assert parse_results(json.loads(dump_results(results)), source="again") == results


def test_kinds_are_kept() -> None:
    assert isinstance(read_results(V1 / "smoke_aborted.json"), SmokeResults)
    assert isinstance(read_results(V1 / "lock_audit_valid.json"), LockAuditResults)


def test_an_unrecognised_v1_reason_still_makes_the_run_invalid() -> None:
    data = {**v1("load_valid.json"), "invalid_reasons": ["only 3 of 10 users spawned", "odd"]}
    results = parse_results(data, source="old.json")
    assert not results.valid
    assert results.invalid_reasons == [
        InvalidReason(code="unspecified", detail="only 3 of 10 users spawned"),
        InvalidReason(code="unspecified", detail="odd"),
    ]


def test_v1_flags_without_a_reason_become_reasons() -> None:
    aborted = parse_results({**v1("load_valid.json"), "aborted": True}, source="old.json")
    assert [r.code for r in aborted.invalid_reasons] == ["aborted"]
    data = v1("load_valid.json")
    data["generator"] = {**data["generator"], "overloaded": True}
    overloaded = parse_results(data, source="old.json")
    assert [r.code for r in overloaded.invalid_reasons] == ["generator_overloaded"]


def test_a_v1_file_with_a_bad_aborted_flag_is_refused() -> None:
    message = "old.json: invalid loadkit results file: aborted: 'yes' is not true or false"
    with pytest.raises(InputError, match=re.escape(message)):
        parse_results({**v1("load_valid.json"), "aborted": "yes"}, source="old.json")


def test_a_v1_reason_that_is_not_text_is_refused_naming_it() -> None:
    with pytest.raises(InputError, match=r"invalid_reasons\.0"):
        parse_results({**v1("load_valid.json"), "invalid_reasons": [3]}, source="old.json")


def test_the_gate_reads_v1_files(tmp_path: Path) -> None:
    config = tmp_path / "acceptance.toml"
    config.write_text('[[criteria]]\nmetric = "load.p95_ms"\nop = "<"\nthreshold = 1000\n')
    runner = CliRunner()
    valid = runner.invoke(app, ["gate", str(V1 / "load_valid.json"), "--config", str(config)])
    assert valid.exit_code == 0, valid.output
    invalid = runner.invoke(
        app, ["gate", str(V1 / "load_distributed_incomplete.json"), "--config", str(config)]
    )
    assert invalid.exit_code == 4, invalid.output
    assert "worker_share_missing: no final share from worker(s) worker-b" in invalid.output

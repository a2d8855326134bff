"""The results file: round trip, atomic writes, and refusals that say what is wrong."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from loadkit.exceptions import InputError
from loadkit.measure.histogram import LatencyHistogram
from loadkit.measure.recorder import LatencyRecorder
from loadkit.measure.results import (
    SCHEMA,
    LoadResults,
    LockAuditResults,
    SmokeCheckResult,
    SmokeResults,
    dump_results,
    read_results,
    write_results,
)

T0 = 1_760_000_000.0


def recorded_load() -> LoadResults:
    """Load results as the runner builds them: through the real recorder."""
    recorder = LatencyRecorder(start=T0)
    for i in range(200):
        failed = i % 10 == 0
        recorder.record(
            endpoint="POST /api/auth/login" if i % 2 else "GET /api/items",
            latency_s=0.001 * (i + 1),
            end=T0 + i * 0.02,
            error_kind="storage_lock_timeout" if failed else None,
            status=503 if failed else 200,
            trace_id=f"trace-{i}" if failed else None,
        )
    recorder.record(endpoint="GET /api/items", latency_s=2.0, end=T0 + 6.0)
    recorder.finish(end=T0 + 6.5)
    overall = recorder.overall_histogram()
    return LoadResults(
        target="http://127.0.0.1:8000",
        started_at=recorder.started_at,
        duration_s=recorder.duration_s(),
        config={"scenario": "login", "concurrency": 10, "duration_s": 6.5},
        totals=recorder.totals(),
        latency_ms=overall.summary(),
        histogram=overall.encode(),
        endpoints=recorder.endpoint_results(),
        errors=recorder.error_groups(),
        timeline=recorder.timeline(),
        longest_stall=recorder.longest_stall(),
    )


def smoke_results() -> SmokeResults:
    histogram = LatencyHistogram()
    histogram.record_us(12_345.0)
    return SmokeResults(
        target="http://127.0.0.1:8000",
        started_at=datetime(2026, 11, 28, 12, 0, tzinfo=UTC),
        duration_s=0.2,
        totals=recorded_load().totals.model_copy(
            update={"requests": 1, "ok": 1, "errors": 0, "error_rate": 0.0}
        ),
        latency_ms=histogram.summary(),
        histogram=histogram.encode(),
        checks=[
            SmokeCheckResult(
                name="health",
                method="GET",
                path="/health",
                expected_status=200,
                status=200,
                passed=True,
                latency_ms=12.345,
            )
        ],
    )


def test_load_results_round_trip(tmp_path: Path) -> None:
    results = recorded_load()
    assert results.longest_stall is not None
    path = write_results(tmp_path / "runs" / "load.json", results)
    reread = read_results(path)
    assert reread == results
    # The encoded histogram read back still merges into the same figures.
    assert isinstance(reread, LoadResults)
    decoded = LatencyHistogram.decode(reread.histogram)
    assert decoded.summary() == results.latency_ms


def test_locusts_exit_code_is_optional_and_round_trips(tmp_path: Path) -> None:
    # Optional in /2: a file without it (older, or not from `loadkit load`) reads as unknown.
    unknown = read_results(write_json(tmp_path, valid_load_dict()))
    assert isinstance(unknown, LoadResults) and unknown.locust_exit_code is None
    results = recorded_load().model_copy(update={"locust_exit_code": 1})
    reread = read_results(write_results(tmp_path / "load.json", results))
    assert isinstance(reread, LoadResults) and reread.locust_exit_code == 1
    with pytest.raises(InputError, match="locust_exit_code"):
        read_results(write_json(tmp_path, valid_load_dict() | {"locust_exit_code": -1}))


def test_smoke_and_lock_audit_results_round_trip(tmp_path: Path) -> None:
    smoke = smoke_results()
    assert read_results(write_results(tmp_path / "smoke.json", smoke)) == smoke
    audit = LockAuditResults(
        target="service",
        started_at=datetime(2026, 11, 28, tzinfo=UTC),
        duration_s=0.1,
        files_checked=12,
        violations=0,
    )
    assert read_results(write_results(tmp_path / "locks.json", audit)) == audit


def test_file_carries_schema_and_kind(tmp_path: Path) -> None:
    data = orjson.loads(dump_results(recorded_load()))
    assert data["schema"] == SCHEMA == "loadkit.results/2"
    assert data["kind"] == "load"
    assert data["histogram"]["encoding"] == "hdrhistogram-v2-base64"


def test_write_is_atomic_and_leaves_no_temp_files(tmp_path: Path) -> None:
    path = tmp_path / "load.json"
    write_results(path, recorded_load())
    write_results(path, smoke_results())  # replaces the file whole
    assert read_results(path).kind == "smoke"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["load.json"]


def write_json(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "results.json"
    path.write_bytes(orjson.dumps(data))
    return path


def valid_load_dict() -> dict[str, Any]:
    data: dict[str, Any] = orjson.loads(dump_results(recorded_load()))
    return data


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not json at all", "not a loadkit results file (not JSON"),
        (b"[1, 2, 3]", 'not a loadkit results file (no "schema" field)'),
        (b'{"requests": 10}', 'not a loadkit results file (no "schema" field)'),
        (b'{"schema": "locust.stats/1"}', "not a loadkit results file (schema 'locust.stats/1')"),
        (b'{"schema": "loadkit.results/one"}', "unknown results schema"),
        (b'{"schema": "loadkit.results/3", "kind": "load"}', "written by a newer loadkit"),
        (b'{"schema": "loadkit.results/0"}', "no longer supported"),
    ],
)
def test_files_that_are_not_loadkit_results_are_refused(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "results.json"
    path.write_bytes(content)
    with pytest.raises(InputError) as caught:
        read_results(path)
    assert str(path) in str(caught.value)
    assert message in str(caught.value)


def test_newer_schema_says_to_upgrade(tmp_path: Path) -> None:
    data = valid_load_dict() | {"schema": "loadkit.results/7"}
    with pytest.raises(InputError, match="upgrade loadkit"):
        read_results(write_json(tmp_path, data))


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"kind": "chaos"}, "kind"),
        ({"totals": None}, "totals"),
        ({"duration_s": -1}, "duration_s"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_invalid_fields_are_named(tmp_path: Path, change: dict[str, object], where: str) -> None:
    data = valid_load_dict() | change
    with pytest.raises(InputError, match="invalid loadkit results file") as caught:
        read_results(write_json(tmp_path, data))
    assert where in str(caught.value)


def test_totals_that_do_not_add_up_are_refused(tmp_path: Path) -> None:
    data = valid_load_dict()
    totals = dict(data["totals"])
    totals["ok"] = totals["ok"] + 1
    with pytest.raises(InputError, match=r"ok \(\d+\) \+ errors"):
        read_results(write_json(tmp_path, data | {"totals": totals}))


def test_error_groups_that_do_not_add_up_to_the_totals_are_refused(tmp_path: Path) -> None:
    # Else `errors.<kind> == 0` would pass a file whose groups were dropped.
    data = valid_load_dict()
    assert data["errors"]
    with pytest.raises(InputError, match=r"the error groups count 0 errors but totals\.errors"):
        read_results(write_json(tmp_path, data | {"errors": []}))


def test_endpoints_that_do_not_add_up_to_the_totals_are_refused(tmp_path: Path) -> None:
    data = valid_load_dict()
    endpoints = list(data["endpoints"])
    assert len(endpoints) > 1
    with pytest.raises(InputError, match="the endpoints add up to"):
        read_results(write_json(tmp_path, data | {"endpoints": endpoints[:1]}))


def test_missing_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such results file"):
        read_results(tmp_path / "absent.json")

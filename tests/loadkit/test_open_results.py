"""The open model's optional fields of ``loadkit.results/2``: written, read back, and refused
when their figures are impossible."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from loadkit.exceptions import InputError
from loadkit.measure.recorder import LatencyRecorder
from loadkit.measure.results import LoadResults, parse_results, read_results, write_results
from tests.loadkit.open_runs import (
    STAGES,
    T0,
    freeze_timetable,
    open_results,
    record_open,
    schedule_of,
)


def open_staged_results() -> LoadResults:
    requests = freeze_timetable()
    recorder = LatencyRecorder(start=T0, stages=STAGES)
    record_open(recorder, requests, errors_every=9)
    recorder.record_not_sent(count=2, due=[T0 + 2.98, T0 + 2.99], end=T0 + 3.0)
    schedule = schedule_of(requests, rate=100, lags_s=[0.001] * 50, not_sent=2)
    return open_results(recorder, end=T0 + 3.0, schedule=schedule)


@pytest.fixture(scope="module")
def open_dict() -> dict[str, Any]:
    return open_staged_results().model_dump(mode="json", by_alias=True)


def test_open_results_round_trip(tmp_path: Path) -> None:
    results = open_staged_results()
    assert results.valid, results.invalid_reasons
    assert results.service_time_ms is not None and results.schedule is not None
    assert results.stages is not None and len(results.stages) == 2
    path = write_results(tmp_path / "open.json", results)
    assert read_results(path) == results


def _with(data: dict[str, Any], path: str, value: object) -> dict[str, Any]:
    changed = copy.deepcopy(data)
    *parents, last = path.split(".")
    node: Any = changed
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return changed


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("service_time_ms.count", 5, "must equal the requests sent"),
        ("service_histogram", None, "come together"),
        ("endpoints.0.service_time_ms.p99", 990.0, "above latency_ms.p99"),
        ("endpoints.0.service_time_ms.count", 7, "must equal the requests sent"),
        ("schedule.iterations_due", 1000, "every due iteration is dispatched or not sent"),
        ("schedule.not_sent", 1, "every due iteration"),
        ("schedule.achieved_rate", 250.0, "iterations_dispatched / duration_s"),
        ("schedule.lag_ms.count", 49, "lag_histogram.count"),
        ("schedule.lag_bound_ms", 0, "greater than 0"),
        ("schedule.drain_s", -1.0, "greater than or equal to 0"),
        ("stages.1.requests", 1, "ok"),
        ("stages.1.index", 3, "not 2"),
        ("stages.0.rps", 1.0, "requests / (end_s - start_s)"),
        ("stages.0.end_s", 0.0, "not after start_s"),
        ("stages.1.not_sent", 50, "above errors"),
    ],
)
def test_impossible_open_figures_are_refused(
    open_dict: dict[str, Any], path: str, value: object, message: str
) -> None:
    with pytest.raises(InputError, match="invalid loadkit results file") as caught:
        parse_results(_with(open_dict, path, value), source="open.json")
    assert message in str(caught.value)


def test_schedule_and_stages_must_agree_with_the_rest_of_the_file(
    open_dict: dict[str, Any],
) -> None:
    no_schedule = _with(open_dict, "schedule", None)
    with pytest.raises(InputError, match="not_sent errors in a run without a schedule"):
        parse_results(no_schedule, source="open.json")
    both = _with(open_dict, "schedule.not_sent", 3)
    both = _with(both, "schedule.iterations_due", both["schedule"]["iterations_due"] + 1)
    with pytest.raises(InputError, match=r"schedule.not_sent \(3\) != the not_sent errors \(2\)"):
        parse_results(both, source="open.json")
    stage = open_dict["stages"][1]
    moved = _with(open_dict, "stages.1.errors", stage["errors"] - 1)
    moved = _with(moved, "stages.1.ok", stage["ok"] + 1)
    moved = _with(moved, "stages.1.error_rate", (stage["errors"] - 1) / stage["requests"])
    with pytest.raises(InputError, match="the stages add up to"):
        parse_results(moved, source="open.json")
    gap = _with(open_dict, "stages.1.start_s", 1.5)
    gap = _with(gap, "stages.1.rps", stage["requests"] / 1.5)
    with pytest.raises(InputError, match="is not the previous stage's end_s"):
        parse_results(gap, source="open.json")


def test_files_without_the_open_fields_still_read(open_dict: dict[str, Any]) -> None:
    closed = copy.deepcopy(open_dict)
    for key in ("service_time_ms", "service_histogram", "schedule", "stages"):
        closed.pop(key)
    closed["errors"] = [g for g in closed["errors"] if g["kind"] != "not_sent"]
    unsent = next(e for e in closed["endpoints"] if e["name"] == "(not sent)")
    closed["endpoints"].remove(unsent)
    for endpoint in closed["endpoints"]:
        endpoint.pop("service_time_ms")
        endpoint.pop("service_histogram")
    for point in closed["timeline"]:
        point.pop("service_histogram", None)
    requests = closed["totals"]["requests"] - 2
    errors = closed["totals"]["errors"] - 2
    closed["totals"].update(requests=requests, errors=errors, ok=requests - errors)
    closed["totals"]["error_rate"] = errors / requests
    closed["latency_ms"] = closed["endpoints"][0]["latency_ms"]
    closed["histogram"] = closed["endpoints"][0]["histogram"]
    results = parse_results(closed, source="older.json")
    assert isinstance(results, LoadResults)
    assert results.service_time_ms is None and results.schedule is None and results.stages is None

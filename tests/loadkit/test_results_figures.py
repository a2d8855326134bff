"""Impossible figures in a results file are refused when it is read, with the field and the values
named; every file loadkit itself writes passes that check (issue 13: "the gate believes
impossible figures")."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from loadkit.cli import app
from loadkit.exceptions import InputError
from loadkit.measure.histogram import HIGHEST_US, LatencyHistogram
from loadkit.measure.recorder import LatencyRecorder
from loadkit.measure.results import LoadResults, dump_results, read_results, write_results
from tests.loadkit.crafted import LOGIN, T0, crafted_load

runner = CliRunner()


def load_dict() -> dict[str, Any]:
    data: dict[str, Any] = orjson.loads(dump_results(crafted_load()))
    return data


def changed(path: str, value: object) -> dict[str, Any]:
    """A valid load results document with the field at ``path`` (dotted, indexes as digits)
    set to ``value``."""
    data = load_dict()
    *parents, last = path.split(".")
    node: Any = data
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    node[int(last) if last.isdigit() else last] = value
    return data


def write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "load.json"
    path.write_bytes(orjson.dumps(data))
    return path


@pytest.mark.parametrize(
    ("path", "value", "named"),
    [
        ("latency_ms.p95", -5, "latency_ms.p95"),
        ("latency_ms.min", -0.001, "latency_ms.min"),
        ("latency_ms.p95", 1e9, "p95 (1e+09) is above p99"),
        ("latency_ms.max", 0.0015, "is above max (0.0015)"),
        ("latency_ms.p50", 0.0, "min (50) is above p50 (0)"),
        ("latency_ms.mean", 1e9, "mean (1e+09) is outside min"),
        ("latency_ms.p99", "nan", "latency_ms.p99: Input should be a finite number (got 'nan')"),
        ("latency_ms.max", "Infinity", "latency_ms.max: Input should be a finite number"),
        ("latency_ms.count", 0, "count is 0 but min is 50"),
        ("endpoints.0.latency_ms.p95", -5, f"endpoints['{LOGIN}'].latency_ms.p95"),
        ("endpoints.0.latency_ms.p999", 1e9, "p999 (1e+09) is above max"),
        ("endpoints.0.requests", -1, f"endpoints['{LOGIN}'].requests"),
        ("endpoints.0.error_rate", 0.0, "error_rate (0) is not errors / requests"),
        ("totals.error_rate", 0.0, "error_rate (0) is not errors / requests (5 / 95)"),
        ("totals.rps", -1, "totals.rps"),
        ("errors.0.first_s", 1e6, "first_s (1e+06) is after last_s"),
        ("histogram.min_us", 1e12, "min_us (1e+12) is above max_us"),
        ("timeline.0.p95_ms", -1, "timeline.0.p95_ms"),
        ("longest_stall", {"start_s": 1, "end_s": 1e308, "duration_s": 1e308}, "past any date"),
        ("longest_stall", {"start_s": 5, "end_s": 1, "duration_s": 0}, "start_s (5) is after"),
        # An 8 s freeze written down as 0.2 s would pass a max_stall_s criterion.
        ("longest_stall", {"start_s": 1, "end_s": 9, "duration_s": 0.2}, "is not end_s - start_s"),
        # One fast latency standing for 95 requests would hide what the others took.
        ("latency_ms.count", 1, "latency_ms.count (1) and histogram.count (95) must equal"),
        ("histogram.count", 3, "histogram.count (3) must equal the requests (95)"),
    ],
)
def test_impossible_figures_are_refused_naming_the_field_and_values(
    tmp_path: Path, path: str, value: object, named: str
) -> None:
    with pytest.raises(InputError, match="invalid loadkit results file") as caught:
        read_results(write(tmp_path, changed(path, value)))
    assert named in str(caught.value)


def test_the_gate_refuses_a_negative_p95_with_exit_2_naming_it(tmp_path: Path) -> None:
    config = tmp_path / "acceptance.toml"
    config.write_text('[[criteria]]\nmetric = "load.p95_ms"\nop = "<"\nthreshold = 1000\n')
    results = write(tmp_path, changed("latency_ms.p95", -5))
    result = runner.invoke(app, ["gate", str(results), "--config", str(config)])
    assert result.exit_code == 2, result.output
    assert "latency_ms.p95" in result.output
    assert "(got -5)" in result.output


def test_a_p95_above_max_does_not_pass_the_gate(tmp_path: Path) -> None:
    data = changed("latency_ms.max", 60.0)  # every percentile of crafted_load is 50 ms
    data["latency_ms"].update(p95=70.0, p99=70.0, p999=70.0)
    config = tmp_path / "acceptance.toml"
    config.write_text('[[criteria]]\nmetric = "load.p95_ms"\nop = "<"\nthreshold = 1000\n')
    result = runner.invoke(app, ["gate", str(write(tmp_path, data)), "--config", str(config)])
    assert result.exit_code == 2, result.output
    assert "p999 (70) is above max (60)" in result.output


def recorded(latencies_s: list[float]) -> LoadResults:
    recorder = LatencyRecorder(start=T0)
    for index, latency in enumerate(latencies_s):
        recorder.record(endpoint=LOGIN, latency_s=latency, end=T0 + 0.001 * (index + 1))
    recorder.finish(end=T0 + 1.0)
    return LoadResults(target="http://t", **recorder.traffic_fields())


@pytest.mark.parametrize(
    "latencies_s",
    [
        pytest.param([1329.5001434113524e-6], id="single value whose mean rounded below min"),
        pytest.param([0.0005], id="single value"),
        pytest.param([-0.5, 0.0, 1e-9], id="clamped below the lowest bucket"),
        pytest.param([(HIGHEST_US + 5_000_000) / 1e6] * 3, id="clamped above the highest"),
        pytest.param([0.0001, 90.0, 0.05, 0.05, 120.0], id="both ends and the middle"),
        pytest.param([0.0123456789 * (i % 97 + 1) for i in range(2000)], id="many values"),
    ],
)
def test_what_the_recorder_writes_always_reads_back(
    tmp_path: Path, latencies_s: list[float]
) -> None:
    results = recorded(latencies_s)
    path = write_results(tmp_path / "load.json", results)
    back = read_results(path)
    assert isinstance(back, LoadResults)
    assert back.latency_ms == results.latency_ms
    assert back.latency_ms.min is not None and back.latency_ms.max is not None
    assert back.latency_ms.min <= back.latency_ms.mean <= back.latency_ms.max  # type: ignore[operator]


def test_a_single_value_gives_a_mean_equal_to_min_and_max() -> None:
    # Its sum is kept to the ns and its min exact: the mean once rounded 1 µs below the min.
    histogram = LatencyHistogram()
    histogram.record_us(1329.5001434113524)
    summary = histogram.summary()
    assert summary.min == summary.mean == summary.max == 1.33


def test_a_recorded_run_with_errors_and_a_stall_reads_back(tmp_path: Path) -> None:
    # Error groups, timeline and the stall carry times of their own: all pass the reader.
    results = crafted_load(stall=(2.0, 8.0))
    assert results.longest_stall is not None and results.errors
    back = read_results(write_results(tmp_path / "load.json", results))
    assert back == results


def test_a_mean_one_microsecond_outside_min_from_an_older_loadkit_still_reads(
    tmp_path: Path,
) -> None:
    # loadkit before 2026-12 rounded the mean apart from the exact min: 1 µs, never more.
    read_results(write(tmp_path, changed("latency_ms.mean", 49.999)))
    with pytest.raises(InputError, match=r"mean \(49\.99\) is outside min"):
        read_results(write(tmp_path, changed("latency_ms.mean", 49.99)))

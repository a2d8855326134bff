"""Windows (DESIGN, "Windows"): a criterion judges the span of the run its `window` names, on
figures merged exactly from the timeline's per-second histograms or a stage's own figures."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from loadkit.config import LoadProfile, StageConfig, parse_config
from loadkit.engines.http_request import RequestSpec
from loadkit.exceptions import ConfigError, InputError
from loadkit.gate.evaluate import SlowestSeconds, evaluate_criteria
from loadkit.measure.histogram import LatencyHistogram
from loadkit.measure.recorder import LatencyRecorder
from loadkit.measure.results import LoadResults, Stopped, read_results, write_results
from loadkit.report.gate import gate_verdict_data, render_gate_table
from loadkit.run.native import run_native_load
from loadkit.stages import Stage
from loadkit.windows import parse_window
from tests.loadkit.crafted import criterion, judge, only
from tests.loadkit.native_servers import scheduled_server_process

T0 = 1_000.0


def slow_start_run(*, slow_s: int = 4, seconds: int = 20, per_second: int = 50) -> LoadResults:
    """A closed run of 10 users spawned at 2.5/s (ramp-up: 4 s): 400 ms latencies while the
    users spawn, 10 ms after; ``per_second`` completions in each second."""
    recorder = LatencyRecorder(start=T0)
    for second in range(seconds):
        latency = 0.4 if second < slow_s else 0.01
        for n in range(per_second):
            recorder.record(
                endpoint="GET /items",
                latency_s=latency + n * 1e-5,
                end=T0 + second + (n + 0.5) / per_second,
                error_kind="timeout" if second < slow_s and n % 5 == 0 else None,
            )
    recorder.finish(end=T0 + seconds)
    return LoadResults(
        target="http://127.0.0.1:1",
        config={"scenario": "url", "model": "closed", "concurrency": 10, "spawn_rate": 2.5},
        **recorder.traffic_fields(),
    )


@pytest.mark.parametrize(
    ("text", "kind", "start", "end", "stage"),
    [
        ("all", "all", 0, None, None),
        ("steady", "steady", 0, None, None),
        ("from 10s", "seconds", 10, None, None),
        ("10s-40s", "seconds", 10, 40, None),
        ("stage:2", "stage", 0, None, 2),
        ("stage:peak", "stage", 0, None, "peak"),
    ],
)
def test_each_form_of_the_window_key_parses(
    text: str, kind: str, start: int, end: int | None, stage: int | str | None
) -> None:
    window = parse_window(text)
    assert (window.kind, window.start_s, window.end_s, window.stage) == (kind, start, end, stage)


@pytest.mark.parametrize(
    "text", ["steady state", "from 10", "10.5s-20s", "40s-10s", "stage:0", "stage: "]
)
def test_a_window_that_cannot_be_judged_exactly_is_refused_naming_it(text: str) -> None:
    with pytest.raises(ValueError, match="window"):
        parse_window(text)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"window": "steady", "endpoint": "GET /items"}, "not per endpoint"),
        ({"window": "from 5s", "metric": "load.max_stall_s"}, "cannot judge"),
        ({"window": "from 5s", "metric": "load.errors.timeout"}, "cannot judge"),
        ({"window": "stage:1", "metric": "smoke.checks_passed"}, "load metrics only"),
        ({"window": "the middle"}, "is not one of"),
    ],
)
def test_the_acceptance_file_refuses_a_window_its_metric_cannot_have(
    extra: dict[str, object], message: str
) -> None:
    fields: dict[str, object] = {"metric": "load.p95_ms", "op": "<", "threshold": 100, **extra}
    with pytest.raises(ValueError, match=message):
        criterion(**fields)  # type: ignore[arg-type]


def test_steady_excludes_a_slow_ramp_up_a_whole_run_criterion_fails_on() -> None:
    results = slow_start_run()
    whole = only(judge(criterion("load.p95_ms", "<", 100), results))
    steady = only(judge(criterion("load.p95_ms", "<", 100, window="steady"), results))
    assert whole.status == "failed" and whole.measured is not None and whole.measured > 400
    assert steady.status == "passed"
    assert steady.window is not None and "4 s-20 s" in steady.window
    assert "spawning 10 users" in steady.window
    assert "over steady (4 s-20 s" in render_gate_table(judge(criterion(
        "load.p95_ms", "<", 100, window="steady"), results))  # fmt: skip


def test_a_window_of_seconds_is_exact_not_an_average_of_seconds() -> None:
    results = slow_start_run()
    window = only(judge(criterion("load.p99_ms", "<=", 1e9, window="2s-6s"), results))
    # The truth: the same requests in one histogram (seconds 2 and 3 slow, 4 and 5 fast).
    truth = LatencyHistogram()
    for second in range(2, 6):
        for n in range(50):
            truth.record_us(((0.4 if second < 4 else 0.01) + n * 1e-5) * 1e6)
    assert window.measured == truth.summary().p99
    errors = only(judge(criterion("load.error_rate", "<", 1, window="2s-6s"), results))
    assert errors.measured == pytest.approx(20 / 200)  # 10 timeouts in each slow second
    rps = only(judge(criterion("load.rps", ">", 0, window="from 10s"), results))
    assert rps.measured == pytest.approx(50.0)


def test_a_window_past_the_run_or_in_a_file_without_per_second_histograms_is_never_a_pass(
    tmp_path: Path,
) -> None:
    results = slow_start_run(seconds=10)
    with pytest.raises(InputError, match="past the run's end"):
        judge(criterion("load.p95_ms", "<", 100, window="5s-30s"), results)
    older = results.model_copy(
        update={"timeline": [p.model_copy(update={"histogram": None}) for p in results.timeline]}
    )
    with pytest.raises(InputError, match="no latency histogram"):
        judge(criterion("load.p95_ms", "<", 100, window="from 5s"), older)
    # The per-second histograms survive the results file, and a file without them still reads.
    write_results(tmp_path / "load.json", results)
    assert read_results(tmp_path / "load.json") == results
    write_results(tmp_path / "older.json", older)
    written = orjson.loads((tmp_path / "older.json").read_bytes())
    assert not any("histogram" in point for point in written["timeline"])
    assert read_results(tmp_path / "older.json") == older


def test_a_stage_window_judges_that_stage_and_an_unknown_stage_names_the_stages(
    tmp_path: Path,
) -> None:
    # An open run that ramps to 40/s over 2 s, holds 2 s, against a server frozen for the first
    # 1.5 s: the ramp's requests wait (about 22 of 120), the hold's do not.
    stages = (
        StageConfig(duration_s=2, target=40, name="ramp"),
        StageConfig(duration_s=2, target=40),
    )
    # The server in a process of its own: its threads waking at once must not take the GIL
    # from the engine's loop (a lag over its bound would void the run).
    with scheduled_server_process(freeze_from_s=0.0, freeze_to_s=1.5) as url:
        results = run_native_load(
            request=RequestSpec(url=url),
            profile=LoadProfile(rate=40, stages=stages, max_in_flight=200),
            out=tmp_path / "load.json",
            quiet=True,
        )
    whole = only(judge(criterion("load.p95_ms", "<", 200), results))
    hold = only(judge(criterion("load.p95_ms", "<", 200, window="stage:2"), results))
    steady = only(judge(criterion("load.p95_ms", "<", 200, window="steady"), results))
    ramp = only(judge(criterion("load.p95_ms", ">=", 200, window="stage:ramp"), results))
    assert whole.status == "failed"
    assert hold.status == "passed" and steady.status == "passed"
    assert ramp.status == "passed"  # the frozen ramp is where the slow requests are
    assert steady.window is not None and "after ramp" in steady.window
    with pytest.raises(InputError, match=r"no such stage \(its stages: 1 \('ramp'\), 2\)"):
        judge(criterion("load.p95_ms", "<", 200, window="stage:3"), results)
    data = gate_verdict_data(judge(criterion("load.p95_ms", "<", 200, window="stage:2"), results))
    assert data["criteria"][0]["window"] == "stage:2"
    # Service times over seconds, from the file the run wrote: the hold's are fast, and every
    # second's service histograms merged are the run's own service figures, exactly.
    written = read_results(tmp_path / "load.json")
    assert isinstance(written, LoadResults) and written.service_time_ms is not None
    hold_service = criterion("load.service_p95_ms", "<", 200, window="from 3s")
    assert only(judge(hold_service, written)).status == "passed"
    every = f"0s-{len(written.timeline)}s"
    for field in ("p50", "p95", "p99"):
        merged = criterion(f"load.service_{field}_ms", ">=", 0, window=every)
        assert only(judge(merged, written)).measured == getattr(written.service_time_ms, field)


def test_a_bad_window_in_the_acceptance_file_is_a_config_error_naming_the_key() -> None:
    criteria = [{"metric": "load.p95_ms", "op": "<", "threshold": 1, "window": "soon"}]
    with pytest.raises(
        ConfigError, match=r"(?s)acceptance.toml.*criteria\[0\].window: window 'soon'"
    ):
        parse_config({"criteria": criteria}, source="acceptance.toml")


def test_a_window_past_the_end_of_a_stopped_run_is_not_evaluated_and_the_run_fails() -> None:
    results = slow_start_run(seconds=6)
    stopper = criterion("load.error_rate", "<", 0.05, abort_on_fail=True)
    stopped = results.model_copy(
        update={
            "stopped": Stopped(by="criterion", at_s=6.0, criterion=stopper.label, measured=0.13)
        }
    )
    later = criterion("load.p95_ms", "<", 1000, window="10s-20s")
    report = evaluate_criteria([stopper, later], [("load.json", stopped)])
    assert report.outcome == "failed"
    verdict = report.verdicts[1]
    assert verdict.status == "not_evaluated"
    assert "not evaluated" in render_gate_table(report)
    assert "the run stopped at 6 s" in render_gate_table(report)
    # The same window on a run that ran its course is a window it never had: exit 2.
    with pytest.raises(InputError, match="past the run's end"):
        judge(later, results)


def test_a_windows_rate_counts_up_to_the_runs_end_not_the_drains_part_second() -> None:
    recorder = LatencyRecorder(start=T0)
    for second in range(10):
        for n in range(50):
            recorder.record(endpoint="GET /", latency_s=0.01, end=T0 + second + (n + 0.5) / 50)
    recorder.record(endpoint="GET /", latency_s=0.2, end=T0 + 10.05)  # drained after the end
    recorder.finish(end=T0 + 10.0)
    results = LoadResults(
        target="http://127.0.0.1:1", config={"scenario": "url"}, **recorder.traffic_fields()
    )
    assert len(results.timeline) == 11
    rps = only(judge(criterion("load.rps", ">", 0, window="from 5s"), results))
    assert rps.measured == pytest.approx((250 + 1) / 5)


def test_steady_on_a_run_that_is_all_ramp_up_is_refused_never_judged_on_its_drain() -> None:
    results = slow_start_run(seconds=4)  # 10 users at 2.5/s: spawning ends with the run
    with pytest.raises(InputError, match="no whole second of steady state"):
        judge(criterion("load.p95_ms", "<", 1000, window="steady"), results)


def test_a_window_the_service_froze_through_fails_with_the_stall_as_evidence() -> None:
    recorder = LatencyRecorder(start=T0)
    for second in (*range(4), *range(9, 12)):
        for n in range(20):
            recorder.record(endpoint="GET /", latency_s=0.01, end=T0 + second + (n + 0.5) / 20)
    recorder.record(endpoint="GET /", latency_s=5.0, end=T0 + 9.0)  # in flight through 4-9 s
    recorder.finish(end=T0 + 12.0)
    results = LoadResults(
        target="http://127.0.0.1:1", config={"scenario": "url"}, **recorder.traffic_fields()
    )
    verdict = only(judge(criterion("load.p95_ms", "<", 1000, window="5s-8s"), results))
    assert verdict.status == "failed" and verdict.frozen is not None
    assert "no request completed in window 5s-8s" in render_gate_table(
        judge(criterion("load.p95_ms", "<", 1000, window="5s-8s"), results)
    )


def test_a_failed_windows_evidence_shows_only_the_windows_seconds() -> None:
    results = slow_start_run()
    verdict = only(judge(criterion("load.p95_ms", "<", 5, window="from 10s"), results))
    assert verdict.status == "failed"
    slowest = [e for e in verdict.evidence if isinstance(e, SlowestSeconds)]
    assert slowest and all(point.t_s >= 10 for point in slowest[0].seconds)


def test_steady_counts_the_stages_from_where_their_clock_started_on_the_timeline() -> None:
    # An open run whose timetable (and stages) began 1.5 s after the run did (users spawning):
    # its 2 s ramp ends at 3.5 s on the timeline, so steady starts at 4 s, not 2 s.
    recorder = LatencyRecorder(start=T0, stages=(Stage(2, 20), Stage(4, 20)))
    recorder.start_stages_at(T0 + 1.5)
    recorder.count_span_from(T0 + 1.5)
    for second in range(8):
        for n in range(20):
            end = T0 + second + (n + 0.5) / 20
            recorder.record(endpoint="GET /", latency_s=0.01, end=end)
    recorder.finish(end=T0 + 7.5)
    results = LoadResults(
        target="http://127.0.0.1:1",
        config={"scenario": "url", "model": "open"},
        **recorder.traffic_fields(),
        stages=recorder.stage_results(),
        span_start_s=recorder.span_start_s(),
    )
    assert results.span_start_s == 1.5
    verdict = only(judge(criterion("load.p95_ms", "<", 1000, window="steady"), results))
    assert verdict.window is not None and verdict.window.startswith("steady (4 s-8 s")

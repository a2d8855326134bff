"""`loadkit report`: the HTML page, the .hgrm files and the timeline CSV, from results files made
through the real recorder (no load run). The page is checked as text here; in a browser in
tests/browser/test_report_browser.py."""

from __future__ import annotations

import csv
import io
import math
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from loadkit.cli import app
from loadkit.measure.recorder import LatencyRecorder
from loadkit.measure.results import LoadResults, parse_results, read_results, write_results
from loadkit.report.hgrm import hgrm_file_names, hgrm_folder_names
from loadkit.report.html import _verdict_section
from loadkit.report.html_charts import latency_chart
from loadkit.report.timeline_csv import SERVICE_COLUMNS
from loadkit.report.timeline_figures import UNKNOWN_KIND, second_figures
from loadkit.report.units import format_fraction, format_ms
from loadkit.run.report import load_report, write_html_report
from tests.loadkit.crafted import crafted_audit, crafted_smoke
from tests.loadkit.open_runs import (
    STAGES,
    T0,
    freeze_timetable,
    open_results,
    record_open,
    schedule_of,
)
from tests.loadkit.report_runs import ERROR_KINDS, synthetic_run

FAILING_CRITERIA = """
[[criteria]]
metric = "load.p95_ms"
op = "<"
threshold = 50

[[criteria]]
metric = "load.max_stall_s"
op = "<"
threshold = 5
"""


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A 30 s run at 50/s with a 6 s freeze from second 10, its baseline (same run, faster),
    and an acceptance file whose P95 criterion it fails."""
    folder = tmp_path_factory.mktemp("report")
    run = synthetic_run(duration_s=30, rate=50, freeze=(10.0, 16.0))
    baseline = synthetic_run(duration_s=30, rate=50, slow=0.5, seed=8)
    write_results(folder / "load.json", run)
    write_results(folder / "baseline.json", baseline)
    (folder / "acceptance.toml").write_text(FAILING_CRITERIA)
    return {
        "load": folder / "load.json",
        "baseline": folder / "baseline.json",
        "config": folder / "acceptance.toml",
        "folder": folder,
    }


@pytest.fixture(scope="module")
def page(files: dict[str, Path]) -> str:
    html = write_html_report(
        [files["load"]],
        files["folder"] / "report.html",
        config=files["config"],
        baseline=[files["baseline"]],
    )
    return html.read_text()


class _Rows(HTMLParser):
    """The text of each ``data-metric`` cell of the rows carrying ``data-endpoint`` or
    ``data-overall``, by row."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, dict[str, str]] = {}
        self._row: str | None = None
        self._metric: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "tr" and "data-endpoint" in found and "data-error-group" not in found:
            self._row = found["data-endpoint"] or ""
        elif tag == "tr" and "data-overall" in found:
            self._row = "(overall)"
        elif tag == "td" and self._row is not None and "data-metric" in found:
            self._metric = found["data-metric"]

    def handle_endtag(self, tag: str) -> None:
        if tag == "tr":
            self._row = None
        if tag == "td":
            self._metric = None

    def handle_data(self, data: str) -> None:
        if self._row is not None and self._metric is not None:
            self.rows.setdefault(self._row, {})[self._metric] = data


def test_the_page_shows_the_results_figures_as_the_terminal_does(
    files: dict[str, Path], page: str
) -> None:
    results = read_results(files["load"])
    assert isinstance(results, LoadResults)
    parser = _Rows()
    parser.feed(page)
    expected = {
        e.name: {
            "requests": f"{e.requests:,}",
            "errors": f"{e.errors:,}",
            "error_rate": format_fraction(e.error_rate),
            "p50_ms": format_ms(e.latency_ms.p50),
            "p95_ms": format_ms(e.latency_ms.p95),
            "p99_ms": format_ms(e.latency_ms.p99),
            "max_ms": format_ms(e.latency_ms.max),
        }
        for e in results.endpoints
    }
    overall = results.latency_ms
    expected["(overall)"] = {
        "requests": f"{results.totals.requests:,}",
        "errors": f"{results.totals.errors:,}",
        "error_rate": format_fraction(results.totals.error_rate),
        "rps": f"{results.totals.rps:,.1f}",
        "p50_ms": format_ms(overall.p50),
        "p95_ms": format_ms(overall.p95),
        "p99_ms": format_ms(overall.p99),
        "max_ms": format_ms(overall.max),
    }
    assert parser.rows == expected
    # Every error group with its example trace id; the stall where it was measured.
    for group in results.errors:
        assert f'data-endpoint="{group.endpoint}" data-kind="{group.kind}"' in page
        assert f"<code data-trace-id>{group.example_trace_id}</code>" in page
    stall = results.longest_stall
    assert stall is not None and 10.0 <= stall.start_s < stall.end_s <= 16.1
    assert f'data-stall data-start-s="{stall.start_s}" data-end-s="{stall.end_s}"' in page
    for chart in ("latency", "throughput", "errors", "distribution"):
        assert f'<div data-chart="{chart}">' in page


def test_the_verdict_is_the_gates_and_failing_it_is_still_a_report(page: str) -> None:
    assert '<section id="verdict" data-outcome="failed">' in page
    row = re.search(r'<tr class="failed" data-criterion="load.p95_ms"[^>]*>(.*?)</tr>', page)
    assert row is not None, "the failed P95 criterion's row"
    assert re.search(r'<td class="n" data-measured>[0-9,]+\.[0-9] ms</td>', row.group(1))
    assert 'data-criterion="load.max_stall_s" data-status="failed"' in page
    assert "The longest stall" in page  # the stall criterion's evidence, as the terminal's


def test_a_baseline_no_criterion_judges_is_said_to_be_drawn_not_unused(
    files: dict[str, Path], page: str
) -> None:
    # FAILING_CRITERIA has no regression criterion: the page draws the baseline, judges nothing.
    drawn = f"<li>baseline {files['baseline']} drawn beside the run for comparison, not judged"
    assert drawn in page
    assert "not used" not in page


def test_with_several_runs_of_a_kind_each_verdict_row_and_evidence_names_its_file(
    files: dict[str, Path], page: str
) -> None:
    verdict = page[page.index('<section id="verdict"') :]
    verdict = verdict[: verdict.index("</section>")]
    assert "<th>results</th>" not in verdict and "data-results" not in verdict  # one run
    both = [str(files["load"]), str(files["baseline"])]
    report = load_report([Path(p) for p in both], config=files["config"])
    assert report.gate is not None
    section = _verdict_section(report.gate)
    assert "<th>verdict</th><th>results</th><th>why</th>" in section
    for source in both:
        assert re.search(
            rf'<tr class="\w+" data-criterion="load.p95_ms" data-status="\w+" '
            rf'data-results="{re.escape(source)}">.*?<td>{re.escape(source)}</td>',
            section,
        )
    assert f'[{both[0]}] <span class="muted">(evidence)</span></summary>' in section


def test_the_page_opens_offline_and_escapes_what_the_results_say(tmp_path: Path) -> None:
    recorder = LatencyRecorder(start=1_800_000_000.0)
    hostile = "GET /x</script><script>alert(1)</script>"
    recorder.record(endpoint=hostile, latency_s=0.01, end=1_800_000_000.5, error_kind="timeout")
    recorder.finish(end=1_800_000_001.0)
    results = LoadResults(target="http://127.0.0.1:9", **recorder.traffic_fields())
    write_results(tmp_path / "load.json", results)
    page = write_html_report([tmp_path / "load.json"], tmp_path / "r.html").read_text()
    # No element loads anything from another host: no src or href with a scheme or //host.
    assert not re.search(r"""<[a-z]+[^>]*\s(?:src|href)\s*=\s*["']?(?:[a-z]+:)?//""", page, re.I)
    assert "<script>alert(1)" not in page
    assert "GET /x&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert '<section id="verdict"><div class="banner none">' in page  # no --config, no verdict


def test_hgrm_files_read_back_as_hdrhistograms_percentile_distribution(
    files: dict[str, Path], tmp_path: Path
) -> None:
    result = CliRunner().invoke(app, ["report", str(files["load"]), "--hgrm", str(tmp_path)])
    assert result.exit_code == 0, result.output
    results = read_results(files["load"])
    assert isinstance(results, LoadResults)
    names = hgrm_file_names([e.name for e in results.endpoints])
    assert {p.name for p in tmp_path.iterdir()} == {"all.hgrm", *names.values()}
    for name, count, latency in [("all.hgrm", results.totals.requests, results.latency_ms)] + [
        (names[e.name], e.requests, e.latency_ms) for e in results.endpoints
    ]:
        lines = (tmp_path / name).read_text().splitlines()
        assert lines[0].split() == ["Value", "Percentile", "TotalCount", "1/(1-Percentile)"]
        body = [line.split() for line in lines[2:] if line and not line.startswith("#")]
        values = [float(row[0]) for row in body]
        percentiles = [float(row[1]) for row in body]
        assert values == sorted(values) and percentiles == sorted(percentiles)
        assert percentiles[-1] == 1.0 and int(body[-1][2]) == count
        assert latency.max is not None and values[-1] == pytest.approx(latency.max, rel=1e-3)
        footer = dict(re.findall(r"(\w+)\s*=\s*([0-9.]+)", " ".join(lines[-3:])))
        assert latency.mean is not None
        assert float(footer["Mean"]) == pytest.approx(latency.mean, abs=0.001)
        assert float(footer["StdDeviation"]) < latency.max  # in ms like the rest, not µs
        assert float(footer["TotalCount"]) == count


def test_hgrm_files_of_results_files_of_one_name_go_to_folders_of_their_own(
    tmp_path: Path,
) -> None:
    given = []
    for folder, requests in (("a", 3), ("b", 5)):
        # Small runs: hdrh's .hgrm writer walks every bucket a run fills (seconds for 30 s).
        recorder = LatencyRecorder(start=T0)
        for index in range(requests):
            recorder.record(endpoint="GET /x", latency_s=0.01, end=T0 + 0.1 * (index + 1))
        recorder.finish(end=T0 + 1)
        (tmp_path / folder).mkdir()
        path = tmp_path / folder / "r.json"
        write_results(path, LoadResults(target="http://h", config={}, **recorder.traffic_fields()))
        given.append(str(path))
    out = tmp_path / "hg"
    result = CliRunner().invoke(app, ["report", *given, "--hgrm", str(out)])
    assert result.exit_code == 0, result.output
    assert f"{given[0]}: {out / 'a_r'}" in result.output
    assert f"{given[1]}: {out / 'b_r'}" in result.output
    for folder, requests in (("a_r", 3), ("b_r", 5)):
        footer = (out / folder / "all.hgrm").read_text().splitlines()[-3:]
        count = dict(re.findall(r"(\w+)\s*=\s*([0-9.]+)", " ".join(footer)))["TotalCount"]
        assert float(count) == requests
    assert hgrm_folder_names(["x/r.json", "y/r.json", "r.json", "r.json", "q.json"]) == [
        "x_r",
        "y_r",
        "r",
        "r-2",
        "q",
    ]


def test_the_csv_has_one_row_per_second_and_the_errors_by_kind(
    files: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "timeline.csv"
    result = CliRunner().invoke(app, ["report", str(files["load"]), "--csv", str(out)])
    assert result.exit_code == 0, result.output
    results = read_results(files["load"])
    assert isinstance(results, LoadResults)
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert list(rows[0])[:7] == [
        "t_s",
        "completions",
        "errors",
        "p50_ms",
        "p95_ms",
        "p99_ms",
        "max_ms",
    ]
    assert {c for c in rows[0] if c.startswith("errors:")} == {f"errors:{k}" for k in ERROR_KINDS}
    assert [int(r["t_s"]) for r in rows] == [p.t_s for p in results.timeline]
    for row, point in zip(rows, results.timeline, strict=True):
        kinds = sum(int(v) for c, v in row.items() if c.startswith("errors:"))
        assert int(row["errors"]) == point.errors == kinds
        assert (row["p95_ms"] or None) == (None if point.p95_ms is None else repr(point.p95_ms))
    frozen = [r for r in rows if 11 <= int(r["t_s"]) <= 14]
    assert frozen and all(r["completions"] == "0" and r["p50_ms"] == "" for r in frozen)


def test_results_written_before_errors_by_kind_still_render(
    files: dict[str, Path], tmp_path: Path
) -> None:
    data = orjson.loads(files["load"].read_bytes())
    for point in data["timeline"]:
        point.pop("errors_by_kind", None)
        point.pop("histogram", None)  # and before the per-second histograms
    old = parse_results(data, source="old")
    write_results(tmp_path / "old.json", old)
    out = tmp_path / "old.csv"
    result = CliRunner().invoke(
        app,
        [
            "report",
            str(tmp_path / "old.json"),
            "--html",
            str(tmp_path / "o.html"),
            "--csv",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert result.output.rstrip().splitlines()[-1] == f"HTML report: {tmp_path / 'o.html'}"
    assert UNKNOWN_KIND in (tmp_path / "o.html").read_text()
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    busy = [r for r in rows if r["completions"] != "0"]
    assert all(r["p50_ms"] == "" and r["p95_ms"] != "" for r in busy)


def test_bad_input_is_exit_2_naming_the_file(files: dict[str, Path], tmp_path: Path) -> None:
    junk = tmp_path / "junk.json"
    junk.write_text('{"hello": 1}')
    result = CliRunner().invoke(app, ["report", str(junk), "--html", str(tmp_path / "r.html")])
    assert result.exit_code == 2
    assert f"{junk}: not a loadkit results file" in result.output
    assert not (tmp_path / "r.html").exists()
    result = CliRunner().invoke(
        app, ["report", str(files["load"]), "--config", str(tmp_path / "missing.toml")]
    )
    assert result.exit_code == 2 and "missing.toml: no such file" in result.output
    result = CliRunner().invoke(
        app, ["report", str(files["load"]), str(files["baseline"]), "--csv", str(tmp_path / "t")]
    )
    assert result.exit_code == 2 and "--csv writes the timeline of one run" in result.output
    for key in ("timeline", "endpoints"):
        damaged = orjson.loads(files["load"].read_bytes())
        damaged[key][1]["histogram"]["data"] = "SElTVEZBQUFBR2FyYmFnZQ=="
        bad = tmp_path / f"bad_{key}.json"
        bad.write_bytes(orjson.dumps(damaged))
        result = CliRunner().invoke(app, ["report", str(bad), "--hgrm", str(tmp_path / "h")])
        assert result.exit_code == 2
        # The key, then what it measures (an endpoint by name, a second by its t_s).
        assert f"{bad}: {key}[1].histogram (" in result.output
        assert "): histogram data cannot be decoded" in result.output
        assert "run again" in result.output and not (tmp_path / "h").exists()


def test_without_html_it_prints_the_terminal_summary_and_the_verdict(
    files: dict[str, Path],
) -> None:
    result = CliRunner().invoke(
        app, ["report", str(files["load"]), "--config", str(files["config"])]
    )
    assert result.exit_code == 0, result.output  # it renders; the gate is `loadkit gate`
    assert "longest stall: " in result.output
    assert f"results: {files['load']}" in result.output
    assert "FAILED: 2 of 2 criteria not met" in result.output


def test_errors_by_kind_per_second_merge_exactly_across_shares() -> None:
    start = 1_800_000_000.0
    whole = LatencyRecorder(start=start)
    parts = [LatencyRecorder(start=start, source=name) for name in ("a", "b")]
    for index in range(400):
        kind = ERROR_KINDS[index % 3] if index % 4 == 0 else None
        end = start + index * 0.01 + 0.005
        whole.record(endpoint="GET /", latency_s=0.005, end=end, error_kind=kind)
        parts[index % 2].record(endpoint="GET /", latency_s=0.005, end=end, error_kind=kind)
    merged = LatencyRecorder(start=start, source="master")
    for part in parts:
        part.finish(end=start + 4)
        merged.merge_share(part.drain_share())
    whole.finish(end=start + 4)
    merged.finish(end=start + 4)
    expected = [(p.t_s, p.errors_by_kind) for p in whole.timeline()]
    assert [(p.t_s, p.errors_by_kind) for p in merged.timeline()] == expected
    assert all(kinds and sum(kinds.values()) == 25 for _, kinds in expected)


@pytest.fixture(scope="module")
def open_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An open run (3 s at 100/s, one user, nothing completes from 1 s to 2 s) with stages."""
    requests = freeze_timetable()
    recorder = LatencyRecorder(start=T0, stages=STAGES)
    record_open(recorder, requests)
    schedule = schedule_of(requests, rate=100, lags_s=[0.0005] * 100, not_sent=0)
    path = tmp_path_factory.mktemp("open") / "open.json"
    write_results(path, open_results(recorder, end=T0 + 3.0, schedule=schedule))
    return path


def _lines(chart: Any) -> dict[str, tuple[Any, list[float]]]:
    """The latency chart's lines by legend label: (glyph, y values, NaN for a gap)."""
    labels = {item.renderers[0].id: item.label.value for item in chart.legend[0].items}
    return {
        labels[r.id]: (r.glyph, list(r.data_source.data[r.glyph.y]))
        for r in chart.renderers
        if r.id in labels
    }


def test_an_open_run_shows_its_service_time_per_second_and_stages(
    open_run: Path, tmp_path: Path
) -> None:
    results = read_results(open_run)
    assert isinstance(results, LoadResults)
    page = write_html_report([open_run], tmp_path / "r.html").read_text()
    assert "response time (from the due time) per second" in page
    assert "open model, 100.0 iterations/s" in page
    [endpoint] = results.endpoints
    assert endpoint.service_time_ms is not None
    cell = f'<td class="n" data-metric="service_p99_ms">{format_ms(endpoint.service_time_ms.p99)}'
    assert cell in page
    assert '"text":"warm"' in page.replace(" ", "")  # the first stage's marker on the chart
    # Each second's service time beside its response time, dashed, from the second's figures;
    # the whole run's flat lines are for files without them.
    assert "service P95" in page and "(whole run)" not in page
    seconds = second_figures(results.timeline)
    lines = _lines(latency_chart(results, seconds))
    assert list(lines) == ["P50", "P95", "P99", "max", "service P50", "service P95", "service P99"]
    for label in ("P50", "P95", "P99"):
        glyph, values = lines[f"service {label}"]
        assert glyph.line_dash == [6] and lines[label][0].line_dash == []
        key = f"service_{label.lower()}_ms"
        expected = [getattr(s, key) for s in seconds]
        assert [None if math.isnan(v) else v for v in values] == expected
    # The freeze held the queue: response P95 near a second in second 2, service P95 2 ms.
    assert lines["P95"][1][2] > 900 and lines["service P95"][1][2] == pytest.approx(2.0, abs=0.01)
    # The CSV has the service columns, the same figures.
    out = tmp_path / "open.csv"
    assert CliRunner().invoke(app, ["report", str(open_run), "--csv", str(out)]).exit_code == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert list(rows[0])[7:11] == list(SERVICE_COLUMNS)
    assert [r["service_p95_ms"] for r in rows] == [
        "" if s.service_p95_ms is None else repr(s.service_p95_ms) for s in seconds
    ]


def test_an_open_run_written_before_service_times_per_second_draws_the_whole_runs(
    open_run: Path, tmp_path: Path
) -> None:
    data = orjson.loads(open_run.read_bytes())
    for point in data["timeline"]:
        point.pop("service_histogram", None)
    old = parse_results(data, source="old")
    assert isinstance(old, LoadResults)
    write_results(tmp_path / "old.json", old)
    out = tmp_path / "old.csv"
    html = tmp_path / "old.html"
    args = ["report", str(tmp_path / "old.json"), "--html", str(html), "--csv", str(out)]
    assert CliRunner().invoke(app, args).exit_code == 0
    service = old.service_time_ms
    assert service is not None and service.p95 is not None
    page = html.read_text()
    assert f"service time P95 (whole run) {service.p95:,.1f} ms" in page
    assert "service P95" not in page
    header = out.read_text().splitlines()[0]
    assert "service_" not in header


def test_smoke_checks_and_lock_findings_are_tables_beside_the_load_runs_charts(
    files: dict[str, Path], tmp_path: Path
) -> None:
    smoke, audit = crafted_smoke(passed=8, failed=2), crafted_audit(violations=2)
    write_results(tmp_path / "smoke.json", smoke)
    write_results(tmp_path / "audit.json", audit)
    sources = [tmp_path / "smoke.json", tmp_path / "audit.json", files["load"]]
    page = write_html_report(sources, tmp_path / "r.html").read_text()
    for check in smoke.checks:
        status = "passed" if check.passed else "failed"
        assert f'<tr data-check="{check.name}" class="{status}">' in page
    assert page.count("<tr data-finding>") == len(audit.findings) == 2
    assert page.count('<div data-chart="latency">') == 1  # the load run's; smoke has tables

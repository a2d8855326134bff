"""The HTML report in a real browser (Debian's Chromium): it opens from a file with no request and
no console error, every chart draws its data, a hover shows a second's figures, the tables show
the results file's figures, and a freeze is shaded over the seconds it lasted.

The results come from the real recorder with a synthetic freeze (tests/loadkit/report_runs.py):
no load run is needed to draw a report.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy
import pytest
from PIL import Image

from loadkit.measure.recorder import LatencyRecorder
from loadkit.measure.results import LoadResults, read_results, write_results
from loadkit.report.gate import verdict_cells
from loadkit.report.timeline_figures import second_figures
from loadkit.report.units import format_ms
from loadkit.run.report import load_report, write_html_report
from tests.browser.conftest import RecordedPage
from tests.loadkit.open_runs import T0, freeze_timetable, open_results, record_open, schedule_of
from tests.loadkit.report_runs import synthetic_run

FREEZE = (10.0, 16.0)
CRITERIA = '[[criteria]]\nmetric = "load.p95_ms"\nop = "<"\nthreshold = 50\n'
RENDERED = (
    "() => window.Bokeh !== undefined && Bokeh.documents.length > 0 && Bokeh.index.roots.length > 0"
)
CHART_COLORS = {
    "latency": (255, 127, 14),  # the P95 line
    "throughput": (31, 119, 180),  # completions
    "errors": (31, 119, 180),  # the most frequent kind's bars
    "distribution": (31, 119, 180),  # this run's line
}
FRAME_JS = """() => {
  const doc = Bokeh.documents[0];
  const box = doc.get_model_by_name('longest-stall');
  const plot = [...doc.all_models].find(m => Array.isArray(m.center) && m.center.includes(box));
  const view = Bokeh.index.get(plot);
  const rect = view.canvas_view.el.getBoundingClientRect();
  const frame = view.frame;
  return {left: box.left, right: box.right, x0: rect.left, y0: rect.top,
          top: frame.bbox.top, bottom: frame.bbox.bottom,
          xs: Object.fromEntries(
            [...Array(30).keys()].map(t => [t, frame.x_scale.compute(t + 0.5)]))};
}"""

DISTRIBUTION_LINES_JS = """() => [...Bokeh.documents[0].all_models]
  .filter(m => m.data_source !== undefined && 'percentile' in m.data_source.data)
  .map(m => [m.visible, Math.max(...m.data_source.data.value)])"""


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[LoadResults, Path]:
    folder = tmp_path_factory.mktemp("browser-report")
    write_results(folder / "load.json", synthetic_run(duration_s=30, rate=50, freeze=FREEZE))
    (folder / "acceptance.toml").write_text(CRITERIA)
    html = write_html_report(
        [folder / "load.json"], folder / "report.html", config=folder / "acceptance.toml"
    )
    results = read_results(folder / "load.json")
    assert isinstance(results, LoadResults)
    return results, html


@pytest.fixture(scope="module")
def open_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[LoadResults, Path]:
    """An open run's report (3 s at 100/s, one user, a freeze from 1 s to 2 s)."""
    folder = tmp_path_factory.mktemp("browser-open-report")
    requests = freeze_timetable()
    recorder = LatencyRecorder(start=T0)
    record_open(recorder, requests)
    schedule = schedule_of(requests, rate=100, lags_s=[0.0005] * 10)
    write_results(folder / "open.json", open_results(recorder, end=T0 + 3.0, schedule=schedule))
    html = write_html_report([folder / "open.json"], folder / "report.html")
    results = read_results(folder / "open.json")
    assert isinstance(results, LoadResults)
    return results, html


def _pixels_near(image: Image.Image, color: tuple[int, int, int], tolerance: int = 12) -> int:
    pixels = numpy.asarray(image.convert("RGB"), dtype=numpy.int16)
    return int((numpy.abs(pixels - numpy.array(color)) <= tolerance).all(axis=2).sum())


def test_the_report_opens_offline_draws_every_chart_and_shows_the_results_figures(
    recorded_page: RecordedPage,
    report: tuple[LoadResults, Path],
    open_report: tuple[LoadResults, Path],
) -> None:
    results, html = report
    page = recorded_page.page
    page.goto(html.as_uri())
    page.wait_for_function(RENDERED)
    for chart, color in CHART_COLORS.items():
        element = page.locator(f'[data-chart="{chart}"]')
        shot = Image.open(io.BytesIO(element.screenshot()))
        # More than its legend's swatch (a few dozen pixels): a line across the chart.
        assert _pixels_near(shot, color) > 400, f"the {chart} chart drew no data"
    recorded_page.assert_no_console_errors()
    recorded_page.assert_no_requests(opened=html.as_uri())
    # The tables show the results file's figures as the terminal does.
    for endpoint in results.endpoints:
        cell = page.locator(f'tr[data-endpoint="{endpoint.name}"] td[data-metric="p95_ms"]')
        assert cell.inner_text() == format_ms(endpoint.latency_ms.p95)
    gate = load_report([html.parent / "load.json"], config=html.parent / "acceptance.toml").gate
    assert gate is not None
    measured = page.locator('tr[data-criterion="load.p95_ms"] [data-measured]').inner_text()
    assert measured == verdict_cells(gate.verdicts[0])[2]  # as `loadkit gate` prints it
    # Hovering the latency chart at second 5 shows that second's figures.
    page.locator('[data-chart="latency"]').scroll_into_view_if_needed()
    frame = page.evaluate(FRAME_JS)
    x = frame["x0"] + frame["xs"]["5"] - 18  # second 5 (the point sits at its start)
    for step in range(3):
        page.mouse.move(x + 3 * step, frame["y0"] + frame["bottom"] - 20)
    tooltip = page.locator("div.bk-tooltip-content").first
    second = second_figures(results.timeline)[5]
    assert f"P95:\t{format_ms(second.p95_ms)} ms" in tooltip.inner_text()
    # The distribution shows the endpoint chosen, alone (the whole run's line first, then the
    # endpoints in the results' order).
    chosen = results.endpoints[1]
    page.locator('[data-chart="distribution"] select').select_option(chosen.name)
    shown = page.evaluate(DISTRIBUTION_LINES_JS)
    assert [visible for visible, _ in shown] == [False, False, True, False]
    assert chosen.latency_ms.max is not None
    assert shown[2][1] == pytest.approx(chosen.latency_ms.max, rel=1e-3)
    # An open run's hover shows the second's service time beside its response time.
    open_run, open_html = open_report
    page.goto(open_html.as_uri())
    page.wait_for_function(RENDERED)
    page.locator('[data-chart="latency"]').scroll_into_view_if_needed()
    frame = page.evaluate(FRAME_JS)
    x = frame["x0"] + frame["xs"]["0"] - 18  # second 0 (the point sits at its start)
    for step in range(3):
        page.mouse.move(x + 3 * step, frame["y0"] + frame["bottom"] - 20)
    shown_text = page.locator("div.bk-tooltip-content").first.inner_text()
    first = second_figures(open_run.timeline)[0]
    assert f"P95:\t{format_ms(first.p95_ms)} ms" in shown_text
    assert f"service P95:\t{format_ms(first.service_p95_ms)} ms" in shown_text
    recorded_page.assert_no_console_errors()


def test_a_freeze_is_shaded_on_the_latency_chart_over_its_seconds(
    recorded_page: RecordedPage, report: tuple[LoadResults, Path]
) -> None:
    results, html = report
    stall = results.longest_stall
    assert stall is not None
    page = recorded_page.page
    page.goto(html.as_uri())
    page.wait_for_function(RENDERED)
    page.locator('[data-chart="latency"]').scroll_into_view_if_needed()
    frame = page.evaluate(FRAME_JS)
    assert (frame["left"], frame["right"]) == (stall.start_s, stall.end_s)
    shot = Image.open(io.BytesIO(page.screenshot())).convert("RGB")
    y = frame["y0"] + frame["top"] + (frame["bottom"] - frame["top"]) * 0.3

    def shaded(second: int) -> bool:
        pixel = shot.getpixel((int(frame["x0"] + frame["xs"][str(second)]), int(y)))
        assert isinstance(pixel, tuple)
        red, green, blue = pixel[:3]
        return red > green + 15 and red > blue + 15

    # Seconds 10 to 15 froze (the stall ends when the held requests complete, just after 16 s).
    assert [t for t in range(30) if shaded(t)] == list(range(10, 16))

"""Locust's web UI with loadkit, without Locust: the tabs' rows, the routes, the report writer."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import flask
import pytest

from loadkit.exceptions import InputError
from loadkit.measure.load_results import build_load_results
from loadkit.measure.recorder import LatencyRecorder
from loadkit.measure.results import GeneratorHealth, LoadResults, write_results
from loadkit.report import load_webui
from loadkit.report.load_webui import (
    ERRORS_TAB,
    LATENCY_TAB,
    REPORT_LINK_TITLE,
    REPORT_ROUTE,
    RESULTS_ROUTE,
    Rows,
    install_web_ui,
    web_tab_rows,
    web_tab_rows_of_results,
)
from loadkit.run.ui_reports import UiReportWriter

START = 1_000_000.0


def recorded() -> LatencyRecorder:
    recorder = LatencyRecorder(start=START)
    for i in range(40):
        failed = i % 4 == 3
        recorder.record(
            endpoint="GET /items" if i % 2 else "POST /orders",
            latency_s=0.002 + i * 0.0007,
            end=START + 0.05 * i,
            error_kind="overloaded" if failed else None,
            status=503 if failed else None,
            trace_id=f"t-{i}" if failed else None,
        )
    recorder.finish(end=START + 2.0)
    return recorder


def results_of(recorder: LatencyRecorder) -> LoadResults:
    return build_load_results(
        recorder, target="http://127.0.0.1:1", config={"ui": True}, generator=GeneratorHealth()
    )


def test_a_stopped_tests_rows_from_its_results_are_the_live_rows_at_its_end() -> None:
    # What the tabs showed live at the stop and what they show from the file agree, so the
    # switch from one to the other changes no figure on the page.
    recorder = recorded()
    rows = web_tab_rows_of_results(results_of(recorder))
    assert rows == web_tab_rows(recorder)
    latency = {r["endpoint"]: r for r in rows[0]["data"]}
    assert latency["Aggregated"]["requests"] == 40 and latency["Aggregated"]["errors"] == 10
    assert {(r["endpoint"], r["kind"], r["count"]) for r in rows[1]["data"]} == {
        ("GET /items", "overloaded", 10)
    }


@dataclass
class FakeTests:
    """The plugin's side, scripted: stopping for ``stopping_polls`` asks, then stopped."""

    results: Path | None = None
    stopping_polls: int = 0
    asked: int = 0
    rows: Rows = field(default_factory=lambda: web_tab_rows(None))
    final_rows: Rows = field(default_factory=list)

    def tab_rows(self) -> Rows:
        return self.rows if self.stopping_polls else self.final_rows

    def stopping(self) -> bool:
        self.asked += 1
        if self.stopping_polls:
            self.stopping_polls -= 1
            return True
        return False

    def last_results(self) -> Path | None:
        return self.results


@dataclass
class FakeWebUi:
    """What install_web_ui uses of Locust's WebUI: its Flask app and template arguments."""

    app: flask.Flask
    template_args: dict[str, Any] = field(default_factory=dict)


def web_ui_with(tests: FakeTests) -> tuple[FakeWebUi, Any]:
    app = flask.Flask("fake_locust")
    app.add_url_rule("/stats/requests", "stats", lambda: flask.jsonify({"state": "stopped"}))
    web_ui = FakeWebUi(app, {"extended_csv_files": [{"href": "./mine.csv", "title": "Mine"}]})
    install_web_ui(web_ui, tests)
    return web_ui, app.test_client()


def test_a_stats_poll_during_the_stop_waits_for_the_results(tmp_path: Path) -> None:
    final: Rows = [
        {"key": LATENCY_TAB, "data": [{"endpoint": "GET /items"}]},
        {"key": ERRORS_TAB, "data": []},
    ]
    tests = FakeTests(stopping_polls=3, final_rows=final)
    _, client = web_ui_with(tests)
    body = client.get("/stats/requests").get_json()
    assert body["extended_stats"] == final and body["state"] == "stopped"
    assert tests.asked == 4  # asked until the test was no longer stopping


def test_the_ui_links_the_last_stopped_tests_results_and_report(tmp_path: Path) -> None:
    tests = FakeTests()
    web_ui, client = web_ui_with(tests)
    links = web_ui.template_args["extended_csv_files"]
    assert links[0] == {"href": "./mine.csv", "title": "Mine"}  # a locustfile's own are kept
    assert {"href": "." + REPORT_ROUTE, "title": REPORT_LINK_TITLE} in links
    assert [t["key"] for t in web_ui.template_args["extended_tabs"]] == [LATENCY_TAB, ERRORS_TAB]

    for route in (REPORT_ROUTE, RESULTS_ROUTE):
        answer = client.get(route)
        assert answer.status_code == 404 and b"No test has stopped yet" in answer.data

    tests.results = write_results(tmp_path / "ui-1.json", results_of(recorded()))
    answer = client.get(RESULTS_ROUTE)
    assert answer.status_code == 200 and answer.data == tests.results.read_bytes()
    assert answer.headers["Cache-Control"] == "no-store"

    tests.results.with_suffix(".html").write_text("<html>report of ui-1</html>")
    answer = client.get(REPORT_ROUTE)
    assert answer.status_code == 200 and answer.mimetype == "text/html"
    assert answer.data == b"<html>report of ui-1</html>"


def test_a_report_not_written_is_said_after_a_bounded_wait(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(load_webui, "REPORT_WAIT_S", 0.1)
    tests = FakeTests(results=tmp_path / "ui-2.json")
    _, client = web_ui_with(tests)
    answer = client.get(REPORT_ROUTE)
    assert answer.status_code == 503
    assert str(tests.results).encode() in answer.data and b"not written" in answer.data


def test_the_report_writer_renders_each_new_results_file_once(tmp_path: Path) -> None:
    (tmp_path / "ui-0-earlier.json").write_text("{}")  # an earlier session's: left alone
    said: list[str] = []
    calls: list[tuple[Path, Path]] = []

    def write(results: Path, html: Path) -> Path:
        calls.append((results, html))
        if results.name == "ui-2.json":
            raise InputError(f"{results}: not a results file")
        html.write_text("report")
        return html

    writer = UiReportWriter(tmp_path, announce=said.append, write=write, prepare=lambda: None)
    (tmp_path / "ui-1.json").write_text("{}")
    (tmp_path / "ui-2.json").write_text("{}")
    (tmp_path / ".ui-3.json.0a1b.tmp").write_text("{")  # a write under way: not a results file
    assert writer.sweep() == [tmp_path / "ui-1.html"]
    assert writer.sweep() == []  # each once, failures too
    assert [c[0].name for c in calls] == ["ui-1.json", "ui-2.json"]
    assert said == [
        f"HTML report of the test: {tmp_path / 'ui-1.html'}",
        f"loadkit: cannot write the HTML report of {tmp_path / 'ui-2.json'}: "
        f"{tmp_path / 'ui-2.json'}: not a results file",
    ]


def test_the_report_writer_writes_what_the_last_test_left_as_it_closes(tmp_path: Path) -> None:
    written: list[Path] = []

    def write(results: Path, html: Path) -> Path:
        written.append(html)
        return html

    with UiReportWriter(tmp_path, write=write, prepare=lambda: None, poll_s=60):
        (tmp_path / "ui-9.json").write_text("{}")  # written as the UI closes, before a poll
    assert written == [tmp_path / "ui-9.html"]

"""Locust's web UI with loadkit: two tabs (exact latency, errors by kind) and the last stopped
test's results file and HTML report.

Locust's web UI can show extra tabs (``extended_tabs``) whose rows arrive with its periodic
``/stats/requests`` poll (``extended_stats``), and extra links in its "Download data" tab
(``extended_csv_files``). The Locust plugin installs these when Locust runs with its UI; nothing
here imports Locust (Flask, which Locust serves the UI with, is imported inside the hooks, in
Locust's process, where ``time.sleep`` is gevent's: a waiting request holds up no other).

The tabs show the test under way live, from its recorder, and a stopped test the results file
it wrote: the same figures, by construction. Locust's page polls every 2 s only while a test
spawns or runs, and its last poll is the first to see another state; a poll that comes while
the test stops therefore waits (bounded) until its results are written, so that the figures the
page keeps are the file's.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import orjson

from loadkit.measure.recorder import LatencyRecorder
from loadkit.measure.results import (
    EndpointResults,
    ErrorGroup,
    LatencySummary,
    LoadResults,
    Totals,
)

logger = logging.getLogger("loadkit")

LATENCY_TAB = "loadkit_latency"
ERRORS_TAB = "loadkit_errors"
ALL_ENDPOINTS = "Aggregated"
"""The latency tab's last row: every request of the test (Locust's name for it)."""
REPORT_ROUTE = "/loadkit/report"
"""The HTML report of the last stopped test (``loadkit ui`` writes it beside its results)."""
RESULTS_ROUTE = "/loadkit/results"
"""The results file of the last stopped test."""
REPORT_LINK_TITLE = "HTML report of the last stopped test (loadkit)"
RESULTS_LINK_TITLE = "Results file of the last stopped test (loadkit)"
SETTLE_WAIT_S = 10.0
"""The longest a stats poll waits for a stopping test's results (they take milliseconds)."""
REPORT_WAIT_S = 30.0
"""The longest the report's route waits for the report to be written (it takes about as long
as rendering a report of the test's length)."""
WAIT_STEP_S = 0.05

Rows = list[dict[str, Any]]


class WebUiTest(Protocol):
    """What the web UI shows of the tests started from it (the Locust plugin's side)."""

    def tab_rows(self) -> Rows:
        """The rows of both tabs (``web_tab_rows``) for the current or last test."""
        ...

    def stopping(self) -> bool:
        """Whether a test was told to stop and its results are not written yet."""
        ...

    def last_results(self) -> Path | None:
        """The results file of the last test stopped, None before any."""
        ...


def html_report_path(results: Path) -> Path:
    """Where the HTML report of a results file written by the web UI goes: beside it."""
    return results.with_suffix(".html")


def install_web_ui(web_ui: Any, tests: WebUiTest) -> None:
    """Loadkit's tabs, routes and links in Locust's web UI (``web_ui``: Locust's ``WebUI``)."""
    args = web_ui.template_args
    args["extended_tabs"] = [
        *args.get("extended_tabs", []),
        {"title": "Exact latency (loadkit)", "key": LATENCY_TAB},
        {"title": "Errors by kind (loadkit)", "key": ERRORS_TAB},
    ]
    args["extended_tables"] = [*args.get("extended_tables", []), *_TABLES]
    # Relative, as Locust's own links are: they work under --web-base-path too.
    args["extended_csv_files"] = [
        *args.get("extended_csv_files", []),
        {"href": "." + REPORT_ROUTE, "title": REPORT_LINK_TITLE},
        {"href": "." + RESULTS_ROUTE, "title": RESULTS_LINK_TITLE},
    ]
    app = web_ui.app
    app.before_request(lambda: _settle(tests))
    app.after_request(lambda response: _add_rows(response, tests))
    guard: Callable[[Any], Any] = getattr(web_ui, "auth_required_if_enabled", lambda view: view)
    app.add_url_rule(
        REPORT_ROUTE, "loadkit_report", guard(lambda: _serve_report(tests)), methods=["GET"]
    )
    app.add_url_rule(
        RESULTS_ROUTE, "loadkit_results", guard(lambda: _serve_results(tests)), methods=["GET"]
    )


_TABLES = [
    {
        "key": LATENCY_TAB,
        "structure": [
            {"key": "endpoint", "title": "Endpoint"},
            {"key": "requests", "title": "# Requests"},
            {"key": "errors", "title": "# Errors"},
            {"key": "p50", "title": "P50 ms"},
            {"key": "p95", "title": "P95 ms"},
            {"key": "p99", "title": "P99 ms"},
            {"key": "max", "title": "Max ms"},
        ],
    },
    {
        "key": ERRORS_TAB,
        "structure": [
            {"key": "endpoint", "title": "Endpoint"},
            {"key": "kind", "title": "Error kind"},
            {"key": "count", "title": "Count"},
            {"key": "status", "title": "Status"},
            {"key": "trace_id", "title": "Example trace id"},
        ],
    },
]


def _is_stats_poll() -> bool:
    from flask import request

    return request.path.endswith("/stats/requests")


def _settle(tests: WebUiTest) -> None:
    """A stats poll while a test stops: wait for its results (see the module's docstring)."""
    if not _is_stats_poll():
        return
    give_up = time.monotonic() + SETTLE_WAIT_S
    while tests.stopping() and time.monotonic() < give_up:
        time.sleep(WAIT_STEP_S)


def _add_rows(response: Any, tests: WebUiTest) -> Any:
    if not _is_stats_poll() or response.status_code != 200:
        return response
    try:
        report = response.get_json()
        report["extended_stats"] = tests.tab_rows()
        response.set_data(orjson.dumps(report))
    except Exception:  # the UI's own figures must keep coming whatever happens here
        logger.exception("loadkit: cannot add its rows to the web UI")
    return response


def _serve_report(tests: WebUiTest) -> Any:
    results = tests.last_results()
    if results is None:
        return _not_there(404, "No test has stopped yet in this web UI: stop one, then reload.")
    html = html_report_path(results)
    give_up = time.monotonic() + REPORT_WAIT_S
    while not html.is_file() and time.monotonic() < give_up:
        time.sleep(WAIT_STEP_S)
    if not html.is_file():
        return _not_there(
            503,
            f"The HTML report of {results} is not written (yet): `loadkit ui` writes it beside "
            "the results file and says on its terminal why when it cannot. Reload to try again.",
        )
    return _send(html, "text/html")


def _serve_results(tests: WebUiTest) -> Any:
    results = tests.last_results()
    if results is None:
        return _not_there(404, "No test has stopped yet in this web UI: stop one, then reload.")
    return _send(results, "application/json")


def _send(path: Path, mimetype: str) -> Any:
    from flask import send_file

    response = send_file(path, mimetype=mimetype, max_age=0)
    # The same address names the next test's file once another test stops.
    response.headers["Cache-Control"] = "no-store"
    return response


def _not_there(status: int, message: str) -> Any:
    from flask import Response

    return Response(message + "\n", status=status, mimetype="text/plain")


def web_tab_rows(recorder: LatencyRecorder | None) -> Rows:
    """The rows of both tabs from a recorder (the merged one, on a master): a test under way."""
    if recorder is None:
        return [{"key": LATENCY_TAB, "data": []}, {"key": ERRORS_TAB, "data": []}]
    return _rows(
        recorder.endpoint_results(),
        recorder.error_groups(),
        recorder.totals(),
        recorder.overall_histogram().summary(),
    )


def web_tab_rows_of_results(results: LoadResults) -> Rows:
    """The rows of both tabs from a results file: a stopped test, as its file says."""
    return _rows(results.endpoints, results.errors, results.totals, results.latency_ms)


def _rows(
    endpoints: Sequence[EndpointResults],
    groups: Sequence[ErrorGroup],
    totals: Totals,
    overall: LatencySummary,
) -> Rows:
    latency = [_latency_row(e.name, e.requests, e.errors, e.latency_ms) for e in endpoints]
    if totals.requests:
        latency.append(_latency_row(ALL_ENDPOINTS, totals.requests, totals.errors, overall))
    errors = [
        {
            "endpoint": g.endpoint,
            "kind": g.kind,
            "count": g.count,
            "status": ", ".join(f"{code}x{n}" for code, n in g.status_codes.items()),
            "trace_id": g.example_trace_id or "",
        }
        for g in groups
    ]
    return [{"key": LATENCY_TAB, "data": latency}, {"key": ERRORS_TAB, "data": errors}]


def _latency_row(
    endpoint: str, requests: int, errors: int, latency: LatencySummary
) -> dict[str, Any]:
    return {
        "endpoint": endpoint,
        "requests": requests,
        "errors": errors,
        "p50": latency.p50,
        "p95": latency.p95,
        "p99": latency.p99,
        "max": latency.max,
    }

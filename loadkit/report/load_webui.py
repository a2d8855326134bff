"""Rendering for Locust's web UI: two loadkit tabs, exact latency and errors by kind.

Locust's web UI can show extra tabs (``extended_tabs``) whose rows arrive with its periodic
``/stats/requests`` poll (``extended_stats``). The Locust plugin installs these when Locust runs
with its UI; nothing here imports Locust (Flask, which Locust serves the UI with, is imported
inside the hook, in Locust's process).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import orjson

from loadkit.measure.recorder import LatencyRecorder

logger = logging.getLogger("loadkit")

LATENCY_TAB = "loadkit_latency"
ERRORS_TAB = "loadkit_errors"


def install_web_tabs(web_ui: Any, rows: Callable[[], list[dict[str, Any]]]) -> None:
    """Two tabs in Locust's web UI: exact HDR latencies per endpoint, and errors by kind.

    Locust's own tables show its rounded percentiles; these show the recorder's, live. Rows ride
    on the UI's ``/stats/requests`` poll (``extended_stats``), added in an ``after_request`` hook;
    ``rows`` gives them (``web_tab_rows`` of the plugin's current recorder).
    """
    web_ui.template_args.update(
        extended_tabs=[
            {"title": "Exact latency (loadkit)", "key": LATENCY_TAB},
            {"title": "Errors by kind (loadkit)", "key": ERRORS_TAB},
        ],
        extended_tables=[
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
        ],
    )

    def add_rows(response: Any) -> Any:
        from flask import request

        if not request.path.endswith("/stats/requests") or response.status_code != 200:
            return response
        try:
            report = response.get_json()
            report["extended_stats"] = rows()
            response.set_data(orjson.dumps(report))
        except Exception:  # the UI's own figures must keep coming whatever happens here
            logger.exception("loadkit: cannot add its rows to the web UI")
        return response

    web_ui.app.after_request(add_rows)


def web_tab_rows(recorder: LatencyRecorder | None) -> list[dict[str, Any]]:
    """The rows of both tabs from a recorder (the merged one, on a master)."""
    if recorder is None:
        return [{"key": LATENCY_TAB, "data": []}, {"key": ERRORS_TAB, "data": []}]
    latency = [
        {
            "endpoint": e.name,
            "requests": e.requests,
            "errors": e.errors,
            "p50": e.latency_ms.p50,
            "p95": e.latency_ms.p95,
            "p99": e.latency_ms.p99,
            "max": e.latency_ms.max,
        }
        for e in recorder.endpoint_results()
    ]
    errors = [
        {
            "endpoint": g.endpoint,
            "kind": g.kind,
            "count": g.count,
            "status": ", ".join(f"{code}x{n}" for code, n in g.status_codes.items()),
            "trace_id": g.example_trace_id or "",
        }
        for g in recorder.error_groups()
    ]
    return [{"key": LATENCY_TAB, "data": latency}, {"key": ERRORS_TAB, "data": errors}]

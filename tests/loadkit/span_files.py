"""Span files written by hand: OTLP-JSON ``ExportTraceServiceRequest`` records, as the service's
``ENGINES_TRACE_FILE`` holds them (one per line), built from a compact description of a request.

Times are in milliseconds from the request's start; each child span of a request is given as
``(name, start_ms, end_ms, parent)``, parent 0 being the SERVER span and i the i-th child.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ORIGIN_NS = 1_764_000_000_000_000_000
_ids = itertools.count(1)


@dataclass
class Req:
    """One request: its route, method, status, error kind and child spans."""

    route: str = "/api/auth/login"
    method: str = "POST"
    status: int = 200
    duration_ms: float = 100.0
    children: Sequence[tuple[str, float, float, int]] = ()
    """(name, start ms, end ms, parent index: 0 = the SERVER span, i = children[i - 1])."""
    error_kind: str | None = None
    start_ms: float = 0.0
    trace_id: str = field(default_factory=lambda: f"{next(_ids):032x}")
    db: frozenset[str] = frozenset()
    """Names of children that are database statements (carry ``db.system``)."""


def _attr(key: str, value: str | int) -> dict[str, Any]:
    if isinstance(value, int):
        return {"key": key, "value": {"intValue": str(value)}}
    return {"key": key, "value": {"stringValue": value}}


def request_spans(req: Req) -> list[dict[str, Any]]:
    """The OTLP-JSON spans of one request, SERVER span first."""
    ids = [f"{next(_ids):016x}" for _ in range(len(req.children) + 1)]

    def ns(ms: float) -> str:
        return str(ORIGIN_NS + round((req.start_ms + ms) * 1e6))

    attributes = [
        _attr("http.route", req.route),
        _attr("http.request.method", req.method),
        _attr("http.response.status_code", req.status),
    ]
    if req.error_kind:
        attributes.append(_attr("engines.error_kind", req.error_kind))
    spans = [
        {
            "traceId": req.trace_id,
            "spanId": ids[0],
            "parentSpanId": "",
            "name": f"{req.method} {req.route}",
            "kind": 2,
            "startTimeUnixNano": ns(0),
            "endTimeUnixNano": ns(req.duration_ms),
            "attributes": attributes,
            "status": {},
        }
    ]
    for index, (name, start, end, parent) in enumerate(req.children, start=1):
        child_attributes = [_attr("db.system", "sqlite")] if name in req.db else []
        spans.append(
            {
                "traceId": req.trace_id,
                "spanId": ids[index],
                "parentSpanId": ids[parent],
                "name": name,
                "kind": 1,
                "startTimeUnixNano": ns(start),
                "endTimeUnixNano": ns(end),
                "attributes": child_attributes,
            }
        )
    return spans


def record(spans: list[dict[str, Any]]) -> dict[str, Any]:
    """One ExportTraceServiceRequest holding ``spans``."""
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": [_attr("service.name", "engines")]},
                "scopeSpans": [{"scope": {"name": "test"}, "spans": spans}],
            }
        ]
    }


def write_span_file(path: Path, requests: Sequence[Req]) -> Path:
    """One record per request, one per line, children before their SERVER span (export order)."""
    lines = []
    for req in requests:
        spans = request_spans(req)
        lines.append(json.dumps(record(spans[1:] + spans[:1])))
    path.write_text("\n".join(lines) + "\n")
    return path

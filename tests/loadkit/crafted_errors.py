"""The two views ``loadkit errors`` reads, crafted: the service's structured log lines (one dict
per line, as service/ writes them) and a client's results file with the given errors. Shared by
the breakdown's tests, the CLI's and the ones against the real service."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from loadkit.measure.recorder import LatencyRecorder
from loadkit.measure.results import LoadResults

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC).timestamp()
LOGIN = "POST /api/auth/login"


def ts(offset_s: float) -> str:
    """A log timestamp (ISO 8601, UTC, ``Z``) ``offset_s`` seconds after ``T0``."""
    return datetime.fromtimestamp(T0 + offset_s, tz=UTC).isoformat().replace("+00:00", "Z")


def request(
    endpoint: str,
    *,
    at: float = 0.0,
    method: str = "POST",
    status: int = 200,
    kind: str | None = None,
    duration_ms: float = 10.0,
    trace_id: str | None = None,
) -> dict[str, Any]:
    """One request line of the service's log, ``at`` seconds after ``T0``."""
    line: dict[str, Any] = {
        "method": method,
        "endpoint": endpoint,
        "status_code": status,
        "error_kind": kind,
        "duration_ms": duration_ms,
        "event": "request",
        "trace_id": trace_id or f"t-{endpoint}-{at}-{status}",
        "level": "info" if kind is None else "warning",
        "ts": ts(at),
    }
    if kind is not None:
        line["message"] = f"{kind} message"
    return line


def client_results(
    errors: Sequence[tuple[str, str, int | None, str | None]], *, requests: int, start: float = T0
) -> LoadResults:
    """Results as a load run would write them: (endpoint, kind, status, trace id) per error."""
    recorder = LatencyRecorder(start=start)
    for i, (endpoint, kind, status, trace_id) in enumerate(errors):
        recorder.record(
            endpoint=endpoint, latency_s=0.01, end=start + 1 + i * 0.01, error_kind=kind,
            status=status, trace_id=trace_id,
        )  # fmt: skip
    for i in range(requests - len(errors)):
        recorder.record(endpoint="GET /api/items", latency_s=0.005, end=start + 2 + i * 0.001)
    recorder.finish(end=start + 10)
    overall = recorder.overall_histogram()
    return LoadResults(
        target="http://127.0.0.1:8000",
        started_at=recorder.started_at,
        duration_s=recorder.duration_s(),
        totals=recorder.totals(),
        latency_ms=overall.summary(),
        histogram=overall.encode(),
        endpoints=recorder.endpoint_results(),
        errors=recorder.error_groups(),
    )

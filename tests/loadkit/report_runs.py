"""Load runs for the HTML report's tests and benchmark, made through the real recorder (no load).

``synthetic_run`` records a steady rate over a few endpoints, with errors of several kinds and,
optionally, a freeze: nothing completes inside it, and the requests sent into it all complete at
its end (as a service that held a lock would answer them), so the recorder sees the stall.
"""

from __future__ import annotations

import random

from loadkit.measure.recorder import LatencyRecorder
from loadkit.measure.results import LoadResults

T0 = 1_795_000_000.0  # 2026-11-18: the pictures in docs show a run in the past
ENDPOINTS = ("GET /api/items", "POST /api/auth/login", "GET /api/items/{item_id}")
ERROR_KINDS = ("storage_lock_timeout", "database_error", "timeout")


def synthetic_run(
    *,
    duration_s: int = 60,
    rate: int = 100,
    freeze: tuple[float, float] | None = None,
    error_share: float = 0.03,
    seed: int = 7,
    slow: float = 1.0,
) -> LoadResults:
    """A ``duration_s`` run at ``rate`` requests/s (closed model, 10 users) recorded through
    ``LatencyRecorder``; ``freeze`` = (from_s, to_s) holds every completion until ``to_s``;
    ``slow`` multiplies every latency (a baseline is the same run at ``slow`` < 1)."""
    rng = random.Random(seed)
    recorder = LatencyRecorder(start=T0)
    step = 1.0 / rate
    for index in range(duration_s * rate):
        sent = index * step
        latency = rng.lognormvariate(-4.0, 0.8) * slow
        end = sent + latency
        if freeze is not None and freeze[0] <= end < freeze[1]:
            end = freeze[1] + rng.uniform(0.0, 0.01)
            latency = end - sent
        kind = rng.choice(ERROR_KINDS) if rng.random() < error_share else None
        endpoint = ENDPOINTS[index % len(ENDPOINTS)]
        recorder.record(
            endpoint=endpoint,
            latency_s=latency,
            end=T0 + end,
            error_kind=kind,
            status=503 if kind else 200,
            trace_id=f"{index:032x}" if kind else None,
            message=f"{kind} on {endpoint}" if kind else None,
        )
    recorder.finish(end=T0 + duration_s)
    return LoadResults(
        target="http://127.0.0.1:8000",
        config={"scenario": "login", "concurrency": 10, "duration_s": duration_s},
        **recorder.traffic_fields(),
    )

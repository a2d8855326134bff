"""What one test recorded since it began, or since Locust last reset its stats.

A reset (the web UI's button, ``--reset-stats`` after the ramp-up) starts a new ``Recording``:
Locust forgets what it counted, and so do we, while the test itself goes on.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

from loadkit.engines.locust.failures import classify_failure
from loadkit.measure.error_reader import ErrorReader
from loadkit.measure.recorder import LatencyRecorder, RunClock

BATCH_SIZE = 256
"""Successful requests wait in a list until this many, then go into the recorder in one loop.
Called between requests, amid Locust's and geventhttpclient's code, the recorder ran ~2.5× slower
than in a loop of its own (caches cold); batched, its cost per request is the loop's. Every read
of the recorder flushes first, so what it holds, and in what order it got it, is unchanged."""
RATE_WINDOW_S = 5.0
"""The live RPS is averaged over this window: worker reports come only every 3 s."""


class Recording:
    """A recorder, the successes not yet in it, and the live counts (request listener's state).

    The request listener (``LoadkitPlugin.on_request``) appends to ``batch`` and counts
    ``requests`` itself: it runs once per request, so it reaches in rather than calling here.
    """

    def __init__(
        self, recorder: LatencyRecorder, clock: RunClock, reader: ErrorReader | None = None
    ) -> None:
        """Record into ``recorder`` (a fresh one, started now), timing on ``clock``; failures'
        kinds read by ``reader`` (the target profile's; None: the bundled service's envelope)."""
        self.recorder = recorder
        self.clock = clock
        self.reader = reader
        self.batch: list[tuple[str, float, float | None, float]] = []
        """Successful requests not yet in the recorder: (endpoint, response time s, service time
        s or None when the same, end)."""
        self.requests = 0
        self.errors = 0
        self.rates = RateWindow()
        self.worker_totals: dict[str, tuple[int, int]] = {}
        """A master's live figures: requests and errors by worker, as last reported."""

    def flush(self) -> LatencyRecorder:
        """Put the batched requests into the recorder; the recorder, up to date."""
        recorder = self.recorder
        batch = self.batch
        if batch:
            record = recorder.record
            for endpoint, latency_s, service_s, end in batch:
                record(endpoint=endpoint, latency_s=latency_s, end=end, service_s=service_s)
            batch.clear()
        return recorder

    def record_failure(
        self,
        *,
        endpoint: str,
        latency_s: float,
        service_s: float | None,
        end: float,
        response: Any,
        exception: BaseException,
        sent_trace_id: str | None = None,
    ) -> None:
        """A failed request (response and service time as in ``batch``): classified, in
        completion order."""
        self.flush()
        self.errors += 1
        failure = classify_failure(response, exception, self.reader, sent_trace_id)
        self.recorder.record(
            endpoint=endpoint,
            latency_s=latency_s,
            service_s=service_s,
            end=end,
            error_kind=failure.kind,
            status=failure.status,
            trace_id=failure.trace_id,
            message=failure.message,
        )


class RateWindow:
    """Requests per second and error rate over the last ``RATE_WINDOW_S`` seconds."""

    def __init__(self) -> None:
        """Counting starts from zero now: the first live line has a rate, not a blank."""
        self._samples: deque[tuple[float, int, int]] = deque([(time.monotonic(), 0, 0)])

    def rates(self, now: float, requests: int, errors: int) -> tuple[float, float]:
        """(req/s, error rate) since the window's oldest sample, given the counts ``now``."""
        samples = self._samples
        samples.append((now, requests, errors))
        while len(samples) > 1 and now - samples[0][0] > RATE_WINDOW_S:
            samples.popleft()
        first_at, first_requests, first_errors = samples[0]
        done = requests - first_requests
        if now - first_at <= 0 or done <= 0:
            return 0.0, 0.0
        return done / (now - first_at), (errors - first_errors) / done

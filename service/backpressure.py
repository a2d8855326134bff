"""The in-flight limit: past ``ENGINES_MAX_IN_FLIGHT`` requests at once, answer overloaded at once.

Queueing every request makes everyone slow (P95 explodes, then clients time out); refusing the
excess at once with 503 overloaded and ``Retry-After`` keeps the accepted requests fast and tells
the others when to come back. uvicorn's ``--limit-concurrency`` also answers 503, but without
``Retry-After`` or the error envelope, so the limit lives here.

The middleware sits inside ``RequestContextMiddleware`` (which turns ``Overloaded`` into the
envelope, trace id, Retry-After and log line) and outside the fault injection (a slowed request
still counts as in flight), but inside the body-size limit, which reads the body first: a client
slow to send its body does not hold an in-flight place meanwhile. ``/health``, ``/version`` and
``/metrics`` are never refused: probes and scrapes must see the service as it is, overloaded or
not.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from service.errors import Overloaded
from service.faults import OPERATIONAL_PATHS


class InFlightCounter:
    """How many requests are in flight (read by the metrics)."""

    def __init__(self) -> None:
        self.value = 0


class InFlightLimitMiddleware:
    """Counts requests in flight and refuses those past ``max_in_flight`` (0: never refuses)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_in_flight: int,
        retry_after_s: int,
        counter: InFlightCounter,
    ) -> None:
        self.app = app
        self.max_in_flight = max_in_flight
        self.retry_after_s = retry_after_s
        self.counter = counter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        counter = self.counter
        limited = self.max_in_flight > 0 and scope["path"] not in OPERATIONAL_PATHS
        if limited and counter.value >= self.max_in_flight:
            raise Overloaded(
                f"more than {self.max_in_flight} requests in flight, retry later",
                retry_after_s=self.retry_after_s,
            )
        counter.value += 1
        try:
            await self.app(scope, receive, send)
        finally:
            counter.value -= 1

"""Fault injection: settings that make the service misbehave on purpose (all off by default).

The harness must be able to show that its gate fails when it should; these faults give it a
target that fails in each way it watches for:

- latency: ``ENGINES_FAULT_LATENCY_MS`` (+ random ``0..ENGINES_FAULT_LATENCY_JITTER_MS``) added to
  a share ``ENGINES_FAULT_LATENCY_SHARE`` of requests;
- errors: a share ``ENGINES_FAULT_ERROR_SHARE`` of requests fails with ``ENGINES_FAULT_ERROR_KIND``
  (the handler does not run);
- lock hold: the storage lock is held ``ENGINES_FAULT_LOCK_HOLD_MS`` on every ``with_storage`` use
  (the original freeze; see ``Storage``);
- slow queries: every database session holds its connection ``ENGINES_FAULT_SLOW_QUERY_MS`` longer
  (see ``Database``);
- stall: from ``ENGINES_FAULT_STALL_AT_S`` after start-up, for ``ENGINES_FAULT_STALL_S``, every
  request waits until the stall ends (an API freeze);
- stall after headers: a share ``ENGINES_FAULT_STALL_AFTER_HEADERS_SHARE`` of responses send their
  status and headers, then hold their body ``ENGINES_FAULT_STALL_AFTER_HEADERS_MS``, as a
  streaming handler that froze on the lock mid-response does. Its status is out and cannot be
  changed any more: behind an HTTP/2 edge whose upstream read timeout is shorter (nginx's
  ``proxy_read_timeout``, ``loadkit serve --http2 --edge-timeout``), the client's stream is reset
  with RST_STREAM INTERNAL_ERROR, the seed's failure (docs/http2.md). Over plain HTTP/1.1 the
  response is only late.

Faults apply only to requests whose path starts with one of ``ENGINES_FAULT_PATHS`` (all when
empty), and never to ``/health``, ``/version`` and ``/metrics``: start-up checks and scrapes must
keep answering. ``FaultInjectionMiddleware`` marks the requests in scope (a context variable) so
the storage and database faults, deeper down, hit the same requests.
"""

from __future__ import annotations

import asyncio
import random
import time
from contextvars import ContextVar
from dataclasses import dataclass, field

from opentelemetry.trace import Tracer
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import ErrorKind, ServiceError, error_class_for
from service.settings import Settings
from service.tracing import child_span

OPERATIONAL_PATHS = frozenset({"/health", "/version", "/metrics"})
"""Never slowed, failed or stalled, and never refused as overloaded: probes and scrapes."""

_IN_FAULT_SCOPE: ContextVar[bool] = ContextVar("engines_in_fault_scope", default=False)


def in_fault_scope() -> bool:
    """Whether the current request is one the faults apply to (False outside requests)."""
    return _IN_FAULT_SCOPE.get()


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """The faults switched on, read from the settings once."""

    latency_s: float = 0.0
    latency_jitter_s: float = 0.0
    latency_share: float = 1.0
    error_share: float = 0.0
    error_kind: ErrorKind = ErrorKind.INTERNAL_ERROR
    lock_hold_s: float = 0.0
    slow_query_s: float = 0.0
    stall_at_s: float = 0.0
    stall_s: float = 0.0
    stall_after_headers_s: float = 0.0
    stall_after_headers_share: float = 1.0
    paths: tuple[str, ...] = ()

    @classmethod
    def from_settings(cls, settings: Settings) -> FaultPlan:
        """The plan the ``ENGINES_FAULT_*`` settings describe."""
        return cls(
            latency_s=settings.fault_latency_ms / 1000,
            latency_jitter_s=settings.fault_latency_jitter_ms / 1000,
            latency_share=settings.fault_latency_share,
            error_share=settings.fault_error_share,
            error_kind=settings.fault_error_kind,
            lock_hold_s=settings.fault_lock_hold_ms / 1000,
            slow_query_s=settings.fault_slow_query_ms / 1000,
            stall_at_s=settings.fault_stall_at_s,
            stall_s=settings.fault_stall_s,
            stall_after_headers_s=settings.fault_stall_after_headers_ms / 1000,
            stall_after_headers_share=settings.fault_stall_after_headers_share,
            paths=tuple(p.strip() for p in settings.fault_paths.split(",") if p.strip()),
        )

    @property
    def latency_on(self) -> bool:
        """Some requests get added latency."""
        return (self.latency_s > 0 or self.latency_jitter_s > 0) and self.latency_share > 0

    @property
    def stall_after_headers_on(self) -> bool:
        """Some responses hold their body after their headers went out."""
        return self.stall_after_headers_s > 0 and self.stall_after_headers_share > 0

    @property
    def any_on(self) -> bool:
        """At least one fault is switched on."""
        return bool(self.active())

    def active(self) -> dict[str, dict[str, object]]:
        """Each fault switched on, by name, with the figures it runs with (for the start-up log)."""
        faults: dict[str, dict[str, object]] = {}
        if self.latency_on:
            faults["latency"] = {
                "latency_ms": round(self.latency_s * 1000),
                "jitter_ms": round(self.latency_jitter_s * 1000),
                "share": self.latency_share,
            }
        if self.error_share > 0:
            faults["error"] = {"share": self.error_share, "kind": self.error_kind.value}
        if self.lock_hold_s > 0:
            faults["lock_hold"] = {"hold_ms": round(self.lock_hold_s * 1000)}
        if self.slow_query_s > 0:
            faults["slow_query"] = {"delay_ms": round(self.slow_query_s * 1000)}
        if self.stall_s > 0:
            faults["stall"] = {"at_s": self.stall_at_s, "duration_s": self.stall_s}
        if self.stall_after_headers_on:
            faults["stall_after_headers"] = {
                "stall_ms": round(self.stall_after_headers_s * 1000),
                "share": self.stall_after_headers_share,
            }
        return faults

    def applies_to(self, path: str) -> bool:
        """Whether requests to ``path`` are subject to the faults."""
        if path in OPERATIONAL_PATHS:
            return False
        return not self.paths or any(path.startswith(prefix) for prefix in self.paths)


@dataclass(slots=True)
class StallClock:
    """When the stall window lies, counted from the app's start-up (set by the lifespan)."""

    started: float = field(default_factory=time.monotonic)

    def restart(self) -> None:
        """Count from now (the lifespan calls this once the app has started)."""
        self.started = time.monotonic()


class FaultInjectionMiddleware:
    """Applies the request-level faults (stall, latency, errors) and marks requests in scope.

    Sits inside the in-flight limit, so a slowed or stalled request still counts as in flight
    (as it would in a really slow service), and inside ``RequestContextMiddleware``, so an
    injected error is answered with the envelope, a trace id and a log line.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        plan: FaultPlan,
        clock: StallClock,
        rng: random.Random | None = None,
        tracer: Tracer | None = None,
    ) -> None:
        """``tracer``: a ``fault.<name>`` span for each fault applied (None: tracing off)."""
        self.app = app
        self.tracer = tracer
        self.plan = plan
        self.clock = clock
        # Not for security: a share of requests to disturb.
        self.rng = rng or random.Random()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.plan.applies_to(scope["path"]):
            await self.app(scope, receive, send)
            return
        token = _IN_FAULT_SCOPE.set(True)
        try:
            await self._disturb()
            plan = self.plan
            if plan.stall_after_headers_on and self.rng.random() < plan.stall_after_headers_share:
                send = _stalled_after_headers(send, plan.stall_after_headers_s, self.tracer)
            await self.app(scope, receive, send)
        finally:
            _IN_FAULT_SCOPE.reset(token)

    async def _disturb(self) -> None:
        plan = self.plan
        if plan.stall_s > 0:
            stall_start = self.clock.started + plan.stall_at_s
            stall_end = stall_start + plan.stall_s
            now = time.monotonic()
            if stall_start <= now < stall_end:
                with child_span(self.tracer, "fault.stall"):
                    await asyncio.sleep(stall_end - now)
        if plan.latency_on and self.rng.random() < plan.latency_share:
            with child_span(self.tracer, "fault.latency"):
                await asyncio.sleep(plan.latency_s + self.rng.uniform(0, plan.latency_jitter_s))
        if plan.error_share > 0 and self.rng.random() < plan.error_share:
            with child_span(self.tracer, "fault.error") as span:
                if span is not None:
                    span.set_attribute("engines.error_kind", plan.error_kind.value)
                raise injected_error(plan.error_kind)


def _stalled_after_headers(send: Send, stall_s: float, tracer: Tracer | None) -> Send:
    """``send``, holding the response ``stall_s`` once its status and headers were sent.

    The server writes the headers when it gets ``http.response.start`` (uvicorn does), so the
    client (or the proxy in front) has them while the body waits: a response broken off
    mid-way, which an error handler can no longer turn into a 5xx.
    """

    async def stalling_send(message: Message) -> None:
        await send(message)
        if message["type"] == "http.response.start":
            with child_span(tracer, "fault.stall_after_headers"):
                await asyncio.sleep(stall_s)

    return stalling_send


def injected_error(kind: ErrorKind) -> ServiceError:
    """The error an injected failure of ``kind`` raises (its message says it was injected)."""
    return error_class_for(kind)(f"injected fault: {kind.value}")

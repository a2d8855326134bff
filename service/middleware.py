"""ASGI middleware: trace ids, the request log line, unhandled errors, and the body-size limit.

Order (outermost first): OpenTelemetry's ASGI middleware when tracing is on (``service.tracing``:
the server span) → ``RequestContextMiddleware`` → ``BodySizeLimitMiddleware`` (the body is
read before the request counts as in flight) → ``InFlightLimitMiddleware`` (service.backpressure)
→ ``FaultInjectionMiddleware`` (service.faults) → the app. Whatever the inner ones raise as a
``ServiceError`` is answered with the error envelope, a trace id and a log line by
``RequestContextMiddleware``.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import structlog
from opentelemetry import trace
from starlette.datastructures import MutableHeaders
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.context import TRACE_HEADER, RequestContext, incoming_ids, request_context
from service.errors import (
    InternalError,
    PayloadTooLarge,
    ServiceError,
    ShuttingDown,
    classify,
    error_response,
)
from service.logs import LEVELS, get_logger

UNMATCHED_ENDPOINT = "unmatched"
"""The endpoint logged for a request that matched no route (never the raw path: unbounded)."""

RETRY_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
"""Methods that write nothing: cut by the shutdown grace, they are answered 503 shutting_down
with Retry-After. Any other method may have written before it was cut, so it gets no error answer
(``service.server`` closes its connection): the client must not be told it failed."""


def endpoint_of(scope: Scope, routes: Sequence[BaseRoute] = ()) -> str:
    """The route template the request matched, e.g. ``/api/items/{item_id}``.

    A request refused before routing (overloaded, an injected fault, a body too large) has no
    route in its scope yet; it is matched against ``routes`` (the app's own, see ``create_app``)
    so that its log line and metrics still name the endpoint it was for.
    """
    route = scope.get("route") or _route_matching(scope, routes)
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    return template if isinstance(template, str) else UNMATCHED_ENDPOINT


def _route_matching(scope: Scope, routes: Sequence[BaseRoute]) -> BaseRoute | None:
    partial: BaseRoute | None = None
    for route in routes:
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return route
        if match is Match.PARTIAL and partial is None:
            partial = route  # the path matches, the method does not (a 405)
    return partial


@dataclass(frozen=True, slots=True)
class AnsweredRequest:
    """What the log line says about a request, handed to the request observers (metrics)."""

    method: str
    endpoint: str
    status_code: int
    error_kind: str | None
    duration_s: float


RequestObserver = Callable[[AnsweredRequest], None]
"""Called once per answered request; must be fast and must not raise."""


def request_trace_ids(scope: Scope) -> tuple[str, str | None]:
    """The request's trace id and the client's request id when it is not that trace id.

    The current span's trace id when there is one (tracing on: a valid ``traceparent``'s, or
    the one ``service.tracing`` gave the span); else a valid ``traceparent``'s, else a
    well-formed X-Request-Id / X-Trace-Id, else a fresh one (``service.context``).
    """
    ids = incoming_ids(scope)
    span_context = trace.get_current_span().get_span_context()
    if span_context.is_valid:
        trace_id = format(span_context.trace_id, "032x")
    else:
        trace_id = ids.traceparent_trace_id or ids.request_id or uuid.uuid4().hex
    request_id = ids.request_id if ids.request_id != trace_id else None
    return trace_id, request_id


class RequestContextMiddleware:
    """Gives every request a trace id (echoed in ``X-Trace-Id``), answers anything the app
    raised with the error envelope, and writes the request's log line (and puts what it says
    on the request's server span, when tracing is on)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        access_log_level: str,
        retry_after_s: int,
        observers: tuple[RequestObserver, ...] = (),
        routes: Sequence[BaseRoute] = (),
    ) -> None:
        """``routes``: the app's routes, to name the endpoint of requests refused before
        routing; ``observers``: called with every answered request (metrics)."""
        self.app = app
        self.routes = tuple(routes)
        self.access_level = LEVELS[access_log_level]
        self.retry_after_s = retry_after_s
        self.observers = observers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        trace_id, request_id = request_trace_ids(scope)
        context = RequestContext(trace_id=trace_id, request_id=request_id)
        scope.setdefault("state", {})["request_context"] = context
        status_code = 0

        async def send_with_trace_id(message: Message) -> None:
            nonlocal status_code
            if message["type"] == "http.response.start":
                status_code = message["status"]
                MutableHeaders(scope=message)[TRACE_HEADER] = context.trace_id
                span = trace.get_current_span()
                if span.is_recording():
                    # Now: OpenTelemetry's middleware ends the span with the response body.
                    endpoint = endpoint_of(scope, self.routes)
                    _describe_server_span(span, scope["method"], endpoint, status_code, context)
            await send(message)

        log_ids = {"trace_id": trace_id}
        if request_id is not None:
            log_ids["request_id"] = request_id
        with structlog.contextvars.bound_contextvars(**log_ids):
            try:
                await self.app(scope, receive, send_with_trace_id)
            except asyncio.CancelledError:
                # uvicorn cancels what is still running when the shutdown grace runs out. The
                # log line must not pass for a quiet success; a read not yet answered gets the
                # envelope (uvicorn's own answer would be a plain-text 500), a write gets none.
                context.error_message = "cancelled before it was answered (shutdown grace over)"
                task = asyncio.current_task()
                if task is not None:
                    # Handled here, and the request ends now: re-raising would only add
                    # uvicorn's traceback and its plain-text 500 where no answer is due.
                    task.uncancel()
                if status_code or scope["method"] not in RETRY_SAFE_METHODS:
                    return  # its connection is closed by service.server: no answer
                cut = ShuttingDown()
                context.error_kind = cut.kind.value
                response = error_response(
                    cut, trace_id=context.trace_id, retry_after_s=self.retry_after_s
                )
                response.headers["Connection"] = "close"
                await response(scope, receive, send_with_trace_id)
            except Exception as exc:
                error = classify(exc)
                context.error_kind = error.kind.value
                context.error_message = error.message
                if isinstance(error, InternalError) and not isinstance(exc, ServiceError):
                    get_logger().error(
                        "unhandled_exception",
                        method=scope["method"],
                        endpoint=endpoint_of(scope, self.routes),
                        exc_info=exc,
                    )
                if status_code:
                    # The response has started: nothing can be sent any more; the server
                    # closes the connection. The log line below still records the failure.
                    status_code = error.status_code
                else:
                    response = error_response(
                        error, trace_id=context.trace_id, retry_after_s=self.retry_after_s
                    )
                    await response(scope, receive, send_with_trace_id)
            finally:
                self._log_request(scope, context, status_code)

    def _log_request(self, scope: Scope, context: RequestContext, status_code: int) -> None:
        if status_code >= 500 or status_code == 0:
            level = LEVELS["error"]
        elif context.error_kind is not None or status_code >= 400:
            level = LEVELS["warning"]
        else:
            level = self.access_level
        answered = AnsweredRequest(
            method=scope["method"],
            endpoint=endpoint_of(scope, self.routes),
            status_code=status_code,
            error_kind=context.error_kind,
            duration_s=time.perf_counter() - context.started,
        )
        fields: dict[str, object] = {
            "method": answered.method,
            "endpoint": answered.endpoint,
            "status_code": status_code,
            "error_kind": context.error_kind,
            "duration_ms": round(answered.duration_s * 1000, 3),
        }
        if context.error_message is not None:
            fields["message"] = context.error_message
        get_logger().log(level, "request", **fields)
        # Tracing on and no answer sent (so the span is still open): it says so too.
        span = trace.get_current_span()
        if span.is_recording():
            _describe_server_span(span, answered.method, answered.endpoint, status_code, context)
        for observer in self.observers:
            observer(answered)


def _describe_server_span(
    span: trace.Span, method: str, endpoint: str, status_code: int, context: RequestContext
) -> None:
    """The span contract (docs/tracing.md): what the log line says, under OpenTelemetry's
    current HTTP attribute names (set here whatever semconv mode the instrumentation runs in),
    and the span named after the route template, known only once the request was routed."""
    span.update_name(f"{method} {endpoint}")
    span.set_attribute("http.route", endpoint)
    span.set_attribute("http.request.method", method)
    if status_code:
        span.set_attribute("http.response.status_code", status_code)
    if context.error_kind is not None:
        span.set_attribute("engines.error_kind", context.error_kind)
    if context.request_id is not None:
        span.set_attribute("engines.request_id", context.request_id)
    if status_code >= 500 or status_code == 0:
        description = context.error_message or context.error_kind or "no answer"
        span.set_status(trace.StatusCode.ERROR, description)


class BodySizeLimitMiddleware:
    """Refuses bodies over ``max_body_bytes`` with payload_too_large (413): by Content-Length
    when declared, else by counting the streamed body before the app sees any of it."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = PayloadTooLarge(f"request body is over {self.max_body_bytes} bytes")
        declared = dict(scope.get("headers", ())).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            raise too_large
        # Buffer the (bounded) body first, so an oversized stream is refused before any
        # handler has read part of it, then replay it to the app.
        chunks: list[bytes] = []
        size = 0
        more_body = True
        while more_body:
            message = await receive()
            if message["type"] != "http.request":
                # The client went away before sending its body: nothing to answer, but the
                # log line (status_code 0) says why rather than look like a silent failure.
                context = request_context(scope)
                if context is not None:
                    context.error_message = "client disconnected before sending its whole body"
                return
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise too_large
            chunks.append(chunk)
            more_body = message.get("more_body", False)
        body = b"".join(chunks)
        replayed = False

        async def replay_body() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay_body, send)

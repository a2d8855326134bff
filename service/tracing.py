"""Tracing: OpenTelemetry spans for the service, set up once per app from the environment.

Off unless an exporter is asked for (then ``setup_tracing`` returns None and nothing is built: no
provider, no middleware, no span anywhere):

- OTLP over HTTP/protobuf when ``OTEL_EXPORTER_OTLP_ENDPOINT`` or
  ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` is set (or ``OTEL_TRACES_EXPORTER`` names ``otlp``);
  the exporter reads its own ``OTEL_EXPORTER_OTLP_*`` settings;
- a span file when ``ENGINES_TRACE_FILE`` is set (``service.span_file``).

``OTEL_SDK_DISABLED=true`` turns everything off; ``OTEL_TRACES_EXPORTER`` (``otlp``, ``console``,
``none``, comma-separated) picks the exporters besides the span file; ``OTEL_TRACES_SAMPLER`` /
``OTEL_TRACES_SAMPLER_ARG`` are read by the SDK itself, and when unset the service samples with
``DEFAULT_SAMPLER`` (chosen from the overhead measured in docs/benchmarks.md).

The spans (docs/tracing.md): one SERVER span per request from OpenTelemetry's ASGI middleware
(``service.middleware`` adds the route template, method, status and error kind), children from
SQLAlchemy's instrumentation (each statement), and the hand-made ones no library provides:
``storage.lock_wait``/``storage.lock_hold``, ``password.hash``/``password.verify``,
``token.sign``/``token.verify`` and ``fault.<name>``. /health, /version and /metrics are not
traced (probes and scrapes).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.context import Context
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
from opentelemetry.sdk.environment_variables import (
    OTEL_EXPORTER_OTLP_ENDPOINT,
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
    OTEL_SDK_DISABLED,
    OTEL_TRACES_SAMPLER,
)
from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import (
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from opentelemetry.trace import Link, Span, SpanKind, Tracer, TraceState, get_current_span
from opentelemetry.util.types import Attributes
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.types import Scope

from service.context import incoming_ids
from service.settings import Settings
from service.span_file import SpanFileExporter

OTEL_TRACES_EXPORTER = "OTEL_TRACES_EXPORTER"
KNOWN_EXPORTERS = frozenset({"otlp", "console", "none"})
SERVICE = "engines"
UNTRACED_PATHS = ("/health", "/version", "/metrics")
"""Probes and scrapes: never traced (as they are never slowed by faults)."""
DEFAULT_SAMPLER_RATIO = 0.1
DEFAULT_SAMPLER: Sampler = ParentBased(TraceIdRatioBased(DEFAULT_SAMPLER_RATIO))
"""When OTEL_TRACES_SAMPLER is unset (see docs/benchmarks.md, "Tracing overhead")."""

_TRACE_ID_HINT: ContextVar[int | None] = ContextVar("engines_trace_id_hint", default=None)


class TracingConfigError(ValueError):
    """A tracing setting the service cannot honour (the message names it and its value)."""


class RequestIdGenerator(RandomIdGenerator):
    """Random ids, except that a server span with no ``traceparent`` takes the trace id the
    client sent as X-Request-Id / X-Trace-Id when it can be one (32 hex digits): the log line,
    ``X-Trace-Id`` and the span then keep the id the client knows (``service.context``)."""

    def generate_trace_id(self) -> int:
        """The hinted trace id once, else a random one."""
        hint = _TRACE_ID_HINT.get()
        if hint is not None:
            _TRACE_ID_HINT.set(None)
            return hint
        return super().generate_trace_id()


def _server_span_details(scope: Scope) -> tuple[str, dict[str, Any]]:
    """The server span's first name (the route is not known yet: the request middleware
    renames it ``METHOD /route/{template}``), and the trace id hint for the id generator."""
    ids = incoming_ids(scope)
    if ids.traceparent_trace_id is None:
        hinted = ids.request_id_as_trace_id
        if hinted is not None:
            _TRACE_ID_HINT.set(int(hinted, 16))
    return str(scope.get("method", "HTTP")), {}


_URL_ATTRIBUTES = ("http.url", "http.target", "url.full")
"""The server span's attributes that may end in the query (old and current HTTP semconv)."""
REDACTED = "REDACTED"


def redact_query(query: str) -> str:
    """``query`` with every value replaced by ``REDACTED``, the names kept (``key=REDACTED``);
    a part without ``=`` is replaced whole."""
    return "&".join(
        f"{part.partition('=')[0]}={REDACTED}" if "=" in part else REDACTED if part else part
        for part in query.split("&")
    )


def redact_query_attributes(span: Span, _scope: Scope) -> None:
    """The server span's URL attributes with the query's values redacted (the ASGI
    instrumentation's server request hook): a query carries API keys and tokens, and the span
    file lands in accept's report folder. Path and route are kept."""
    attributes = getattr(span, "attributes", None)  # the SDK's span (a recorded one) has them
    if not attributes:
        return
    for key in _URL_ATTRIBUTES:
        value = attributes.get(key)
        if isinstance(value, str) and "?" in value:
            head, _, query = value.partition("?")
            span.set_attribute(key, f"{head}?{redact_query(query)}")
    query = attributes.get("url.query")
    if isinstance(query, str) and query:
        span.set_attribute("url.query", redact_query(query))


class RequestSpansOnly(Sampler):
    """``inner``'s decision for spans of a request; no span for work outside any request
    (start-up, the idempotency sweep, the pool's ping): their statements would be traces of
    their own with no request to belong to."""

    def __init__(self, inner: Sampler) -> None:
        self.inner = inner

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        """Drop a root span that is not a request's; else ask ``inner``."""
        parent = get_current_span(parent_context).get_span_context()
        if not parent.is_valid and kind is not SpanKind.SERVER:
            return SamplingResult(Decision.DROP)
        return self.inner.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )

    def get_description(self) -> str:
        """E.g. ``RequestSpansOnly{ParentBased{...}}``."""
        return f"RequestSpansOnly{{{self.inner.get_description()}}}"


@dataclass
class Tracing:
    """The app's tracer provider and what it exports to."""

    provider: TracerProvider
    exporters: tuple[str, ...]
    """What the spans go to, for the start-up log (e.g. ``otlp``, ``file:/tmp/spans.jsonl``)."""

    @property
    def tracer(self) -> Tracer:
        """The tracer of the service's hand-made spans."""
        return self.provider.get_tracer("service")

    def middleware_options(self) -> dict[str, Any]:
        """Keyword arguments of OpenTelemetry's ASGI middleware for this app."""
        untraced = "|".join(path.lstrip("/") for path in UNTRACED_PATHS)
        return {
            "tracer_provider": self.provider,
            # The URL the middleware matches is scheme://host[:port]/path (no query).
            "excluded_urls": rf"^[a-z]+://[^/]*/({untraced})/?$",
            "default_span_details": _server_span_details,
            "server_request_hook": redact_query_attributes,
            # No spans for each ASGI receive/send message: noise, and a cost on every request.
            "exclude_spans": ["receive", "send"],
        }

    def instrument_engine(self, engine: AsyncEngine) -> None:
        """A span for each statement the engine runs (SQLAlchemy's instrumentation)."""
        tracer = self.provider.get_tracer("opentelemetry.instrumentation.sqlalchemy")
        usage = metrics.get_meter("service").create_up_down_counter(
            "db.client.connections.usage", unit="connections"
        )
        EngineTracer(tracer, engine.sync_engine, usage)  # type: ignore[no-untyped-call]

    def shutdown(self) -> None:
        """Export what is buffered, then stop (the app's shutdown; bounded by the exporters'
        own timeouts)."""
        self.provider.shutdown()


def add_tracing_middleware(app: Any, tracing: Tracing) -> None:
    """Make OpenTelemetry's ASGI middleware the app's outermost (added last)."""
    app.add_middleware(OpenTelemetryMiddleware, **tracing.middleware_options())


def setup_tracing(settings: Settings, environ: Mapping[str, str] | None = None) -> Tracing | None:
    """The tracing the environment asks for, or None when no exporter is (or the SDK is off).

    Raises ``TracingConfigError`` for an ``OTEL_TRACES_EXPORTER`` value the service cannot
    honour, or an ``ENGINES_TRACE_FILE`` it cannot open.
    """
    env = os.environ if environ is None else environ
    if env.get(OTEL_SDK_DISABLED, "").strip().lower() == "true":
        return None
    named = _exporters_named(env.get(OTEL_TRACES_EXPORTER, ""))
    exporters: list[tuple[str, Any]] = []
    endpoint_set = bool(
        env.get(OTEL_EXPORTER_OTLP_ENDPOINT) or env.get(OTEL_EXPORTER_OTLP_TRACES_ENDPOINT)
    )
    if "otlp" in named and (endpoint_set or OTEL_TRACES_EXPORTER in env):
        # Imported only when used: it brings requests and the protobuf stubs.
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporters.append(("otlp", OTLPSpanExporter()))
    if "console" in named:
        # stderr: stdout carries the service's JSON log lines.
        exporters.append(("console", ConsoleSpanExporter(out=sys.stderr)))
    if settings.trace_file:
        try:
            span_file = SpanFileExporter(settings.trace_file)
        except OSError as error:
            raise TracingConfigError(
                f"ENGINES_TRACE_FILE={settings.trace_file!r}: cannot open it for appending "
                f"({error.strerror}); name a file in a folder that exists and may be written"
            ) from None
        exporters.append((f"file:{settings.trace_file}", span_file))
    if not exporters:
        return None
    resource_attributes: dict[str, Any] = {SERVICE_VERSION: settings.git_commit}
    if not env.get("OTEL_SERVICE_NAME"):
        resource_attributes[SERVICE_NAME] = SERVICE
    provider = TracerProvider(
        # None: the SDK reads OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG itself.
        sampler=None if env.get(OTEL_TRACES_SAMPLER) else DEFAULT_SAMPLER,
        resource=Resource.create(resource_attributes),
        id_generator=RequestIdGenerator(),
        shutdown_on_exit=False,  # the app's lifespan shuts it down (after the last request)
    )
    provider.sampler = RequestSpansOnly(provider.sampler)  # before any tracer is made
    for _, exporter in exporters:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    return Tracing(provider=provider, exporters=tuple(name for name, _ in exporters))


def _exporters_named(value: str) -> frozenset[str]:
    names = frozenset(part.strip().lower() for part in value.split(",") if part.strip())
    unknown = sorted(names - KNOWN_EXPORTERS)
    if unknown:
        raise TracingConfigError(
            f"OTEL_TRACES_EXPORTER={value!r}: {', '.join(unknown)} is not an exporter the service "
            f"has; use {', '.join(sorted(KNOWN_EXPORTERS))} (comma-separated)"
        )
    if "none" in names:
        return frozenset()
    return names or frozenset({"otlp"})


_NOTHING: AbstractContextManager[None] = nullcontext()


def child_span(tracer: Tracer | None, name: str) -> AbstractContextManager[Span | None]:
    """A span ``name`` under the current one, when tracing is on and the current span is
    recorded (a sampled request); else nothing, at next to no cost. Gives the span or None.

    An exception leaving the block is recorded on the span, which then ends in error.
    """
    if tracer is None or not trace.get_current_span().is_recording():
        return _NOTHING
    return tracer.start_as_current_span(name)

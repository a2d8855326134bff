"""Per-request context: the trace id and what the request ended in, shared by the middleware,
the error handlers and the log line.

Which trace id a request gets (DESIGN.md, "Trace header"): the trace id of a valid W3C
``traceparent`` wins; else a well-formed ``X-Request-Id`` / ``X-Trace-Id``; else a fresh one.
When tracing is on, the server span's trace id is the request's (``service.tracing`` makes the
span take the same id by the same rules whenever that id can be a trace id: 32 hex digits).
"""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass, field

from starlette.types import Scope

TRACE_HEADER = "X-Trace-Id"
INCOMING_TRACE_HEADERS = (b"x-request-id", b"x-trace-id")
_SAFE_TRACE_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
"""A client's id is reused only if it cannot inject anything into logs or headers."""
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
"""W3C Trace Context, level 1, as OpenTelemetry's propagator parses it (lowercase hex only)."""
_W3C_TRACE_ID = re.compile(r"[0-9a-f]{32}")
_ZERO_TRACE_ID = "0" * 32
_ZERO_SPAN_ID = "0" * 16


@dataclass(slots=True)
class RequestContext:
    """What one request carries from the first middleware to its log line."""

    trace_id: str
    request_id: str | None = None
    """The client's X-Request-Id / X-Trace-Id when it is not the trace id (kept in the log)."""
    started: float = field(default_factory=time.perf_counter)
    error_kind: str | None = None
    error_message: str | None = None


@dataclass(frozen=True, slots=True)
class IncomingIds:
    """The ids a request came with."""

    traceparent_trace_id: str | None
    """The trace id of a valid W3C ``traceparent`` (32 lowercase hex digits)."""
    request_id: str | None
    """A well-formed ``X-Request-Id`` (else ``X-Trace-Id``): safe to log and echo."""

    @property
    def request_id_as_trace_id(self) -> str | None:
        """The request id when it can serve as a W3C trace id (32 hex digits, not all zero)."""
        rid = self.request_id
        if rid is None or not _W3C_TRACE_ID.fullmatch(rid) or rid == _ZERO_TRACE_ID:
            return None
        return rid


def traceparent_trace_id(value: str) -> str | None:
    """The trace id of a W3C ``traceparent`` value, or None when it is not a valid one."""
    match = _TRACEPARENT.fullmatch(value.strip())
    if match is None:
        return None
    version, trace_id, parent_id, _flags, rest = match.groups()
    if version == "ff" or (version == "00" and rest):
        return None
    if trace_id == _ZERO_TRACE_ID or parent_id == _ZERO_SPAN_ID:
        return None
    return trace_id


def incoming_ids(scope: Scope) -> IncomingIds:
    """The valid ``traceparent``'s trace id and the well-formed request id, if any."""
    headers: dict[bytes, bytes] = dict(scope.get("headers", ()))
    raw_parent = headers.get(b"traceparent")
    parent = traceparent_trace_id(raw_parent.decode("latin-1")) if raw_parent else None
    request_id: str | None = None
    for name in INCOMING_TRACE_HEADERS:
        raw = headers.get(name)
        if raw is None:
            continue
        value = raw.decode("latin-1").strip()
        if _SAFE_TRACE_ID.fullmatch(value):
            request_id = value
            break
    return IncomingIds(traceparent_trace_id=parent, request_id=request_id)


def trace_id_from(scope: Scope) -> str:
    """The request's trace id without a span: a valid ``traceparent``'s, else the caller's
    X-Request-Id / X-Trace-Id when well formed, else a fresh one."""
    ids = incoming_ids(scope)
    return ids.traceparent_trace_id or ids.request_id or uuid.uuid4().hex


def request_context(scope: Scope) -> RequestContext | None:
    """The context the middleware attached to this request, if any."""
    context = scope.get("state", {}).get("request_context")
    return context if isinstance(context, RequestContext) else None

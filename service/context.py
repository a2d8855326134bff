"""Per-request context: the trace id and what the request ended in, shared by the middleware,
the error handlers and the log line."""

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


@dataclass(slots=True)
class RequestContext:
    """What one request carries from the first middleware to its log line."""

    trace_id: str
    started: float = field(default_factory=time.perf_counter)
    error_kind: str | None = None
    error_message: str | None = None


def trace_id_from(scope: Scope) -> str:
    """The caller's X-Request-Id / X-Trace-Id when well formed, else a fresh one."""
    headers: dict[bytes, bytes] = dict(scope.get("headers", ()))
    for name in INCOMING_TRACE_HEADERS:
        raw = headers.get(name)
        if raw is None:
            continue
        value = raw.decode("latin-1").strip()
        if _SAFE_TRACE_ID.fullmatch(value):
            return value
    return uuid.uuid4().hex


def request_context(scope: Scope) -> RequestContext | None:
    """The context the middleware attached to this request, if any."""
    context = scope.get("state", {}).get("request_context")
    return context if isinstance(context, RequestContext) else None

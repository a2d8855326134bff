"""Error kinds and the one place that turns any failure into an error response.

DESIGN.md, contract 2: every error body is ``{"error": {"kind", "message", "trace_id"}}`` and the
kind names why the request failed. ``service`` keeps its own copy of the server-side kinds (it never
imports ``loadkit``); a test checks that the two lists agree.

Raise a ``ServiceError`` subclass from anywhere in a request; lower-level errors (SQLAlchemy,
Starlette, request validation) are mapped to kinds in ``classify`` and the handlers below.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import ClassVar

import sqlalchemy.exc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from service.context import request_context


class ErrorKind(StrEnum):
    """Why a request failed, as the service saw it."""

    STORAGE_LOCK_TIMEOUT = "storage_lock_timeout"
    DATABASE_ERROR = "database_error"
    DB_POOL_EXHAUSTED = "db_pool_exhausted"
    QUERY_TIMEOUT = "query_timeout"
    OVERLOADED = "overloaded"
    RATE_LIMITED = "rate_limited"
    INVALID_CREDENTIALS = "invalid_credentials"
    UNAUTHORIZED = "unauthorized"
    VALIDATION_ERROR = "validation_error"
    NOT_FOUND = "not_found"
    CONFLICT = "conflict"
    IDEMPOTENCY_CONFLICT = "idempotency_conflict"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    HEADERS_TOO_LARGE = "headers_too_large"
    HEADER_TIMEOUT = "header_timeout"
    SHUTTING_DOWN = "shutting_down"
    INTERNAL_ERROR = "internal_error"


STATUS_BY_KIND: dict[ErrorKind, int] = {
    ErrorKind.STORAGE_LOCK_TIMEOUT: 503,
    ErrorKind.DATABASE_ERROR: 503,
    ErrorKind.DB_POOL_EXHAUSTED: 503,
    ErrorKind.QUERY_TIMEOUT: 503,
    ErrorKind.OVERLOADED: 503,
    ErrorKind.RATE_LIMITED: 429,
    ErrorKind.INVALID_CREDENTIALS: 401,
    ErrorKind.UNAUTHORIZED: 401,
    ErrorKind.VALIDATION_ERROR: 422,
    ErrorKind.NOT_FOUND: 404,
    ErrorKind.CONFLICT: 409,
    ErrorKind.IDEMPOTENCY_CONFLICT: 422,
    ErrorKind.PAYLOAD_TOO_LARGE: 413,
    ErrorKind.METHOD_NOT_ALLOWED: 405,
    ErrorKind.HEADERS_TOO_LARGE: 431,
    ErrorKind.HEADER_TIMEOUT: 408,
    ErrorKind.SHUTTING_DOWN: 503,
    ErrorKind.INTERNAL_ERROR: 500,
}

RETRYABLE_KINDS: frozenset[ErrorKind] = frozenset(
    {
        ErrorKind.STORAGE_LOCK_TIMEOUT,
        ErrorKind.DATABASE_ERROR,
        ErrorKind.DB_POOL_EXHAUSTED,
        ErrorKind.QUERY_TIMEOUT,
        ErrorKind.OVERLOADED,
        ErrorKind.RATE_LIMITED,
        ErrorKind.SHUTTING_DOWN,
    }
)
"""Kinds whose response carries ``Retry-After``: the client may come back later."""

DEFAULT_RETRY_AFTER_S = 1
"""Used when a retryable error is raised without a figure (the app sets ENGINES_RETRY_AFTER_S)."""


class ServiceError(Exception):
    """A failure with a kind, a status and a message safe to show the client."""

    kind: ClassVar[ErrorKind] = ErrorKind.INTERNAL_ERROR
    default_message: ClassVar[str] = "internal error"

    def __init__(
        self,
        message: str | None = None,
        *,
        retry_after_s: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.message = message or self.default_message
        self.retry_after_s = retry_after_s
        self.headers = dict(headers or {})
        super().__init__(self.message)

    @property
    def status_code(self) -> int:
        """The HTTP status for this error's kind."""
        return STATUS_BY_KIND[self.kind]


class StorageLockTimeout(ServiceError):
    """The storage lock could not be acquired within the configured timeout."""

    kind = ErrorKind.STORAGE_LOCK_TIMEOUT
    default_message = "storage is busy, retry later"


class DatabaseError(ServiceError):
    """The database failed or could not be reached."""

    kind = ErrorKind.DATABASE_ERROR
    default_message = "database unavailable"


class DbPoolExhausted(ServiceError):
    """No database connection became free within the pool timeout."""

    kind = ErrorKind.DB_POOL_EXHAUSTED
    default_message = "no database connection available, retry later"


class QueryTimeout(ServiceError):
    """A database query ran past its timeout."""

    kind = ErrorKind.QUERY_TIMEOUT
    default_message = "database query timed out"


class Overloaded(ServiceError):
    """Too many requests in flight."""

    kind = ErrorKind.OVERLOADED
    default_message = "service overloaded, retry later"


class RateLimited(ServiceError):
    """The client sent too many requests of this sort."""

    kind = ErrorKind.RATE_LIMITED
    default_message = "too many requests, retry later"


class InvalidCredentials(ServiceError):
    """Login failed; the same body whether the user exists or not."""

    kind = ErrorKind.INVALID_CREDENTIALS
    default_message = "invalid email or password"


class Unauthorized(ServiceError):
    """No valid bearer token."""

    kind = ErrorKind.UNAUTHORIZED
    default_message = "missing or invalid bearer token"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message, headers={"WWW-Authenticate": "Bearer"})


class ValidationFailed(ServiceError):
    """The request is malformed or breaks a field rule."""

    kind = ErrorKind.VALIDATION_ERROR
    default_message = "invalid request"


class MalformedRequest(ValidationFailed):
    """The HTTP parser refused the request itself (answered 400 by the server, not the app)."""

    default_message = "malformed HTTP request"

    @property
    def status_code(self) -> int:
        """400: the request is not HTTP the server can read, not a field broken."""
        return 400


class NotFound(ServiceError):
    """No such resource (or it belongs to someone else)."""

    kind = ErrorKind.NOT_FOUND
    default_message = "not found"


class Conflict(ServiceError):
    """The resource already exists."""

    kind = ErrorKind.CONFLICT
    default_message = "already exists"


class IdempotencyConflict(ServiceError):
    """An ``Idempotency-Key`` already used, within its window, for a different request body."""

    kind = ErrorKind.IDEMPOTENCY_CONFLICT
    default_message = "this Idempotency-Key was already used with a different request body"


class PayloadTooLarge(ServiceError):
    """The request body is over the configured limit."""

    kind = ErrorKind.PAYLOAD_TOO_LARGE
    default_message = "request body too large"


class MethodNotAllowed(ServiceError):
    """The route exists but not for this method."""

    kind = ErrorKind.METHOD_NOT_ALLOWED
    default_message = "method not allowed"


class HeadersTooLarge(ServiceError):
    """The request line and headers are over the configured limit (answered by the server)."""

    kind = ErrorKind.HEADERS_TOO_LARGE
    default_message = "request headers too large"


class HeaderTimeout(ServiceError):
    """The request line and headers did not arrive in time (answered by the server)."""

    kind = ErrorKind.HEADER_TIMEOUT
    default_message = "request headers not received in time"


class ShuttingDown(ServiceError):
    """The shutdown grace ran out before the request was answered; nothing was written."""

    kind = ErrorKind.SHUTTING_DOWN
    default_message = "the service is shutting down, retry later"


class InternalError(ServiceError):
    """Anything not classified otherwise: a bug."""

    kind = ErrorKind.INTERNAL_ERROR
    default_message = "internal error"


def error_class_for(kind: ErrorKind) -> type[ServiceError]:
    """The ``ServiceError`` subclass that carries ``kind`` (e.g. for injected faults)."""
    pending: list[type[ServiceError]] = [ServiceError]
    while pending:
        cls = pending.pop()
        if cls.kind is kind and cls is not ServiceError:
            return cls
        pending.extend(cls.__subclasses__())
    return InternalError


def classify(exc: BaseException) -> ServiceError:
    """Map any exception to the service error it stands for (InternalError when unknown)."""
    if isinstance(exc, ServiceError):
        return exc
    if isinstance(exc, StarletteHTTPException):
        return _from_http_exception(exc)
    if isinstance(exc, RequestValidationError):
        return ValidationFailed(_validation_message(exc))
    # SQLAlchemy raises its own TimeoutError when the pool has no connection to give.
    if isinstance(exc, sqlalchemy.exc.TimeoutError):
        return DbPoolExhausted()
    if isinstance(exc, sqlalchemy.exc.OperationalError | sqlalchemy.exc.InterfaceError):
        return DatabaseError()
    return InternalError()


def _from_http_exception(exc: StarletteHTTPException) -> ServiceError:
    by_status: dict[int, type[ServiceError]] = {
        400: ValidationFailed,
        401: Unauthorized,
        404: NotFound,
        405: MethodNotAllowed,
        409: Conflict,
        413: PayloadTooLarge,
        422: ValidationFailed,
        429: RateLimited,
        503: Overloaded,
    }
    error_class = by_status.get(exc.status_code, InternalError)
    message = exc.detail if isinstance(exc.detail, str) and exc.status_code != 404 else None
    error = error_class(message)
    if exc.status_code == 405 and exc.headers and "Allow" in exc.headers:
        error.headers["Allow"] = exc.headers["Allow"]
    return error


def _validation_message(exc: RequestValidationError) -> str:
    """A short, readable summary of the first few field errors (no input values echoed)."""
    parts: list[str] = []
    for err in list(exc.errors())[:5]:
        if err.get("type") == "json_invalid":
            parts.append("body: malformed JSON")
            continue
        location = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
        parts.append(f"{location}: {err.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


def envelope(error: ServiceError, trace_id: str) -> dict[str, dict[str, str]]:
    """The error body: ``{"error": {"kind", "message", "trace_id"}}``."""
    return {"error": {"kind": error.kind.value, "message": error.message, "trace_id": trace_id}}


def envelope_bytes(error: ServiceError, trace_id: str) -> bytes:
    """The error body as JSON bytes (for answers written by the server, not the app)."""
    return json.dumps(envelope(error, trace_id), separators=(",", ":")).encode()


def error_response(
    error: ServiceError, *, trace_id: str, retry_after_s: int = DEFAULT_RETRY_AFTER_S
) -> JSONResponse:
    """The JSON envelope for an error, with Retry-After on retryable kinds."""
    headers = dict(error.headers)
    if error.kind in RETRYABLE_KINDS:
        headers["Retry-After"] = str(error.retry_after_s or retry_after_s)
    return JSONResponse(
        status_code=error.status_code,
        content=envelope(error, trace_id),
        headers=headers,
    )


def note_error(request: Request, error: ServiceError) -> None:
    """Tell the request-log middleware which kind this request ended in."""
    context = request_context(request.scope)
    if context is not None:
        context.error_kind = error.kind.value
        context.error_message = error.message


async def _handle(request: Request, exc: Exception) -> JSONResponse:
    error = classify(exc)
    if isinstance(error, MethodNotAllowed):
        error.headers["Allow"] = allowed_methods(request, error.headers.get("Allow", ""))
    note_error(request, error)
    if isinstance(error, InternalError) and not isinstance(exc, ServiceError):
        # Unclassified exceptions reaching a handler are re-raised so the request-context
        # middleware logs them with their traceback and answers internal_error.
        raise exc
    context = request_context(request.scope)
    trace_id = context.trace_id if context is not None else "unknown"
    retry_after = getattr(request.app.state, "retry_after_s", DEFAULT_RETRY_AFTER_S)
    return error_response(error, trace_id=trace_id, retry_after_s=retry_after)


def allowed_methods(request: Request, given: str) -> str:
    """Every method the request's path accepts, across all the routes it matches.

    Starlette's 405 names only the first route whose path matched: ``/api/items/{item_id}`` is
    two routes (GET, DELETE), and a PUT was told ``Allow: GET`` only. The app's own routes
    are on ``app.state.api_routes`` (see ``create_app``); ``given`` (Starlette's) is kept for the
    others (the documentation pages).
    """
    methods: set[str] = set()
    for route in getattr(request.app.state, "api_routes", ()):
        match, _ = route.matches(request.scope)
        if match is not Match.NONE:
            methods |= set(getattr(route, "methods", None) or ())
    return ", ".join(sorted(methods)) if methods else given


def install_error_handlers(app: FastAPI) -> None:
    """Route every known failure through the one envelope (unknown ones: see middleware)."""
    app.add_exception_handler(ServiceError, _handle)
    app.add_exception_handler(StarletteHTTPException, _handle)
    app.add_exception_handler(RequestValidationError, _handle)
    app.add_exception_handler(sqlalchemy.exc.SQLAlchemyError, _handle)

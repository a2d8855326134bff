"""What the OpenAPI document says about errors and auth, so that it tells the truth.

FastAPI documents only the success answer and a 422 shaped ``{"detail": [...]}``; the service
answers every error with the envelope ``{"error": {"kind", "message", "trace_id"}}`` (422 too) and
more statuses than that. Each route declares the statuses it can answer with ``error_responses``;
``EDGE_STATUSES`` are the ones any request can get (answered by the server or the outer
middleware, before any route ran). schemathesis checks the document against the live app
(tests/service/test_service_fuzz.py).
"""

from __future__ import annotations

from typing import Any

from service.schemas import ErrorEnvelope

DESCRIPTIONS: dict[int, str] = {
    400: "Malformed HTTP request (refused by the server's parser): validation_error.",
    401: "Missing, malformed, expired or forged bearer token (unauthorized), or wrong "
    "email or password (invalid_credentials).",
    404: "No such resource, or it belongs to another user: not_found.",
    408: "Request line and headers not received within ENGINES_HEADER_TIMEOUT_S: header_timeout.",
    409: "The resource already exists: conflict.",
    413: "Body over ENGINES_MAX_BODY_BYTES: payload_too_large.",
    422: "The body or a parameter breaks a rule; the message names the field: validation_error.",
    429: "Too many login attempts from this address or for this account: rate_limited.",
    431: "Request line and headers over ENGINES_MAX_HEADER_BYTES: headers_too_large.",
    500: "An unclassified failure (a bug; its traceback is logged under the trace id): "
    "internal_error.",
    503: "Retry later (see Retry-After): overloaded, storage_lock_timeout, database_error, "
    "db_pool_exhausted, query_timeout, or shutting_down.",
}

EDGE_STATUSES = (400, 408, 413, 431, 500)
"""Answered for any request, whatever its route: by the server (400, 408, 431) or by the outer
middleware (413 for any body over the limit, 500 for a bug)."""

RETRY_AFTER_HEADER = {
    "Retry-After": {
        "description": "Seconds to wait before retrying (ENGINES_RETRY_AFTER_S).",
        "schema": {"type": "integer", "minimum": 1},
    }
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route: these statuses and the edge ones, each with the envelope."""
    responses: dict[int | str, dict[str, Any]] = {}
    for status in sorted({*statuses, *EDGE_STATUSES}):
        response: dict[str, Any] = {"model": ErrorEnvelope, "description": DESCRIPTIONS[status]}
        if status in (429, 503):
            response["headers"] = RETRY_AFTER_HEADER
        responses[status] = response
    return responses

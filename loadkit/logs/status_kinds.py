"""The error kind of a logged request that names none, from its status code alone.

A proxy's access log (nginx) or another service's JSON log often carries a status and no kind.
The status class is the floor (``client_error``, ``server_error``); the statuses that point at
different fixes get a kind of their own: 502 (the upstream refused or broke the connection), 504
(the upstream was too slow for the proxy's timeout), 503 (shed or down), 499 (nginx: the client
gave up first). Where DESIGN's kinds already name a status's meaning (401 ``unauthorized``, 429
``rate_limited``, 500 ``internal_error``, ...) they are used, so a proxy's breakdown lines up
with the client's view of the same run.
"""

from __future__ import annotations

from loadkit.measure.kinds import ErrorKind

STATUS_KINDS: dict[int, str] = {
    400: "bad_request",
    401: ErrorKind.UNAUTHORIZED.value,
    403: "forbidden",
    404: ErrorKind.NOT_FOUND.value,
    405: ErrorKind.METHOD_NOT_ALLOWED.value,
    408: "request_timeout",
    409: ErrorKind.CONFLICT.value,
    413: ErrorKind.PAYLOAD_TOO_LARGE.value,
    422: ErrorKind.VALIDATION_ERROR.value,
    429: ErrorKind.RATE_LIMITED.value,
    431: ErrorKind.HEADERS_TOO_LARGE.value,
    499: "client_closed_request",
    500: ErrorKind.INTERNAL_ERROR.value,
    502: "bad_gateway",
    503: "service_unavailable",
    504: "gateway_timeout",
}
"""Statuses with a kind of their own."""

CLIENT_ERROR = "client_error"
SERVER_ERROR = "server_error"


def status_kind(status: int) -> str | None:
    """The kind of a response with ``status`` and no kind of its own; None below 400."""
    kind = STATUS_KINDS.get(status)
    if kind is not None:
        return kind
    if 400 <= status < 500:
        return CLIENT_ERROR
    if status >= 500:
        return SERVER_ERROR
    return None

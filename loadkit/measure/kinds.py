"""Error kinds: the vocabulary shared by the service's error bodies, its logs and the harness.

DESIGN.md, contract 2. The service keeps its own copy of the server-side kinds (``service`` never
imports ``loadkit``); a test checks that the two lists agree.
"""

from enum import StrEnum


class ErrorKind(StrEnum):
    """Why a request failed, as the service or the client saw it."""

    # Server-side kinds, carried in {"error": {"kind": ...}}.
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
    # Client-side kinds: what the harness sees when no kind can be read from a response.
    TIMEOUT = "timeout"
    CONNECT_ERROR = "connect_error"
    TLS_ERROR = "tls_error"
    """The TLS handshake failed: above all a certificate that does not verify (self-signed,
    another name, expired; ``--ca-cert`` or ``--insecure`` say what to trust). Connected, so not
    ``connect_error``; nothing was sent, so no request reached the service."""
    CONNECTION_RESET = "connection_reset"
    PROTOCOL_ERROR = "protocol_error"
    HTTP2_INTERNAL_ERROR = "http2_internal_error"
    """An HTTP/2 stream reset (RST_STREAM), or the connection ended (GOAWAY), with INTERNAL_ERROR:
    what an HTTP/2 proxy sends when its upstream's response broke off after its headers."""
    HTTP2_STREAM_RESET = "http2_stream_reset"
    """An HTTP/2 stream reset with another error code than INTERNAL_ERROR or REFUSED_STREAM
    (CANCEL, ENHANCE_YOUR_CALM, ...); the message keeps the code."""
    HTTP2_REFUSED_STREAM = "http2_refused_stream"
    """An HTTP/2 stream reset with REFUSED_STREAM: the server did not process the request (too many
    concurrent streams, shutting down); safe to retry."""
    HTTP2_GOAWAY = "http2_goaway"
    """The HTTP/2 connection ended (GOAWAY) with another code than INTERNAL_ERROR while the request
    was open: a graceful shutdown, or the server's complaint (the message keeps the code)."""
    UNEXPECTED_STATUS = "unexpected_status"
    EXPECTATION_FAILED = "expectation_failed"
    """The status was the one expected, but a smoke step's expectation on a header, a body field
    or the latency was not met (its message says which, with the expected and the actual)."""
    NOT_SENT = "not_sent"
    """An open-model iteration still waiting for a free user when the run ended: never sent,
    because the target was too slow to let it start. Always on ``NOT_SENT_ENDPOINT``."""


SERVER_KINDS: frozenset[str] = frozenset(
    k.value
    for k in ErrorKind
    if k
    not in {
        ErrorKind.TIMEOUT,
        ErrorKind.CONNECT_ERROR,
        ErrorKind.TLS_ERROR,
        ErrorKind.CONNECTION_RESET,
        ErrorKind.PROTOCOL_ERROR,
        ErrorKind.HTTP2_INTERNAL_ERROR,
        ErrorKind.HTTP2_STREAM_RESET,
        ErrorKind.HTTP2_REFUSED_STREAM,
        ErrorKind.HTTP2_GOAWAY,
        ErrorKind.UNEXPECTED_STATUS,
        ErrorKind.EXPECTATION_FAILED,
        ErrorKind.NOT_SENT,
    }
)
"""Kinds the service may put in an error body."""

CLIENT_KINDS: frozenset[str] = frozenset(k.value for k in ErrorKind) - SERVER_KINDS
"""Kinds only the client can observe (no response, or a response without a kind)."""

NOT_SENT_ENDPOINT = "(not sent)"
"""The pseudo-endpoint of ``not_sent`` errors: which requests an iteration would have made is
unknown until its task runs."""

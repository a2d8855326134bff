"""What a client saw, as one error kind (DESIGN.md, contract 2).

Pure and cheap to import: the Locust process (gevent, geventhttpclient) uses
``classify_response`` and ``classify_os_error`` without pulling in httpx; httpx is imported only
inside ``classify_httpx_error``, the one place that maps httpx's exceptions to kinds.

A response's kind is the service's own word when its body says one (``{"error": {"kind": ...}}``),
kept as sent even when loadkit does not know it; a failed response without one is
``unexpected_status``. A request that got no response is classified by its exception: timeout,
connect_error, tls_error, connection_reset, protocol_error, or one of the HTTP/2 kinds
(``classify_http2_error``: http2_internal_error, http2_stream_reset, http2_refused_stream,
http2_goaway), whichever client saw it: httpx (smoke) or scenarios' ``Http2User`` (Locust).
"""

from __future__ import annotations

import errno
import re
import socket
import ssl
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import orjson

from loadkit.measure.kinds import ErrorKind

if TYPE_CHECKING:
    from loadkit.measure.error_reader import ErrorReader

TRACE_HEADER = "x-trace-id"
MAX_ERROR_BODY_BYTES = 64 * 1024
"""Bodies larger than this are not parsed for a kind: an error envelope is small, and a load
generator must not spend its CPU decoding megabytes of somebody's HTML."""

_KIND_SYNTAX = re.compile(r"[A-Za-z][A-Za-z0-9_.:-]{0,63}")
# httpcore raises RemoteProtocolError(event) for an HTTP/2 RST_STREAM or GOAWAY; httpx keeps only
# str(event): "<StreamReset stream_id:1, error_code:2, remote_reset:True>" (older h2 versions
# print the enum, "error_code:ErrorCodes.INTERNAL_ERROR").
_H2_FRAME_TEXT = re.compile(
    r"\b(StreamReset|ConnectionTerminated)\b.*?\berror_code:\s*(?:ErrorCodes\.)?(\w+)"
)
_H2_FRAMES = {"StreamReset": "RST_STREAM", "ConnectionTerminated": "GOAWAY"}
"""h2's event class names (what httpcore raises with) → the frame that carried the code."""
H2_INTERNAL_ERROR = 0x2
H2_REFUSED_STREAM = 0x7
_H2_CODE_NAMES = {
    "NO_ERROR": 0x0, "PROTOCOL_ERROR": 0x1, "INTERNAL_ERROR": 0x2, "FLOW_CONTROL_ERROR": 0x3,
    "SETTINGS_TIMEOUT": 0x4, "STREAM_CLOSED": 0x5, "FRAME_SIZE_ERROR": 0x6, "REFUSED_STREAM": 0x7,
    "CANCEL": 0x8, "COMPRESSION_ERROR": 0x9, "CONNECT_ERROR": 0xA, "ENHANCE_YOUR_CALM": 0xB,
    "INADEQUATE_SECURITY": 0xC, "HTTP_1_1_REQUIRED": 0xD,
}  # fmt: skip
# Never got connected: no route, host down, address not available.
_CONNECT_ERRNOS = frozenset(
    {errno.ECONNREFUSED, errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EHOSTDOWN}
    | {errno.EADDRNOTAVAIL}
)
# h11's words when the server closed the connection before answering (no reset, just gone).
_DISCONNECTED = ("server disconnected", "connection closed", "peer closed connection")


@dataclass(frozen=True, slots=True)
class ResponseVerdict:
    """A response judged: ``kind`` is None when it is what was expected."""

    status: int
    kind: str | None
    trace_id: str | None = None
    message: str | None = None

    @property
    def ok(self) -> bool:
        """True when the response is what was expected."""
        return self.kind is None


@dataclass(frozen=True, slots=True)
class BodyError:
    """The service's error envelope, as far as a body carried one."""

    kind: str | None
    message: str | None
    trace_id: str | None


def error_from_body(body: bytes | str | None) -> BodyError | None:
    """Read ``{"error": {"kind", "message", "trace_id"}}`` from a response body.

    Returns None when the body is not such an envelope (empty, not JSON, too large, another
    shape). A ``kind`` that is not a plausible kind name (not a short identifier) is None;
    an unknown but well-formed one is kept as it is: it is the server's word.
    """
    if not body:
        return None
    raw = body.encode() if isinstance(body, str) else body
    if len(raw) > MAX_ERROR_BODY_BYTES or raw.lstrip()[:1] != b"{":
        return None
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    error = document.get("error") if isinstance(document, dict) else None
    if not isinstance(error, dict):
        return None
    kind = error.get("kind")
    message = error.get("message")
    trace_id = error.get("trace_id")
    return BodyError(
        kind=kind if isinstance(kind, str) and _KIND_SYNTAX.fullmatch(kind) else None,
        message=message if isinstance(message, str) else None,
        trace_id=trace_id if isinstance(trace_id, str) and trace_id else None,
    )


def trace_id_from_headers(
    headers: Mapping[str, str] | None, header: str = "X-Trace-Id"
) -> str | None:
    """The trace id ``header`` (``X-Trace-Id`` unless the target says another), whatever its case
    and whatever mapping holds the headers."""
    if not headers:
        return None
    lowered = header.lower()
    for name in (header, lowered):
        value = headers.get(name)
        if value:
            return value
    for name, value in headers.items():
        if name.lower() == lowered and value:
            return value
    return None


def classify_response(
    status: int,
    headers: Mapping[str, str] | None,
    body: bytes | str | None,
    *,
    expected_status: int | Collection[int] | None = None,
    reader: ErrorReader | None = None,
) -> ResponseVerdict:
    """Judge a response: is it what was expected, and if not, which kind of error is it?

    With ``expected_status`` (a status, or several) the response is ok only with that status (one
    of them); without it, any status below 400 is ok. A failed response's kind is the body's
    ``error.kind`` when there is one, else ``unexpected_status`` (a 200 where a 201 was expected
    has no kind to give). The trace id comes from the body, else from the ``X-Trace-Id`` header.
    A ``reader`` (the target profile's) says where another API puts kind, message and trace id.
    """
    if isinstance(expected_status, int):
        expected_status = (expected_status,)
    ok = status in expected_status if expected_status is not None else 100 <= status < 400
    trace_header = reader.trace_response_header if reader is not None else "X-Trace-Id"
    if ok:
        return ResponseVerdict(
            status=status, kind=None, trace_id=trace_id_from_headers(headers, trace_header)
        )
    envelope = error_from_body(body) if reader is None else reader.read(status, headers, body)
    kind = envelope.kind if envelope is not None else None
    trace_id = envelope.trace_id if envelope is not None else None
    message = envelope.message if envelope is not None else None
    if message is None:
        message = (
            f"status {status}, expected {' or '.join(map(str, expected_status))}"
            if expected_status is not None
            else f"status {status}"
        )
    return ResponseVerdict(
        status=status,
        kind=kind or ErrorKind.UNEXPECTED_STATUS.value,
        trace_id=trace_id or trace_id_from_headers(headers, trace_header),
        message=message,
    )


def is_http2_internal_error(error: BaseException) -> bool:
    """True for an HTTP/2 stream reset or GOAWAY with error code 2 (INTERNAL_ERROR)."""
    return classify_http2_error(error) == ErrorKind.HTTP2_INTERNAL_ERROR.value


def http2_frame(error: BaseException) -> tuple[str, int] | None:
    """(``"RST_STREAM"`` or ``"GOAWAY"``, error code) when an HTTP/2 reset or GOAWAY ended the
    request, anywhere in ``error``'s cause chain; else None.

    Read from scenarios' ``Http2StreamReset``/``Http2GoAway`` (``http2_frame`` and
    ``error_code`` attributes: loadkit never imports scenarios), from h2's ``StreamReset`` /
    ``ConnectionTerminated`` events in an exception's args (httpcore), or from their text (httpx
    keeps only ``str(event)``).
    """
    for link in _chain(error):
        frame = getattr(link, "http2_frame", None)
        code = getattr(link, "error_code", None)
        if frame in ("RST_STREAM", "GOAWAY") and isinstance(code, int):
            return str(frame), int(code)
        for arg in (link, *link.args):
            code = getattr(arg, "error_code", None)
            name = type(arg).__name__
            if code is not None and name in _H2_FRAMES:
                return _H2_FRAMES[name], int(code)
        found = _H2_FRAME_TEXT.search(str(link))
        if found is not None:
            text = found.group(2)
            number = int(text) if text.isdigit() else _H2_CODE_NAMES.get(text)
            if number is not None:
                return _H2_FRAMES[found.group(1)], number
    return None


def classify_http2_error(error: BaseException) -> str | None:
    """The HTTP/2 kind of a request ended by a reset or a GOAWAY, or None.

    RST_STREAM or GOAWAY with INTERNAL_ERROR → ``http2_internal_error``; RST_STREAM with
    REFUSED_STREAM → ``http2_refused_stream``; other RST_STREAM codes → ``http2_stream_reset``;
    other GOAWAYs → ``http2_goaway``.
    """
    found = http2_frame(error)
    if found is None:
        return None
    frame, code = found
    if code == H2_INTERNAL_ERROR:
        return ErrorKind.HTTP2_INTERNAL_ERROR.value
    if frame == "GOAWAY":
        return ErrorKind.HTTP2_GOAWAY.value
    if code == H2_REFUSED_STREAM:
        return ErrorKind.HTTP2_REFUSED_STREAM.value
    return ErrorKind.HTTP2_STREAM_RESET.value


def classify_os_error(error: BaseException) -> str | None:
    """The kind for a stdlib network error anywhere in ``error``'s cause chain, or None.

    Shared by every client: httpx wraps these, geventhttpclient raises them as they are. A TLS
    failure (``ssl.SSLError``, a certificate that does not verify above all) is ``tls_error``
    wherever it is in the chain: it is an OSError, and wrapped in "connect" errors by httpx.
    """
    chain = _chain(error)
    if _tls_failed(chain):
        return ErrorKind.TLS_ERROR.value
    for link in chain:
        if isinstance(link, TimeoutError):  # also socket.timeout
            return ErrorKind.TIMEOUT.value
        if isinstance(link, ConnectionRefusedError):
            return ErrorKind.CONNECT_ERROR.value
        if isinstance(link, ConnectionResetError | BrokenPipeError | ConnectionAbortedError):
            return ErrorKind.CONNECTION_RESET.value
        if isinstance(link, _TLS_CLOSED):
            return ErrorKind.CONNECTION_RESET.value
    for link in chain:
        if isinstance(link, socket.gaierror) or (
            isinstance(link, OSError) and link.errno in _CONNECT_ERRNOS
        ):
            return ErrorKind.CONNECT_ERROR.value
    return None


def classify_httpx_error(error: BaseException) -> str:
    """The kind for an exception raised by httpx while sending a request (no response)."""
    import httpx  # here, not at module level: the Locust process never needs it

    http2_kind = classify_http2_error(error)
    if http2_kind is not None:
        return http2_kind
    if _tls_failed(_chain(error)):
        return ErrorKind.TLS_ERROR.value  # httpx raises it as a ConnectError
    if isinstance(error, httpx.TimeoutException):
        return ErrorKind.TIMEOUT.value
    if isinstance(error, httpx.ConnectError):
        return ErrorKind.CONNECT_ERROR.value
    if isinstance(error, httpx.ReadError | httpx.WriteError | httpx.CloseError):
        return ErrorKind.CONNECTION_RESET.value
    if isinstance(error, httpx.RemoteProtocolError):
        text = str(error).lower()
        if any(words in text for words in _DISCONNECTED):
            # The server closed the connection before a response: dropped, not garbled.
            return ErrorKind.CONNECTION_RESET.value
        return ErrorKind.PROTOCOL_ERROR.value
    if isinstance(error, httpx.HTTPError):
        return ErrorKind.PROTOCOL_ERROR.value
    return classify_os_error(error) or ErrorKind.PROTOCOL_ERROR.value


def describe_error(error: BaseException) -> str:
    """A one-line description of a client-side failure (exception type and message)."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    name = type(error).__name__
    return f"{name}: {text}" if text else name


_TLS_CLOSED = (ssl.SSLEOFError, ssl.SSLZeroReturnError)
"""SSLErrors that say the peer ended the connection (an EOF, a close_notify), which may come
long after the handshake, with a request sent: a lost connection, not a failed handshake."""


def _tls_failed(chain: list[BaseException]) -> bool:
    return any(
        isinstance(link, ssl.SSLError) and not isinstance(link, _TLS_CLOSED) for link in chain
    )


def _chain(error: BaseException) -> list[BaseException]:
    # The exception, then its causes and contexts (httpx raises its own from httpcore's, which
    # raised from the OSError), stopping at cycles.
    seen: list[BaseException] = []
    link: BaseException | None = error
    while link is not None and all(link is not s for s in seen) and len(seen) < 16:
        seen.append(link)
        link = link.__cause__ or link.__context__
    return seen

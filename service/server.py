"""The HTTP server the service runs on: uvicorn with httptools, plus the limits it lacks.

uvicorn's httptools protocol reads headers without a size limit (a 20 MB header was read and
answered 200), without a time limit (a client trickling its headers holds the socket for as long
as it likes), and answers a malformed request with a plain-text 400 that has no error kind and no
trace id. ``EdgeProtocol`` keeps uvicorn's parser and request cycle (the fastest candidate measured,
see docs/benchmarks.md, "HTTP server") and adds, per connection:

- a header size limit: the bytes of a request's head (request line and headers) past
  ``max_header_bytes`` are answered 431 ``headers_too_large`` and the connection is closed; counted
  as they arrive, so no more than the limit plus one read is ever buffered;
- a header-read timeout: a request whose head is not complete ``header_timeout_s`` after its first
  byte is answered 408 ``header_timeout`` and closed; a new connection that sends nothing for that
  long is closed without an answer (there is no request to answer);
- malformed requests answered with the error envelope (400 ``validation_error``), a trace id and a
  log line, instead of uvicorn's plain text; every such refusal closes with a lingering close
  (FIN after the answer, the rest read and dropped for ``LINGER_S``), so that a client still
  sending does not get a reset that destroys the answer;
- at the end of the shutdown grace, a connection whose unsafe request (POST, DELETE, ...) is still
  unanswered is closed before uvicorn cancels the request: whether its write took effect is
  unknown, so no error may be answered for it (a retry could duplicate it). Requests whose retry
  is safe get an enveloped 503 ``shutting_down`` instead (see ``RequestContextMiddleware``).
"""

from __future__ import annotations

import asyncio
import signal
from dataclasses import dataclass
from types import FrameType
from typing import Any, ClassVar

import uvicorn
from starlette.types import ASGIApp
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from service.context import TRACE_HEADER, trace_id_from
from service.errors import (
    HeadersTooLarge,
    HeaderTimeout,
    MalformedRequest,
    ServiceError,
    envelope_bytes,
)
from service.logs import get_logger
from service.middleware import RETRY_SAFE_METHODS, UNMATCHED_ENDPOINT
from service.settings import Settings


@dataclass(frozen=True, slots=True)
class EdgeLimits:
    """What a connection may cost before the app sees a request (ENGINES_* settings)."""

    max_header_bytes: int
    header_timeout_s: float
    shutdown_grace_s: float
    retry_after_s: int

    @classmethod
    def from_settings(cls, settings: Settings) -> EdgeLimits:
        """The limits the settings ask for."""
        return cls(
            max_header_bytes=settings.max_header_bytes,
            header_timeout_s=settings.header_timeout_s,
            shutdown_grace_s=settings.shutdown_grace_s,
            retry_after_s=settings.retry_after_s,
        )


class EdgeProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a header size limit, a header-read timeout, enveloped
    answers to malformed requests and a clean close of unsafe requests cut by the grace."""

    limits: ClassVar[EdgeLimits]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._reading_head = True
        self._head_bytes = 0
        self._head_timer: asyncio.TimerHandle | None = None
        self._lingering: asyncio.TimerHandle | None = None

    # --- the head of a request: size and time ---------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Start the header clock at once: a connection that never speaks is closed too."""
        super().connection_made(transport)
        self._start_head()

    def _start_head(self) -> None:
        self._reading_head = True
        self._head_bytes = 0
        self._cancel_head_timer()
        self._head_timer = self.loop.call_later(self.limits.header_timeout_s, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def data_received(self, data: bytes) -> None:
        """Count the head's bytes as they come; refuse a head over the limit."""
        if self._lingering is not None:
            return  # refused: what the client still sends is read and dropped (see _refuse)
        if self._reading_head:
            if self._head_timer is None:  # the first byte of a keep-alive connection's request
                self._head_timer = self.loop.call_later(
                    self.limits.header_timeout_s, self._head_timed_out
                )
            self._head_bytes += len(data)
        super().data_received(data)
        if (
            self._reading_head
            and self._head_bytes > self.limits.max_header_bytes
            and self._lingering is None
            and not self.transport.is_closing()
        ):
            self._refuse(
                HeadersTooLarge(
                    f"request line and headers are over {self.limits.max_header_bytes} bytes"
                )
            )

    def on_headers_complete(self) -> None:
        """The head is in: the header clock stops; the app takes the request from here."""
        self._reading_head = False
        self._cancel_head_timer()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        """The request is in: the next bytes are the next request's head."""
        super().on_message_complete()
        self._reading_head = True
        self._head_bytes = 0  # its clock starts with its first byte (data_received)

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing() or not self._reading_head:
            return
        if self._head_bytes == 0:
            self.transport.close()  # an idle connection: nobody to answer
            return
        self._refuse(
            HeaderTimeout(
                f"request line and headers not received within {self.limits.header_timeout_s:g} s"
            )
        )

    def connection_lost(self, exc: Exception | None) -> None:
        """Stop the clocks with the connection."""
        self._cancel_head_timer()
        if self._lingering is not None:
            self._lingering.cancel()
        super().connection_lost(exc)

    # --- answers written by the server itself -----------------------------------------------

    def send_400_response(self, msg: str) -> None:
        """A request the parser refused: the envelope, not uvicorn's plain text."""
        self._refuse(MalformedRequest("not a valid HTTP/1.1 request (the parser refused it)"))

    def _refuse(self, error: ServiceError) -> None:
        """Answer ``error`` before any app has seen the request, log it, close the connection."""
        self._cancel_head_timer()
        # The head may be partly parsed (or be the previous request's on a kept-alive connection):
        # a well-formed X-Request-Id in it is reused, else a fresh trace id.
        scope: dict[str, Any] = dict(self.scope) if isinstance(self.scope, dict) else {}
        trace_id = trace_id_from(scope)
        body = envelope_bytes(error, trace_id)
        head = [
            f"HTTP/1.1 {error.status_code} {_REASONS[error.status_code]}",
            "content-type: application/json",
            f"content-length: {len(body)}",
            f"{TRACE_HEADER.lower()}: {trace_id}",
            "connection: close",
        ]
        self.transport.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
        # A lingering close, as nginx does: closing at once with the client's bytes still
        # unread makes the kernel send a reset, and a reset can destroy the answer before the
        # client has read it. Send FIN after the answer, drop what still comes, close later.
        if self.transport.can_write_eof():
            self.transport.write_eof()
            self._lingering = self.loop.call_later(LINGER_S, self.transport.close)
        else:
            self.transport.close()
        get_logger().warning(
            "request",
            trace_id=trace_id,
            method=_method(self.parser),
            endpoint=UNMATCHED_ENDPOINT,
            status_code=error.status_code,
            error_kind=error.kind.value,
            duration_ms=0.0,
            message=error.message,
        )

    # --- shutdown ---------------------------------------------------------------------------

    def shutdown(self) -> None:
        """Graceful shutdown began: close an unsafe request still unanswered when the grace
        ends, just before uvicorn cancels it (see the module docstring for why)."""
        super().shutdown()
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            self.loop.call_later(self.limits.shutdown_grace_s, self._close_if_unsafe_and_unanswered)

    def _close_if_unsafe_and_unanswered(self) -> None:
        cycle = self.cycle
        if cycle is None or cycle.response_started or self.transport.is_closing():
            return
        if cycle.scope.get("method") not in RETRY_SAFE_METHODS:
            self.transport.close()


LINGER_S = 2.0
"""How long a refused connection is kept open (reading and dropping) after its answer."""

_REASONS = {400: "Bad Request", 408: "Request Timeout", 431: "Request Header Fields Too Large"}


def _method(parser: Any) -> str:
    try:
        return str(parser.get_method().decode("ascii"))
    except Exception:  # the parser failed before it read a method
        return "-"


class GracefulServer(uvicorn.Server):
    """A uvicorn server for which SIGTERM is an ordinary, successful stop.

    uvicorn re-raises a captured signal once it has shut down gracefully, so the process would die
    by SIGTERM (exit -15) even after draining every request; supervisors and ``loadkit serve``
    expect exit 0 after a graceful stop. SIGINT keeps uvicorn's behaviour.
    """

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        if sig == signal.SIGTERM and sig in self._captured_signals:
            self._captured_signals.remove(sig)


def build_server(app: ASGIApp, settings: Settings, *, host: str, port: int) -> GracefulServer:
    """The server for ``app`` on ``host:port``, with the settings' edge limits."""
    protocol = type("EdgeProtocol", (EdgeProtocol,), {"limits": EdgeLimits.from_settings(settings)})
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        http=protocol,
        access_log=False,  # the service writes its own request lines (service.logs)
        timeout_graceful_shutdown=settings.shutdown_grace_s,
        log_level="info",
    )
    return GracefulServer(config)

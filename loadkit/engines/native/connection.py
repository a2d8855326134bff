"""One keep-alive HTTP/1.1 connection: an ``asyncio.Protocol`` with httptools' response parser.

At most one request is in flight on it (never pipelining). The connection knows nothing of
models or recording: it tells its ``owner`` (the pool) when it is connected, when a response
is complete, and when it is lost. A new TCP connection is a new ``Connection``: a late
``connection_lost`` of an old one can never be taken for the new one's.

What a response is, as httptools (llhttp) parses it: bodies of any size (only an error's first
``MAX_ERROR_BODY_BYTES`` are kept, for its kind), chunked, interim 1xx responses skipped, a body
delimited by the server closing the connection (HTTP/1.0) complete at EOF.
"""

from __future__ import annotations

import asyncio
from typing import Protocol, cast

import httptools

from loadkit.measure.classify import MAX_ERROR_BODY_BYTES


class ConnectionOwner(Protocol):
    """What a connection reports to (the pool)."""

    def connected(self, connection: Connection) -> None:
        """The connection is up (TLS done): its request can be written."""

    def responded(
        self, connection: Connection, status: int, body: bytes | None, keep_alive: bool
    ) -> None:
        """The response to its request is complete (``body`` kept for a failure only)."""

    def lost(self, connection: Connection, error: BaseException | None, garbled: bool) -> None:
        """The connection is gone (``error`` None: closed by the peer or by us); ``garbled``:
        the response could not be parsed."""


class Connection(asyncio.Protocol):
    """One TCP (or TLS) connection to the target and the request in flight on it."""

    __slots__ = (
        "attempts",
        "body",
        "busy",
        "closed",
        "deadline",
        "due",
        "owner",
        "parser",
        "payload",
        "received",
        "responded",
        "reused",
        "sent",
        "status",
        "transport",
    )  # fmt: skip

    def __init__(self, owner: ConnectionOwner) -> None:
        self.owner = owner
        self.responded = owner.responded  # looked up once: it runs for every response
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.status = 0
        """The current response's status once its head is parsed; 0 before."""
        self.body: list[bytes] | None = None
        """A failed response's body so far (None: not kept)."""
        self.received = False
        """Bytes of the current request's response have arrived."""
        # The request in flight: its bytes (its trace id in them), the times it is measured
        # from (perf counter seconds: ``due`` the response time's start, ``sent`` the service
        # time's), when it times out, whether this connection answered a request before it,
        # and how often it was tried (a request lost to a kept-alive connection the server had just
        # closed is tried once more on a new one, as HTTP clients do).
        self.payload = b""
        self.due = 0.0
        self.sent = 0.0
        self.deadline = 0.0
        self.reused = False
        self.attempts = 0
        self.busy = False
        self.closed = False

    # --- asyncio's side ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        self.owner.connected(self)

    def data_received(self, data: bytes) -> None:
        self.received = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._garbled()
        except httptools.HttpParserError as error:
            if isinstance(error, httptools.HttpParserCallbackError) and error.__context__:
                raise error.__context__ from None  # our own callback failed: a bug, not theirs
            self._garbled()

    def eof_received(self) -> bool | None:
        return None  # close our side too: connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        if self.closed:
            return
        self.closed = True
        if self.busy and exc is None and self.status >= 200 and not self.parser.should_keep_alive():
            # HTTP/1.0 style: the body ended where the server closed the connection (llhttp
            # keeps alive only a message not delimited by the connection's end; its flags are
            # the current response's, whose head was parsed: ``status`` says so).
            self.responded(self, self.status, self._body(), False)
            if not self.busy:
                return
        self.owner.lost(self, exc, False)

    # --- httptools' side --------------------------------------------------------------------

    def on_headers_complete(self) -> None:
        status = self.status = self.parser.get_status_code()
        if status >= 400:
            self.body = []

    def on_body(self, data: bytes) -> None:
        body = self.body
        if body is not None and sum(map(len, body)) <= MAX_ERROR_BODY_BYTES:
            body.append(data)

    def on_message_complete(self) -> None:
        status = self.status
        if status < 200:
            # An interim response (100 Continue, 103 Early Hints): the final one follows.
            self.status = 0
            self.body = None
            return
        body = self.body
        if body is not None:
            self.body = None
            self.responded(self, status, b"".join(body), self.parser.should_keep_alive())
        else:
            self.responded(self, status, None, self.parser.should_keep_alive())

    # --- the owner's side -------------------------------------------------------------------

    def write(self, payload: bytes) -> None:
        """Send a request's bytes (the request's fields are set by the owner)."""
        self.status = 0
        self.body = None
        self.received = False
        assert self.transport is not None
        self.transport.write(payload)

    def close(self) -> None:
        """Close it (a response said ``Connection: close``, or the run is over)."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def abort(self) -> None:
        """Drop it at once (its request timed out, or its response was garbled)."""
        if self.transport is not None:
            self.transport.abort()

    def _body(self) -> bytes | None:
        body = self.body
        self.body = None
        return b"".join(body) if body is not None else None

    def _garbled(self) -> None:
        if not self.closed:
            self.closed = True
            self.owner.lost(self, None, True)
        self.abort()

"""One keep-alive HTTP/1.1 connection: an ``asyncio.Protocol`` with httptools' response parser.

At most one request is in flight on it (never pipelining). The connection knows nothing of
models or recording: it tells its ``owner`` (the pool) when it is connected, when a response
is complete, and when it is lost. A new TCP connection is a new ``Connection``: a late
``connection_lost`` of an old one can never be taken for the new one's.

What a response is, as httptools (llhttp) parses it: bodies of any size (only an error's first
``MAX_ERROR_BODY_BYTES`` are kept, for its kind; a whole body when the request saves values
from it, ``keep_body``), chunked, interim 1xx responses skipped, a body
delimited by the server closing the connection (HTTP/1.0) complete at EOF.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from typing import Any, Protocol, cast

import httptools

from loadkit.measure.classify import MAX_ERROR_BODY_BYTES


class ConnectionOwner(Protocol):
    """What a connection reports to (the pool)."""

    bodiless: bool
    """Its requests' responses have no body, whatever their head says (HEAD)."""

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
        "bodiless",
        "body",
        "busy",
        "call",
        "closed",
        "deadline",
        "due",
        "head",
        "keep_body",
        "owner",
        "parser",
        "payload",
        "received",
        "responded",
        "reused",
        "sent",
        "status",
        "trace_at",
        "transport",
        "user",
    )  # fmt: skip

    def __init__(self, owner: ConnectionOwner) -> None:
        self.owner = owner
        self.bodiless = owner.bodiless
        self.responded = owner.responded  # looked up once: it runs for every response
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.status = 0
        """The current response's status once its head is parsed; 0 before."""
        self.body: list[bytes] | None = None
        """A failed response's body so far (None: not kept)."""
        self.head: bytes | bytearray = b""
        """The current response's bytes until its head is parsed (read for its framing when
        it is not kept alive)."""
        self.received = False
        """Bytes of the current request's response have arrived."""
        # The request in flight: its bytes (its trace id in them), the times it is measured
        # from (perf counter seconds: ``due`` the response time's start, ``sent`` the service
        # time's), when it times out, whether this connection answered a request before it,
        # and how often it was tried (a request lost to a kept-alive connection the server
        # had just closed is tried once more on a new one, as HTTP clients do).
        self.payload = b""
        self.due = 0.0
        self.sent = 0.0
        self.deadline = 0.0
        self.reused = False
        self.attempts = 0
        self.busy = False
        self.closed = False
        # A declarative scenario's request (``scenario_pool``; never set on a URL run): whether
        # a success's body is kept (its values are saved from it), the user sending it, the
        # scenario's request, and where its trace id starts in ``payload``.
        self.keep_body = False
        self.user: Any = None  # a ScenarioUser (typed loosely: the hot path casts nothing)
        self.call: Any = None  # a ScenarioCall
        self.trace_at = 0

    # --- asyncio's side ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        self.owner.connected(self)

    def data_received(self, data: bytes) -> None:
        self.received = True
        if not self.status:
            head = self.head
            if not head:
                self.head = data
            else:  # the head spans reads (rare): gathered in one growing buffer
                if not isinstance(head, bytearray):
                    head = self.head = bytearray(head)
                head += data
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._garbled()
        except httptools.HttpParserError as error:
            if isinstance(error, httptools.HttpParserCallbackError) and error.__context__:
                # Our own callback failed: a bug, not theirs. The loop's exception handler stops
                # the share; the connection's close is not recorded as the target's failure.
                self.closed = True
                raise error.__context__ from None
            self._garbled()

    def eof_received(self) -> bool | None:
        return None  # close our side too: connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        if self.closed:
            return
        self.closed = True
        if (
            self.busy
            and exc is None
            and self.status >= 200
            and not self.parser.should_keep_alive()
            and not _framed(self.head)
        ):
            # HTTP/1.0 style: the body ended where the server closed the connection. llhttp
            # keeps alive neither such a response nor one saying Connection: close, whose body
            # may still have a length or chunks (then cut short: lost, below): its head tells.
            # Asked here, at the close, not for every response.
            self.responded(self, self.status, self._body(), False)
        # Always told, answered or not: the owner forgets the connection (not busy: no failure).
        self.owner.lost(self, exc, False)

    # --- httptools' side --------------------------------------------------------------------

    def on_headers_complete(self) -> None:
        status = self.status = self.parser.get_status_code()
        if status >= 400 or self.keep_body:
            self.body = []
        if self.bodiless and status >= 200:
            # llhttp does not know the request was HEAD and would wait for the body the head
            # announces: the response ends here, and a fresh parser reads the next one (this
            # one's own on_message_complete, if it comes, is ignored).
            keep_alive = self.parser.should_keep_alive()
            self.parser = httptools.HttpResponseParser(self)
            self.responded(self, status, self._body(), keep_alive)

    def on_body(self, data: bytes) -> None:
        body = self.body
        if body is not None and (self.keep_body or sum(map(len, body)) <= MAX_ERROR_BODY_BYTES):
            body.append(data)

    def on_message_complete(self) -> None:
        status = self.status
        if status < 200:
            # An interim response (100 Continue, 103 Early Hints): the final one follows.
            self.status = 0
            self.body = None
            return
        if self.bodiless:
            return  # a HEAD response, ended at its head
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
        self.head = b""
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

    def response_headers(self) -> dict[str, str]:
        """The current response's headers, parsed again from its head.

        Asked for a failed response only, where the target profile reads its kind or trace id
        from a header: a success never pays for it (the parser calls no header callback of
        ours while a run goes)."""
        collector = _HeaderCollector()
        with contextlib.suppress(httptools.HttpParserError):
            httptools.HttpResponseParser(collector).feed_data(bytes(self.head))
        return collector.headers

    def _body(self) -> bytes | None:
        body = self.body
        self.body = None
        return b"".join(body) if body is not None else None

    def _garbled(self) -> None:
        if not self.closed:
            self.closed = True
            self.owner.lost(self, None, True)
        self.abort()


class _HeaderCollector:
    """httptools' callbacks that keep a response head's headers (the last of a repeated name,
    as a mapping would; an interim 1xx response's are replaced by the final one's)."""

    def __init__(self) -> None:
        self.headers: dict[str, str] = {}

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode("latin-1")] = value.decode("latin-1")


_BLANK_LINE = re.compile(rb"\r?\n\r?\n")


def _framed(data: bytes | bytearray) -> bool:
    """Whether the final response head at the start of ``data`` (after any interim 1xx heads)
    gives its body a Content-Length or chunks, rather than ending it at the connection's close
    (RFC 9112 6.3: a Transfer-Encoding not ending in chunked, or neither header)."""
    start = 0
    while (blank := _BLANK_LINE.search(data, start)) is not None:
        lines = bytes(data[start : blank.start()]).split(b"\n")
        start = blank.end()
        if lines[0][9:10] == b"1":
            continue  # an interim response's head: the final one follows
        length = False
        encoding: bytes | None = None
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = True
            elif name == b"transfer-encoding":
                encoding = value
        if encoding is not None:
            return encoding.rsplit(b",", 1)[-1].strip().lower() == b"chunked"
        return length
    return False

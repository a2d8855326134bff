"""The connections to the target, the requests in flight on them, and each outcome recorded.

A model (closed or open) asks for a request with ``send(due, now)``; the pool puts it on an
idle kept-alive connection (the most recently used) or opens a new one, and when it ends (a
response, a lost connection, a timeout) records it into the ``LatencyRecorder`` and tells the
model (``on_done``), which decides what is sent next. Everything runs in callbacks on the event
loop: no coroutine, no future and no timer per request.

Timeouts: one sweep every ``sweep_interval(timeout_s)`` looks at the connections in flight; a
request past its deadline is recorded as a ``timeout`` and its connection dropped. A request
times out between ``timeout_s`` and ``timeout_s`` + one sweep interval after it started.

Error kinds are the Locust path's for the same failure: a response by ``classify_response``
(status >= 400 fails, as FastHttpUser decides; the service's envelope gives the kind), no
response by ``classify_os_error`` and Locust's ``client_kind`` rules (a lost connection is
``connection_reset``, an unparsable response ``protocol_error``). A request lost with a
kept-alive connection the server had just closed (no byte of its answer came) is sent once more
on a new connection when its method is idempotent (geventhttpclient does so after a FIN).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from time import perf_counter

from loadkit.engines.locust.failures import client_kind
from loadkit.engines.native.connection import Connection
from loadkit.engines.native.request_bytes import EncodedRequest, TracedPayloads
from loadkit.measure.classify import classify_response, describe_error
from loadkit.measure.error_reader import ErrorReader
from loadkit.measure.kinds import ErrorKind
from loadkit.measure.recorder import LatencyRecorder

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"})
DEFAULT_TIMEOUT_S = 60.0
"""A request's bound, connection included: the Locust path's (FastHttpUser's 60 s)."""

CONNECTION_RESET = ErrorKind.CONNECTION_RESET.value
PROTOCOL_ERROR = ErrorKind.PROTOCOL_ERROR.value
TIMEOUT = ErrorKind.TIMEOUT.value


def sweep_interval(timeout_s: float) -> float:
    """How often the timeout sweep runs: a twentieth of the timeout, at most 0.25 s (a request
    is late by at most that much; the sweep costs one pass over the open connections)."""
    return min(max(timeout_s / 20.0, 0.001), 0.25)


class Pool:
    """The connections of one process's share of a run."""

    def __init__(
        self,
        *,
        request: EncodedRequest,
        ssl_context: ssl.SSLContext | None,
        recorder: LatencyRecorder,
        run_clock_offset: float,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        service_times: bool = False,
        reader: ErrorReader | None = None,
    ) -> None:
        """``run_clock_offset`` turns a ``perf_counter`` reading into the recorder's run clock;
        ``service_times``: an open run (each request also has a service time, from its send)."""
        self.request = request
        self.payloads = TracedPayloads(request)
        self.reader = reader
        """How a failed response's kind is read (the target profile's; None: the bundled
        service's envelope)."""
        self.ssl_context = ssl_context
        self.recorder = recorder
        self.offset = run_clock_offset
        self.timeout_s = timeout_s
        self.service_times = service_times
        self.idempotent = request.method in IDEMPOTENT_METHODS
        self.bodiless = request.method == "HEAD"
        self.on_done: Callable[[float], None] = lambda _end: None
        """Called after each request ended and was recorded, with its end (perf counter)."""
        self.idle: list[Connection] = []
        self.connections: set[Connection] = set()
        self.connecting: dict[Connection, asyncio.Task[None]] = {}
        self.in_flight = 0
        self.closing = False
        self._sweeper: asyncio.TimerHandle | None = None

    # --- sending ----------------------------------------------------------------------------

    def send(self, due: float, now: float) -> None:
        """Start one request at ``now``, its response time counted from ``due`` (perf counter
        seconds; the same in a closed run)."""
        self.in_flight += 1
        idle = self.idle
        connection = idle.pop() if idle else Connection(self)
        while connection.transport is not None and connection.transport.is_closing():
            # Closed by the server while idle, its connection_lost not yet run: not reusable.
            connection = idle.pop() if idle else Connection(self)
        connection.payload = self.payloads.next()
        connection.due = due
        connection.sent = now
        connection.deadline = now + self.timeout_s
        connection.attempts = 1
        connection.busy = True
        if connection.transport is not None:
            connection.write(connection.payload)
        else:
            self._open(connection)

    def _open(self, connection: Connection) -> None:
        self.connections.add(connection)
        self.connecting[connection] = asyncio.get_running_loop().create_task(
            self._connect(connection)
        )

    async def _connect(self, connection: Connection) -> None:
        request = self.request
        try:
            await asyncio.get_running_loop().create_connection(
                lambda: connection,
                request.host,
                request.port,
                ssl=self.ssl_context,
                server_hostname=request.server_hostname if self.ssl_context else None,
            )
        except asyncio.CancelledError:
            raise
        except (OSError, ValueError) as error:
            self.connecting.pop(connection, None)
            self._connect_failed(connection, error)
        else:
            self.connecting.pop(connection, None)

    # --- what the connections report (ConnectionOwner) ---------------------------------------

    def connected(self, connection: Connection) -> None:
        """Write the request that waited for this connection."""
        if connection.busy and not connection.closed:
            connection.write(connection.payload)

    def responded(
        self, connection: Connection, status: int, body: bytes | None, keep_alive: bool
    ) -> None:
        """Record the response, then free the connection (or close it, when not kept alive)."""
        end = perf_counter()
        if not connection.busy:
            return  # a response nobody asked for (after a timeout): ignored
        if status < 400:
            if self.service_times:
                self.recorder.record(
                    endpoint=self.request.endpoint,
                    latency_s=end - connection.due,
                    end=end + self.offset,
                    status=status,
                    service_s=end - connection.sent,
                )
            else:
                self.recorder.record(
                    endpoint=self.request.endpoint,
                    latency_s=end - connection.due,
                    end=end + self.offset,
                    status=status,
                )
        else:
            # Another API's kind or trace id may be in a header; the bundled service's are in
            # its body (no reader).
            headers = connection.response_headers() if self.reader is not None else None
            verdict = classify_response(status, headers, body, reader=self.reader)
            self._record(
                connection,
                end,
                verdict.kind,
                status=status,
                message=verdict.message,
                trace_id=verdict.trace_id,
            )
        connection.busy = False
        connection.reused = True
        self.in_flight -= 1
        if keep_alive and not self.closing:
            self.idle.append(connection)
        else:
            connection.close()
        self.on_done(end)

    def lost(self, connection: Connection, error: BaseException | None, garbled: bool) -> None:
        """The connection is gone: a request on it failed (or is tried once more)."""
        self.connections.discard(connection)
        if not connection.busy:
            if connection in self.idle:
                self.idle.remove(connection)  # closed by the server while idle: fine
            return
        connection.busy = False
        if (
            (error is None or isinstance(error, ConnectionResetError))
            and not garbled
            and self.is_idempotent(connection)
            and connection.reused
            and not connection.received
            and connection.attempts == 1
            and not self.closing
        ):
            # The server closed a kept-alive connection as the request went out on it (a FIN,
            # or a reset: a server closing with our request unread resets): sent again on a new
            # one, for idempotent methods (RFC 9110 9.2.2), as browsers do; not on a fresh
            # connection, whose close is the server's answer (``resets``, ``hangs_up``).
            self._open(self.retry_of(connection))
            return
        end = perf_counter()
        if garbled:
            kind, message = PROTOCOL_ERROR, "the response is not valid HTTP/1.1"
        elif error is None:
            kind = CONNECTION_RESET
            message = (
                "the server closed the connection mid-response"
                if connection.received
                else "the server closed the connection before responding"
            )
        else:
            kind, message = client_kind(error), describe_error(error)
        self._failed(connection, end, kind, message)

    def is_idempotent(self, connection: Connection) -> bool:
        """Whether the request on ``connection`` may be sent again (its method is idempotent)."""
        return self.idempotent

    def retry_of(self, connection: Connection) -> Connection:
        """A new connection carrying the request ``connection`` lost, for its second attempt."""
        retry = Connection(self)
        retry.payload = connection.payload
        retry.due, retry.sent, retry.deadline = (
            connection.due,
            connection.sent,
            connection.deadline,
        )
        retry.attempts = 2
        retry.busy = True
        return retry

    def _connect_failed(self, connection: Connection, error: BaseException) -> None:
        self.connections.discard(connection)
        if not connection.busy or connection.closed:
            return
        connection.busy = False
        connection.closed = True
        # A TLS handshake refused (the certificate above all) is tls_error, as on the Locust
        # path; the message says why (e.g. "certificate verify failed").
        self._failed(connection, perf_counter(), client_kind(error), describe_error(error))

    def _failed(self, connection: Connection, end: float, kind: str, message: str) -> None:
        # A response cut short after its head keeps its status, as the Locust path records it.
        status = connection.status if connection.status >= 200 else None
        self._record(connection, end, kind, status=status, message=message, trace_id=None)
        self.in_flight -= 1
        self.on_done(end)

    def _record(
        self,
        connection: Connection,
        end: float,
        kind: str | None,
        *,
        status: int | None,
        message: str | None,
        trace_id: str | None,
    ) -> None:
        self.recorder.record(
            endpoint=self.request.endpoint,
            latency_s=end - connection.due,
            end=end + self.offset,
            error_kind=kind,
            status=status,
            # The service's own word when it gave one, else the id this request carried.
            trace_id=trace_id or self.request.trace_id(connection.payload),
            message=message,
            service_s=end - connection.sent if self.service_times else None,
        )

    # --- timeouts and the end ---------------------------------------------------------------

    def start_sweeping(self) -> None:
        """Look for requests past their deadline every ``sweep_interval`` from now on (once)."""
        if self._sweeper is not None:
            return
        self._sweeper = asyncio.get_running_loop().call_later(
            sweep_interval(self.timeout_s), self._sweep
        )

    def _sweep(self) -> None:
        now = perf_counter()
        late = [c for c in self.connections if c.busy and c.deadline <= now]
        for connection in late:
            self.connections.discard(connection)
            connection.busy = False
            connection.closed = True
            task = self.connecting.pop(connection, None)
            if task is not None:
                task.cancel()
            connection.abort()
            self._failed(
                connection, now, TIMEOUT, f"TimeoutError: no response within {self.timeout_s:g} s"
            )
        self._sweeper = asyncio.get_running_loop().call_later(
            sweep_interval(self.timeout_s), self._sweep
        )

    def close(self) -> None:
        """The run is over: stop sweeping, drop every connection (requests still in flight are
        left unrecorded: the caller counts them, ``in_flight``)."""
        self.closing = True
        if self._sweeper is not None:
            self._sweeper.cancel()
        for task in self.connecting.values():
            task.cancel()
        for connection in list(self.connections):
            connection.closed = True
            connection.abort()
        self.connections.clear()
        self.idle.clear()

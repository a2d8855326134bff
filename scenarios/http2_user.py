"""An HTTP/2 user for Locust with FastHttpUser's client API, and a base that switches to it.

``Http2User`` speaks HTTP/2 only: by prior knowledge (h2c) on ``http://``, by ALPN ``h2`` on
``https://``. Its ``client`` has FastHttpUser's API (``get``/``post``/``put``/``patch``/
``delete``/``head``/``options``/``request``, ``name=``, ``catch_response=``, ``json=``,
``data=``, ``headers=``) and fires Locust's ``request`` event as FastHttpUser does, so Locust's
statistics and any plugin see every request. Streams share one connection per user (as a browser
or a gRPC client does): greenlets a task spawns multiplex on it. ``connections_per_user = N``
spreads a user's requests over N connections, round-robin.

``FastOrHttp2User`` is a FastHttpUser that speaks HTTP/2 instead when its class attribute
``http2`` is true: the bundled scenarios are written on it, so one flag switches them. Plain
Locust: ``SCENARIOS_HTTP2=1 locust -f scenarios/api.py --host http://127.0.0.1:8443``.

A stream the server resets raises ``Http2StreamReset`` (its ``error_code`` kept: 2 is
INTERNAL_ERROR, 7 REFUSED_STREAM); a GOAWAY fails the streams still open with ``Http2GoAway``.
Both are ``ConnectionError``s: the request fails with status 0, as a lost connection does.

Built on the ``h2`` state machine over gevent sockets (bench/bench_http2.py measured it against
httpx's HTTP/2 client under gevent: docs/http2.md). Requests are never redirected.
"""

from __future__ import annotations

import json as json_module
import os
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any, ClassVar
from urllib.parse import urlsplit

import gevent
import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
from gevent.event import Event
from gevent.lock import RLock
from locust import FastHttpUser, User
from locust.exception import CatchResponseError, LocustError, ResponseError
from requests.structures import CaseInsensitiveDict

HTTP2_ENV = "SCENARIOS_HTTP2"
"""``FastOrHttp2User.http2``'s default: ``1`` switches the bundled scenarios under plain Locust."""
RECEIVE_WINDOW = 16 * 1024 * 1024
"""The connection's and each stream's receive window: large, so that a response rarely waits for
a WINDOW_UPDATE (h2 still sends them as data is acknowledged)."""
READ_SIZE = 65536
GOAWAY_FRAME = 0x7


class Http2StreamReset(ConnectionError):
    """The server reset the request's stream (RST_STREAM); ``error_code`` says why."""

    http2_frame = "RST_STREAM"

    def __init__(self, stream_id: int, error_code: int) -> None:
        self.stream_id = stream_id
        self.error_code = error_code
        super().__init__(f"stream {stream_id} reset by the server: {_code_name(error_code)}")


class Http2GoAway(ConnectionError):
    """The server ended the connection (GOAWAY) with the request's stream still open."""

    http2_frame = "GOAWAY"

    def __init__(self, error_code: int, last_stream_id: int) -> None:
        self.error_code = error_code
        self.last_stream_id = last_stream_id
        super().__init__(
            f"connection ended by the server (GOAWAY): {_code_name(error_code)}, "
            f"last stream {last_stream_id}"
        )


class Http2StatusError(ResponseError):
    """A response with a status of 400 or more (FastHttpUser's ``LocustBadStatusCode``)."""


def _code_name(code: int) -> str:
    try:
        return f"{h2.errors.ErrorCodes(code).name} ({code})"
    except ValueError:
        return f"error code {code}"


class _Stream:
    __slots__ = ("body", "done", "error", "headers", "status")

    def __init__(self) -> None:
        self.status = 0
        self.headers: list[tuple[str, str]] = []
        self.body: list[bytes] = []
        self.error: BaseException | None = None
        self.done = Event()


class Http2Connection:
    """One HTTP/2 connection; any number of greenlets send requests on it at once.

    A reader greenlet feeds what arrives to the state machine and wakes each request when its
    stream ends; one lock guards the state machine and the socket's writes.
    """

    def __init__(
        self, host: str, port: int, *, tls: ssl.SSLContext | None, connect_timeout: float
    ) -> None:
        sock = socket.create_connection((host, port), timeout=connect_timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if tls is not None:
            sock = tls.wrap_socket(sock, server_hostname=host)
            if sock.selected_alpn_protocol() != "h2":
                sock.close()
                raise ConnectionError(
                    f"{host}:{port} did not agree to HTTP/2 by ALPN "
                    f"(offered h2, got {sock.selected_alpn_protocol()!r})"
                )
        sock.settimeout(None)
        self._sock = sock
        self._lock = RLock()
        self._window = Event()
        self._streams: dict[int, _Stream] = {}
        self._pending = b""
        self._goaway: Http2GoAway | None = None
        self.closed: BaseException | None = None
        # h2's header checks cost more than the rest of a request's frames: the headers sent
        # are built here, lower-case, and a server's odd header is the test's to see, not ours.
        config = h2.config.H2Configuration(
            client_side=True,
            header_encoding=None,
            validate_outbound_headers=False,
            normalize_outbound_headers=False,
            validate_inbound_headers=False,
            normalize_inbound_headers=False,
        )
        self._h2 = h2.connection.H2Connection(config=config)
        self._h2.initiate_connection()
        self._h2.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: RECEIVE_WINDOW})
        self._h2.increment_flow_control_window(RECEIVE_WINDOW - 65535)
        self._sock.sendall(self._h2.data_to_send())
        self._reader = gevent.spawn(self._read_loop)

    def request(
        self,
        headers: list[tuple[bytes, bytes]],
        body: bytes | None,
        timeout: float | None,
    ) -> _Stream:
        """Send one request and wait for its whole response; raises what ended it early."""
        stream = _Stream()
        with self._lock:
            if self.closed is not None:
                raise self.closed
            if self._goaway is not None:
                raise self._goaway
            stream_id = self._h2.get_next_available_stream_id()
            self._streams[stream_id] = stream
            try:
                self._h2.send_headers(stream_id, headers, end_stream=not body)
            except Exception:
                # Refused by h2 (too many open streams, ...): no stream was opened, so none
                # is left waiting for an answer (a graceful GOAWAY waits for open ones).
                del self._streams[stream_id]
                raise
            self._flush()
        if body:
            self._send_body(stream_id, stream, body, timeout)
        if not stream.done.wait(timeout):
            self._cancel(stream_id)
            raise TimeoutError(f"no complete response within {timeout} s (stream {stream_id})")
        if stream.error is not None:
            raise stream.error
        return stream

    def close(self) -> None:
        """Close the socket and stop the reader (requests still open fail)."""
        self._fail_all(ConnectionAbortedError("connection closed by the client"))
        self._reader.kill(block=False)

    def _send_body(
        self, stream_id: int, stream: _Stream, body: bytes, timeout: float | None
    ) -> None:
        view = memoryview(body)
        while view:
            with self._lock:
                if stream.done.is_set():
                    return  # answered or reset before its body was sent: the caller raises
                if self.closed is not None:
                    raise self.closed
                size = min(
                    len(view),
                    self._h2.local_flow_control_window(stream_id),
                    self._h2.max_outbound_frame_size,
                )
                if size > 0:
                    self._h2.send_data(stream_id, bytes(view[:size]), end_stream=size == len(view))
                    self._flush()
                    view = view[size:]
                    continue
                self._window.clear()
            if not self._window.wait(timeout):
                raise TimeoutError(
                    f"the server's flow-control window stayed shut (stream {stream_id})"
                )

    def _cancel(self, stream_id: int) -> None:
        with self._lock:
            self._streams.pop(stream_id, None)
            try:
                self._h2.reset_stream(stream_id, h2.errors.ErrorCodes.CANCEL)
                self._flush()
            except (h2.exceptions.H2Error, OSError):
                pass  # the stream or the connection is gone already

    def _flush(self) -> None:
        data = self._h2.data_to_send()
        if data:
            self._sock.sendall(data)

    @property
    def usable(self) -> bool:
        """Whether a new request may go on this connection (not closed, no GOAWAY received)."""
        return self.closed is None and self._goaway is None

    def _read_loop(self) -> None:
        try:
            while True:
                data = self._sock.recv(READ_SIZE)
                if not data:
                    raise self._goaway or ConnectionResetError(
                        "the server closed the HTTP/2 connection"
                    )
                with self._lock:
                    self._receive(self._pending + data if self._pending else data)
                    self._flush()
                    if self.closed is not None:
                        return
                    if self._goaway is not None and not self._streams:
                        self._fail_all(self._goaway)  # drained after a graceful GOAWAY
                        return
        except gevent.GreenletExit:
            raise
        except Exception as error:  # anything that ends the connection fails its streams
            self._fail_all(error)

    def _receive(self, data: bytes) -> None:
        """Feed ``data`` to the state machine, stopping after each GOAWAY frame.

        h2 closes its connection state on receiving a GOAWAY and refuses every later frame
        (python-hyper/h2#1181), though the streams up to its last stream id may still complete:
        nginx sends GOAWAY(NO_ERROR) when a connection reaches ``keepalive_requests`` (1,000 by
        default), then answers the requests it took. So complete frames are fed up to a GOAWAY's
        end, the state reopened after a graceful one, and a partial frame kept for next time.
        """
        offset, size = 0, len(data)
        start = 0
        while offset + 9 <= size:
            end = offset + 9 + int.from_bytes(data[offset : offset + 3], "big")
            if end > size:
                break
            if data[offset + 3] == GOAWAY_FRAME:
                self._feed(data[start:end])
                start = end
            offset = end
        self._feed(data[start:offset])
        self._pending = data[offset:]

    def _feed(self, data: bytes) -> None:
        if not data or self.closed is not None:
            return
        for event in self._h2.receive_data(data):
            self._handle(event)

    def _handle(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.DataReceived):
            stream = self._streams.get(event.stream_id)  # type: ignore[arg-type]
            if stream is not None:
                stream.body.append(event.data)  # type: ignore[arg-type]
            self._h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)  # type: ignore[arg-type]
        elif isinstance(event, h2.events.ResponseReceived):
            stream = self._streams.get(event.stream_id)  # type: ignore[arg-type]
            if stream is not None:
                stream.headers = [
                    (n.decode("latin-1"), v.decode("latin-1")) for n, v in event.headers or ()
                ]  # type: ignore[union-attr]
                stream.status = int(dict(stream.headers).get(":status", "0"))
        elif isinstance(event, h2.events.StreamEnded):
            stream = self._streams.pop(event.stream_id, None)  # type: ignore[arg-type]
            if stream is not None:
                stream.done.set()
        elif isinstance(event, h2.events.StreamReset):
            stream = self._streams.pop(event.stream_id, None)  # type: ignore[arg-type]
            if stream is not None:
                stream.error = Http2StreamReset(event.stream_id or 0, int(event.error_code or 0))
                stream.done.set()
        elif isinstance(event, h2.events.ConnectionTerminated):
            goaway = Http2GoAway(int(event.error_code or 0), event.last_stream_id or 0)
            if goaway.error_code != 0:
                self._fail_all(goaway)
                return
            # Graceful: streams the server never took fail; the others may still be answered.
            self._goaway = goaway
            for stream_id in [s for s in self._streams if s > goaway.last_stream_id]:
                stream = self._streams.pop(stream_id)
                stream.error = goaway
                stream.done.set()
            self._h2.state_machine.state = h2.connection.ConnectionState.CLIENT_OPEN
        elif isinstance(event, h2.events.WindowUpdated):
            self._window.set()

    def _fail_all(self, error: BaseException) -> None:
        with self._lock:
            if self.closed is None:
                self.closed = error
            streams, self._streams = self._streams, {}
            for stream in streams.values():
                stream.error = error
                stream.done.set()
            self._window.set()
            with suppress(OSError):
                self._sock.close()


class Http2Response:
    """A response, or the failure that stood in for one (``status_code`` 0, ``error`` set)."""

    def __init__(
        self,
        *,
        url: str,
        status_code: int = 0,
        headers: CaseInsensitiveDict[str] | None = None,
        content: bytes | None = None,
        error: BaseException | None = None,
    ) -> None:
        self.url = url
        self.status_code = status_code
        self.headers: CaseInsensitiveDict[str] = (
            headers if headers is not None else CaseInsensitiveDict()
        )
        self.content = content
        self.error = error
        self.request_meta: dict[str, Any] = {}

    @property
    def text(self) -> str | None:
        """The body as text (UTF-8, or the charset the response names)."""
        if self.content is None:
            return None
        charset = "utf-8"
        for part in self.headers.get("content-type", "").split(";")[1:]:
            name, _, value = part.strip().partition("=")
            if name.lower() == "charset" and value:
                charset = value.strip('"')
        return self.content.decode(charset, errors="replace")

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json_module.loads(self.content or b"")

    @property
    def ok(self) -> bool:
        """True when the request got a response below 400."""
        return self.error is None and 0 < self.status_code < 400

    def raise_for_status(self) -> None:
        """Raise the failure, or ``Http2StatusError`` for a status of 400 or more."""
        if self.error is not None:
            raise self.error
        if self.status_code >= 400:
            raise Http2StatusError(f"{self.status_code} for {self.url}")


class Http2ResponseContextManager(Http2Response):
    """``catch_response=True``: the request is reported when the with-block ends, as
    ``success()`` or ``failure(...)`` inside it decided (Locust's ``ResponseContextManager``)."""

    def __init__(self, response: Http2Response, fire: Callable[..., None]) -> None:
        self.__dict__.update(response.__dict__)
        self._fire = fire
        self._manual_result: bool | BaseException | None = None
        self._entered = False

    def __enter__(self) -> Http2ResponseContextManager:
        self._entered = True
        return self

    def __exit__(self, exc_type: object, value: BaseException | None, _tb: object) -> bool:
        if self._manual_result is True:
            self.request_meta["exception"] = None
        elif isinstance(self._manual_result, BaseException):
            self.request_meta["exception"] = self._manual_result
        elif value is not None:
            if not isinstance(value, ResponseError):
                return False
            self.request_meta["exception"] = value
        else:
            try:
                self.raise_for_status()
            except Exception as error:
                self.request_meta["exception"] = error
        self._fire(**self.request_meta)
        return value is None or self._manual_result is None

    def success(self) -> None:
        """Report this request as a success, whatever its status."""
        if not self._entered:
            raise LocustError("success() needs the request in a with-block (catch_response=True)")
        self._manual_result = True

    def failure(self, exc: object) -> None:
        """Report this request as a failure (a string becomes a ``CatchResponseError``)."""
        if not self._entered:
            raise LocustError("failure() needs the request in a with-block (catch_response=True)")
        self._manual_result = exc if isinstance(exc, BaseException) else CatchResponseError(exc)


class Http2Session:
    """FastHttpSession's API over HTTP/2: ``base_url`` is ``http://`` (h2c) or ``https://``."""

    def __init__(
        self,
        *,
        base_url: str,
        request_event: Any,
        user: User | None,
        connections: int = 1,
        network_timeout: float = 60.0,
        connection_timeout: float = 60.0,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise LocustError(f"host {base_url!r}: an http:// or https:// URL is needed for HTTP/2")
        self.base_url = base_url.rstrip("/")
        self.request_event = request_event
        self.user = user
        self.request_name: str | None = None
        self._scheme = parts.scheme.encode()
        self._host = parts.hostname
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._authority = parts.netloc.encode()
        self._prefix = parts.path.rstrip("/")
        self._tls = tls if parts.scheme == "https" else None
        self._timeout = network_timeout
        self._connect_timeout = connection_timeout
        self._connections: list[Http2Connection | None] = [None] * max(1, connections)
        self._next = 0

    @contextmanager
    def rename_request(self, name: str) -> Iterator[None]:
        """Group the requests made inside the with-block under ``name``."""
        self.request_name = name
        try:
            yield
        finally:
            self.request_name = None

    def request(
        self,
        method: str,
        url: str,
        name: str | None = None,
        data: str | bytes | dict[str, Any] | None = None,
        catch_response: bool = False,
        headers: dict[str, str] | None = None,
        json: Any = None,
        context: dict[str, Any] | None = None,
        **_kwargs: Any,
    ) -> Any:
        """Send one request; reported to Locust's ``request`` event as FastHttpUser does."""
        name = name or self.request_name or url
        path = url if url.startswith("/") else f"/{url}"
        full_url = f"{self.base_url}{path}"
        fields = dict(headers) if headers else {}
        body: bytes | None
        if data is None and json is not None:
            body = json_module.dumps(json).encode()
            fields.setdefault("content-type", "application/json")
        elif isinstance(data, dict):
            from urllib.parse import urlencode

            body = urlencode(data).encode()
            fields.setdefault("content-type", "application/x-www-form-urlencoded")
        else:
            body = data.encode() if isinstance(data, str) else data
        wire = [
            (b":method", method.upper().encode()),
            (b":scheme", self._scheme),
            (b":authority", self._authority),
            (b":path", (self._prefix + path).encode()),
        ]
        wire += [
            (k.lower().encode(), str(v).encode()) for k, v in fields.items() if k.lower() != "host"
        ]
        if body:
            wire.append((b"content-length", str(len(body)).encode()))
        start_time = time.time()
        started = time.perf_counter()
        response = self._send(wire, body, full_url)
        request_meta: dict[str, Any] = {
            "request_type": method.upper(),
            "name": name,
            "context": {**(self.user.context() if self.user else {}), **(context or {})},
            "response": response,
            "exception": None,
            "start_time": start_time,
            "url": full_url,
            "response_time": (time.perf_counter() - started) * 1000,
            "response_length": len(response.content or b""),
        }
        try:
            response.raise_for_status()
        except Exception as error:
            request_meta["exception"] = error
        response.request_meta = request_meta
        if catch_response:
            managed = Http2ResponseContextManager(response, self.request_event.fire)
            request_meta["response"] = managed
            return managed
        self.request_event.fire(**request_meta)
        return response

    def _send(self, wire: list[tuple[bytes, bytes]], body: bytes | None, url: str) -> Http2Response:
        index = self._next
        self._next = (index + 1) % len(self._connections)
        try:
            connection = self._connections[index]
            if connection is None or not connection.usable:
                connection = Http2Connection(
                    self._host, self._port, tls=self._tls, connect_timeout=self._connect_timeout
                )
                self._connections[index] = connection
            stream = connection.request(wire, body, self._timeout)
        except (OSError, h2.exceptions.H2Error, ssl.SSLError) as error:
            return Http2Response(url=url, error=error)
        headers: CaseInsensitiveDict[str] = CaseInsensitiveDict(
            (n, v) for n, v in stream.headers if not n.startswith(":")
        )
        return Http2Response(
            url=url, status_code=stream.status, headers=headers, content=b"".join(stream.body)
        )

    def close(self) -> None:
        """Close this session's connections."""
        for connection in self._connections:
            if connection is not None:
                connection.close()
        self._connections = [None] * len(self._connections)

    def get(self, url: str, **kwargs: Any) -> Any:
        """GET ``url``."""
        return self.request("GET", url, **kwargs)

    def post(self, url: str, data: Any = None, **kwargs: Any) -> Any:
        """POST ``url``."""
        return self.request("POST", url, data=data, **kwargs)

    def put(self, url: str, data: Any = None, **kwargs: Any) -> Any:
        """PUT ``url``."""
        return self.request("PUT", url, data=data, **kwargs)

    def patch(self, url: str, data: Any = None, **kwargs: Any) -> Any:
        """PATCH ``url``."""
        return self.request("PATCH", url, data=data, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> Any:
        """DELETE ``url``."""
        return self.request("DELETE", url, **kwargs)

    def head(self, url: str, **kwargs: Any) -> Any:
        """HEAD ``url``."""
        return self.request("HEAD", url, **kwargs)

    def options(self, url: str, **kwargs: Any) -> Any:
        """OPTIONS ``url``."""
        return self.request("OPTIONS", url, **kwargs)


def tls_context(user: Any) -> ssl.SSLContext:
    """The TLS context of an https target, offering only ``h2`` by ALPN: the user class's
    ``ssl_context_factory`` when it has one, else verified unless ``insecure``."""
    factory = getattr(user, "ssl_context_factory", None)
    if factory is not None:
        context: ssl.SSLContext = factory()
    elif getattr(user, "insecure", False):
        context = ssl._create_unverified_context()
    else:
        context = ssl.create_default_context()
    context.set_alpn_protocols(["h2"])
    return context


def session_for(user: Any) -> Http2Session:
    """The HTTP/2 session of ``user`` (an ``Http2User`` or a switched ``FastOrHttp2User``)."""
    if user.host is None:
        raise LocustError("no host: give --host, or set the user class's host")
    tls = tls_context(user) if user.host.startswith("https:") else None
    return Http2Session(
        base_url=user.host,
        request_event=user.environment.events.request,
        user=user,
        connections=int(getattr(user, "connections_per_user", 1)),
        network_timeout=float(getattr(user, "network_timeout", 60.0)),
        connection_timeout=float(getattr(user, "connection_timeout", 60.0)),
        tls=tls,
    )


class Http2User(User):
    """A user whose ``client`` speaks HTTP/2 only (see the module's docstring)."""

    abstract = True
    http2_capable: ClassVar[bool] = True
    """What loadkit's ``--http2`` looks for: this class's users can speak HTTP/2."""
    connections_per_user = 1
    network_timeout = 60.0
    connection_timeout = 60.0
    insecure = False
    """Check https certificates unless set (loadkit's ``--insecure`` sets it)."""
    ssl_context_factory: Callable[[], ssl.SSLContext] | None = None

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        self.client = session_for(self)

    def run(self) -> None:
        """Locust's user loop; the connections close when it ends (stopped or killed)."""
        try:
            super().run()
        finally:
            self.client.close()


class FastOrHttp2User(FastHttpUser):
    """A FastHttpUser that speaks HTTP/2 (as ``Http2User``) when ``http2`` is true."""

    abstract = True
    http2_capable: ClassVar[bool] = True
    http2: bool = os.environ.get(HTTP2_ENV, "") == "1"
    """Speak HTTP/2: set by loadkit's ``--http2``, or ``SCENARIOS_HTTP2=1`` under plain Locust."""
    connections_per_user = 1

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        if self.http2:
            self.client = session_for(self)  # type: ignore[assignment]

    def run(self) -> None:
        """Locust's user loop; an HTTP/2 session's connections close when it ends."""
        try:
            super().run()
        finally:
            if isinstance(self.client, Http2Session):
                self.client.close()

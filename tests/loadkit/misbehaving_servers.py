"""Loopback servers that each misbehave in one way, so each client-side error kind is seen live.

Each runs on its own thread on 127.0.0.1 with a free port and stops when its context exits.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections.abc import Callable, Iterator

import h2.config
import h2.connection
import h2.errors
import h2.events

Handler = Callable[[socket.socket], None]


@contextlib.contextmanager
def serve(handler: Handler) -> Iterator[str]:
    """Accept connections on a free loopback port and hand each to ``handler`` on a thread.

    Yields the base URL. Handlers must return once their peer goes away or the server closes.
    """
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    port = listener.getsockname()[1]
    stop = threading.Event()
    connections: list[socket.socket] = []

    def accept_loop() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            connections.append(conn)
            threading.Thread(target=_run, args=(handler, conn), daemon=True).start()

    thread = threading.Thread(target=accept_loop, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop.set()
        thread.join(timeout=2)
        listener.close()
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.close()


def _run(handler: Handler, conn: socket.socket) -> None:
    with contextlib.suppress(OSError):
        handler(conn)


def read_request(conn: socket.socket) -> bytes:
    """Read an HTTP/1.1 request head (and whatever of the body came with it)."""
    conn.settimeout(5)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def closed_port() -> str:
    """A loopback URL on which nothing listens (bound then released: connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# --- HTTP/1.1 misbehaviour ------------------------------------------------------------------


def resets(conn: socket.socket) -> None:
    """Read the request, then abort the connection: SO_LINGER 0 makes close() send a RST."""
    read_request(conn)
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


def hangs_up(conn: socket.socket) -> None:
    """Read the request, then close politely (FIN) without a word."""
    read_request(conn)
    conn.close()


def hangs(conn: socket.socket) -> None:
    """Read the request and never answer (until the client gives up)."""
    read_request(conn)
    conn.settimeout(30)
    with contextlib.suppress(OSError):
        while conn.recv(65536):
            pass


def speaks_garbage(conn: socket.socket) -> None:
    """Answer with bytes that are not HTTP."""
    read_request(conn)
    conn.sendall(b"SSH-2.0-OpenSSH_9.6 definitely not http\r\n\r\n")
    conn.close()


def answers(status: int, body: bytes, content_type: str = "application/json") -> Handler:
    """A handler that answers every request with ``status`` and ``body`` (and a trace id)."""

    def handler(conn: socket.socket) -> None:
        while read_request(conn):
            head = (
                f"HTTP/1.1 {status} Whatever\r\nContent-Type: {content_type}\r\n"
                f"Content-Length: {len(body)}\r\nX-Trace-Id: trace-from-header\r\n\r\n"
            )
            conn.sendall(head.encode() + body)

    return handler


# --- HTTP/2 misbehaviour --------------------------------------------------------------------


def h2_server(*, goaway: bool = False, healthy_paths: frozenset[str] = frozenset()) -> Handler:
    """An HTTP/2 (prior knowledge) server that answers INTERNAL_ERROR to every request.

    By default each stream is reset (RST_STREAM, error code 2); with ``goaway`` the whole
    connection is closed with GOAWAY(INTERNAL_ERROR). Paths in ``healthy_paths`` get 200 instead.
    """

    def handler(conn: socket.socket) -> None:
        conn.settimeout(5)
        h2conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=False))
        h2conn.initiate_connection()
        conn.sendall(h2conn.data_to_send())
        closed = False
        while not closed:
            data = conn.recv(65536)
            if not data:
                return
            for event in h2conn.receive_data(data):
                if isinstance(event, h2.events.RequestReceived):
                    path = dict(event.headers).get(b":path", b"").decode()
                    if path in healthy_paths:
                        body = b'{"status": "ok"}'
                        h2conn.send_headers(
                            event.stream_id,
                            [
                                (":status", "200"),
                                ("content-type", "application/json"),
                                ("content-length", str(len(body))),
                            ],
                        )
                        h2conn.send_data(event.stream_id, body, end_stream=True)
                    elif goaway:
                        h2conn.close_connection(error_code=h2.errors.ErrorCodes.INTERNAL_ERROR)
                        closed = True  # h2 refuses any frame after its own GOAWAY
                        break
                    else:
                        h2conn.reset_stream(
                            event.stream_id, error_code=h2.errors.ErrorCodes.INTERNAL_ERROR
                        )
            conn.sendall(h2conn.data_to_send())

    return handler

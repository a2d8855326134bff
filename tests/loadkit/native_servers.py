"""Servers for the native engine's tests: HTTP/1.1 shapes a client must read right (chunked,
large, HTTP/1.0 bodies ended by the close, interim 1xx, connections closed after each answer),
and the truth servers of ``scheduled_server`` run in a child process, so that their threads do
not take the GIL from the engine's event loop (whose scheduler lag a test judges)."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from tests.loadkit.misbehaving_servers import Handler, read_request

REPO = Path(__file__).resolve().parents[2]


def answering(response: bytes, *, close_after: bool = False) -> Handler:
    """Every request answered with ``response`` (then the close, with ``close_after``)."""

    def handler(conn: socket.socket) -> None:
        while read_request(conn):
            conn.sendall(response)
            if close_after:
                conn.close()
                return

    return handler


def chunked(body_chunks: list[bytes]) -> Handler:
    """Every answer a 200 in ``Transfer-Encoding: chunked``."""
    encoded = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in body_chunks) + b"0\r\n\r\n"
    return answering(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + encoded)


def sized(body: bytes, *, status: int = 200, extra: bytes = b"") -> Handler:
    """Every answer ``status`` with ``body`` (Content-Length), kept alive."""
    head = b"HTTP/1.1 %d X\r\nContent-Length: %d\r\n%s\r\n" % (status, len(body), extra)
    return answering(head + body)


def connection_close(body: bytes) -> Handler:
    """One answer per connection, saying ``Connection: close``, then the close."""
    head = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: %d\r\n\r\n" % len(body)
    return answering(head + body, close_after=True)


def silently_closing(body: bytes) -> Handler:
    """One answer per connection that promises keep-alive, then the server closes it anyway."""
    head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body)
    return answering(head + body, close_after=True)


def http10_until_close(body: bytes) -> Handler:
    """HTTP/1.0 with no length: the body ends where the server closes the connection."""
    return answering(b"HTTP/1.0 200 OK\r\n\r\n" + body, close_after=True)


def with_interim(body: bytes) -> Handler:
    """A 100 Continue and a 103 Early Hints before each 200."""
    final = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    return answering(
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" + final
    )


_CHILD = """
import sys, json
from tests.loadkit import scheduled_server as module
from tests.loadkit.scheduled_server import scheduled_server
# Headers and body go out in two writes: without TCP_NODELAY the body waits for the client's
# delayed ACK (40 ms) once a connection has served a few requests, which is the server's delay,
# not the schedule's.
module._Handler.disable_nagle_algorithm = True
kwargs = json.loads(sys.argv[1])
kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in kwargs.items()}
with scheduled_server(**kwargs) as (url, _):
    print(url, flush=True)
    sys.stdin.read()
"""


@contextlib.contextmanager
def scheduled_server_process(**kwargs: object) -> Iterator[str]:
    """``scheduled_server(**kwargs)`` in a child process; yields its URL, stops it at exit."""
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, json.dumps(kwargs)],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert child.stdout is not None
        url = child.stdout.readline().strip()
        assert url.startswith("http://"), url
        yield url
    finally:
        assert child.stdin is not None
        child.stdin.close()
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()

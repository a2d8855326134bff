"""A loopback HTTP server whose delays are scheduled exactly: it freezes for a known window.

Every request that arrives during ``[freeze_from_s, freeze_to_s)`` (seconds after the server's
first request) is held until the window ends; every other one is answered at once (or after
``hold_s``, or, with a latency ``mix``, the n-th request to arrive after ``mix[n % len(mix)]``).
One thread per connection, so held requests do not hold the others up.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class ScheduledServer(ThreadingHTTPServer):
    """The server, with the time of its first request (monotonic) once one came."""

    daemon_threads = True
    first_request: float | None = None
    freeze_from_s = 0.0
    freeze_to_s = 0.0
    hold_s = 0.0
    mix: tuple[float, ...] = ()
    arrivals = itertools.count()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: ScheduledServer

    def do_GET(self) -> None:
        server = self.server
        now = time.monotonic()
        if server.first_request is None:
            server.first_request = now
        since = now - server.first_request
        if server.freeze_from_s <= since < server.freeze_to_s:
            time.sleep(server.first_request + server.freeze_to_s - now)
        elif server.mix:
            time.sleep(server.mix[next(server.arrivals) % len(server.mix)])
        elif server.hold_s:
            time.sleep(server.hold_s)
        body = b"{}"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def scheduled_server(
    *,
    freeze_from_s: float = 0.0,
    freeze_to_s: float = 0.0,
    hold_s: float = 0.0,
    mix: tuple[float, ...] = (),
) -> Iterator[tuple[str, ScheduledServer]]:
    """Serve on a free loopback port until the context exits; yields (base URL, server)."""
    server = ScheduledServer(("127.0.0.1", 0), _Handler)
    server.freeze_from_s, server.freeze_to_s, server.hold_s = freeze_from_s, freeze_to_s, hold_s
    server.mix, server.arrivals = mix, itertools.count()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

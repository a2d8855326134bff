"""A loopback API that fails a known share of its requests, each failure with a known kind.

The n-th request (counting from 1) fails when n is a multiple of ``fail_every``, answering in
the bundled service's error envelope (``{"error": {"kind", "message", "trace_id"}}``) with the
kinds of ``failures`` in turn; every other request is a 200. So the share failing is known
(1 / ``fail_every``), and the errors by kind are too. Each answer waits ``hold_s`` first, so
that users with no wait time of their own make a light load.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DEFAULT_FAILURES: tuple[tuple[int, str], ...] = ((503, "overloaded"), (500, "database_error"))
"""(status, kind) of the failures, in turn."""


class FailingShareServer(ThreadingHTTPServer):
    """The server and its counts."""

    daemon_threads = True
    fail_every = 4
    hold_s = 0.0
    failures: tuple[tuple[int, str], ...] = DEFAULT_FAILURES

    def __init__(self, address: tuple[str, int]) -> None:
        super().__init__(address, _Handler)
        self.arrivals = itertools.count(1)
        self.lock = threading.Lock()
        self.failed = 0


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: without TCP_NODELAY the body waits for the
    # client's delayed ACK (40 ms), a delay of the server's, not of the test's making.
    disable_nagle_algorithm = True
    server: FailingShareServer

    def do_GET(self) -> None:
        server = self.server
        with server.lock:
            n = next(server.arrivals)
            fails = n % server.fail_every == 0
            if fails:
                status, kind = server.failures[server.failed % len(server.failures)]
                server.failed += 1
        if server.hold_s:
            time.sleep(server.hold_s)
        trace_id = uuid.uuid4().hex
        if fails:
            error = {"kind": kind, "message": f"failure {n}", "trace_id": trace_id}
            body = json.dumps({"error": error}).encode()
        else:
            status, body = 200, b"{}"
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Trace-Id", trace_id)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def failing_share_server(
    *,
    fail_every: int = 4,
    failures: tuple[tuple[int, str], ...] = DEFAULT_FAILURES,
    hold_s: float = 0.0,
) -> Iterator[tuple[str, FailingShareServer]]:
    """Serve on a free loopback port until the context exits; yields (base URL, server)."""
    server = FailingShareServer(("127.0.0.1", 0))
    server.fail_every, server.failures, server.hold_s = fail_every, failures, hold_s
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

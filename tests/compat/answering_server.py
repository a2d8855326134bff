"""A loopback HTTP server whose answer depends on the request's path alone.

Two separate runs of one locustfile (plain Locust, then ``loadkit load``) get the same answers,
so their request and failure counts per endpoint are equal exactly. The rule, on the path's
last segment (the query string ignored), so that it holds under any base path (``/api/v1/…``):

- ``fail…`` → 500 with a JSON error body,
- ``missing…`` → 404 with a JSON error body,
- ``invalid…`` → 200 with ``{"ok": false}`` (a body a locustfile's check rejects),
- anything else → 200 with ``{"ok": true}``.

Every answer is JSON and carries the path, so a locustfile can check what it got.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def answer(path: str) -> tuple[int, dict[str, object]]:
    """The status and JSON body the server sends for ``path``."""
    path = path.split("?", 1)[0]
    last = path.rstrip("/").rsplit("/", 1)[-1]
    if last.startswith("fail"):
        return 500, {"error": {"kind": "internal_error", "message": f"{path} always fails"}}
    if last.startswith("missing"):
        return 404, {"error": {"kind": "not_found", "message": f"{path} does not exist"}}
    return 200, {"ok": not last.startswith("invalid"), "path": path}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as a real API
    # Head and body go out in two writes: with Nagle on, the body would wait for the client's
    # delayed ACK (40 ms a request).
    disable_nagle_algorithm = True

    def _respond(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        status, body = answer(self.path)
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _respond

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the tests read the tools' counts, not the server's log."""


@contextlib.contextmanager
def answering_server() -> Iterator[str]:
    """Serve on a free loopback port on a thread; yields the base URL, stops on exit."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

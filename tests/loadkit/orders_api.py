"""A loopback API that looks nothing like the bundled service, for smoke flows and the target
profile: other routes, a token under another key (``data.jwt``, sent as ``Token ...``), RFC 7807
problem+json errors, the request id echoed in ``X-Request-Id``.

Routes: ``GET /status``; ``POST /v2/sessions`` (form ``client_id``, ``client_secret``: the
secret this server was started with); ``POST /v2/orders`` (JSON ``sku``, ``qty``);
``GET /v2/orders/<number>``; ``GET /v2/orders?sku=`` (a search); ``GET /v2/echo-key`` (the
``X-Api-Key`` it got, in the body: how a secret could leak into a message). A threaded
``http.server`` started and stopped by the test's own handle.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

PROBLEM_BASE = "https://errors.orders.test/"


class _OrdersState:
    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.tokens: set[str] = set()
        self.orders: dict[str, dict[str, Any]] = {}
        self.lock = threading.Lock()
        self.trace_headers: list[tuple[str | None, str | None]] = []
        """Each request's ``traceparent`` and ``X-Request-Id``, as received."""


def _handler(state: _OrdersState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(
            self, status: int, document: object, content_type: str, *extra: tuple[str, str]
        ) -> None:
            with state.lock:
                state.trace_headers.append(
                    (self.headers.get("traceparent"), self.headers.get("X-Request-Id"))
                )
            body = json.dumps(document).encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            request_id = self.headers.get("X-Request-Id")
            if request_id:
                self.send_header("X-Request-Id", request_id)
            for name, value in extra:
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def _ok(self, status: int, document: object) -> None:
            self._send(status, document, "application/json")

        def _problem(self, status: int, slug: str, title: str) -> None:
            document = {"type": PROBLEM_BASE + slug, "title": title, "status": status}
            # The kind in a header too, as some gateways send it (X-Error-Code).
            self._send(status, document, "application/problem+json", ("X-Error-Code", f"{slug}-h"))

        def _body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _signed_in(self) -> bool:
            scheme, _, token = (self.headers.get("Authorization") or "").partition(" ")
            if scheme == "Token" and token in state.tokens:
                return True
            self._problem(401, "unauthenticated", "Sign in first")
            return False

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if url.path == "/status":
                self._ok(200, {"ok": True, "build": "4.2.0"})
            elif url.path == "/v2/echo-key":
                self._ok(200, {"key_used": self.headers.get("X-Api-Key")})
            elif url.path == "/v2/orders" and self._signed_in():
                sku = parse_qs(url.query).get("sku", [""])[0]
                with state.lock:
                    found = [o for o in state.orders.values() if o["sku"] == sku]
                self._ok(200, {"total": len(found), "orders": found})
            elif url.path.startswith("/v2/orders/") and self._signed_in():
                with state.lock:
                    order = state.orders.get(url.path.rsplit("/", 1)[1])
                if order is None:
                    self._problem(404, "order-not-found", "No such order")
                else:
                    self._ok(200, {"order": order})
            elif not url.path.startswith("/v2/orders"):
                self._problem(404, "no-route", "No such route")

        def do_POST(self) -> None:
            body = self._body()
            if self.path == "/v2/sessions":
                form = parse_qs(body.decode())
                if form.get("client_secret", [""])[0] != state.secret:
                    self._problem(401, "bad-client-secret", "Wrong client secret")
                    return
                token = f"jwt-{len(state.tokens) + 1:04d}"
                state.tokens.add(token)
                self._ok(200, {"data": {"jwt": token}, "expires_in": 3600})
            elif self.path == "/v2/orders" and self._signed_in():
                try:
                    request = json.loads(body)
                    sku, qty = str(request["sku"]), int(request["qty"])
                except (ValueError, KeyError, TypeError):
                    self._problem(422, "invalid-order", "An order needs sku and qty")
                    return
                with state.lock:
                    number = f"ORD-{len(state.orders) + 1}"
                    order = {"number": number, "sku": sku, "qty": qty, "lines": [{"sku": sku}]}
                    state.orders[number] = order
                self._ok(201, {"order": order})
            elif self.path != "/v2/orders":
                self._problem(404, "no-route", "No such route")

    return Handler


@contextlib.contextmanager
def orders_api(
    *, secret: str, seen: list[tuple[str | None, str | None]] | None = None
) -> Iterator[str]:
    """Serve the orders API on a free loopback port; yields its base URL, stops on exit.
    ``seen`` gets each request's ``traceparent`` and ``X-Request-Id`` headers."""
    state = _OrdersState(secret)
    if seen is not None:
        state.trace_headers = seen
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

"""A ``RequestSpec`` as the bytes sent on the wire, encoded once; only the trace header is new
for every request (DESIGN.md, "Trace header": a fresh W3C ``traceparent`` each time).

HTTP/1.1, keep-alive, never pipelined. The head is split around the ``traceparent`` line so that
a request costs one random number, one format and one join.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from loadkit.engines.http_request import RequestSpec
from loadkit.engines.target import parse_target
from loadkit.exceptions import ConfigError

USER_AGENT = "loadkit-native"
TRACE_HEADER = "traceparent"
_HOP_BY_HOP = frozenset({"host", "content-length", "connection", "transfer-encoding", TRACE_HEADER})
"""Headers the engine writes itself: a user's own would contradict them (framing, keep-alive)."""


@dataclass(frozen=True)
class EncodedRequest:
    """One request, ready to send: where to connect and the bytes around the trace header."""

    scheme: str
    host: str
    port: int
    server_hostname: str
    """The name TLS checks the certificate against (the URL's host)."""
    method: str
    """Upper case, as sent."""
    endpoint: str
    """What it is recorded under, as the Locust path records it: the method, then
    ``RequestSpec.name`` or the path (``GET /items``), unless the name already starts with the
    method."""
    head: bytes
    """Request line and headers up to the ``traceparent`` line."""
    tail: bytes
    """The end of the head and the body."""

    def with_trace(self) -> tuple[bytes, str]:
        """The request's bytes with a fresh ``traceparent``, and its trace id (32 hex)."""
        # One 192-bit draw: 128 bits of trace id, 64 of parent (span) id. random, not secrets:
        # ids must be unique, not unpredictable, and this runs once per request.
        ids = f"{random.getrandbits(192):048x}"
        trace_id = ids[:32]
        return b"".join((self.head, f"00-{trace_id}-{ids[32:]}-01".encode(), self.tail)), trace_id


def encode_request(spec: RequestSpec) -> EncodedRequest:
    """Encode ``spec`` once (a ``ConfigError`` naming the bad URL, method or header)."""
    target = parse_target(spec.url, option="URL")
    method = spec.method.upper()
    if not method.isascii() or not method.isalpha():
        raise ConfigError(f"--method {spec.method!r}: not an HTTP method (e.g. GET, POST)")
    lines = [f"{method} {target.path} HTTP/1.1", f"Host: {target.netloc}"]
    has_agent = False
    for name, value in spec.headers:
        if not name or any(c in name for c in " \t\r\n:") or any(c in value for c in "\r\n"):
            raise ConfigError(f"--header {name!r}: not a valid header name and value")
        if name.lower() in _HOP_BY_HOP:
            continue
        has_agent = has_agent or name.lower() == "user-agent"
        lines.append(f"{name}: {value}")
    if not has_agent:
        lines.append(f"User-Agent: {USER_AGENT}")
    if spec.body or method in {"POST", "PUT", "PATCH"}:
        lines.append(f"Content-Length: {len(spec.body)}")
    head = ("\r\n".join(lines) + f"\r\n{TRACE_HEADER}: ").encode("latin-1")
    return EncodedRequest(
        scheme=target.scheme,
        host=target.hostname,
        port=target.port,
        server_hostname=target.hostname,
        method=method,
        endpoint=endpoint_name(method, spec.name or target.path),
        head=head,
        tail=b"\r\n\r\n" + spec.body,
    )


def endpoint_name(method: str, name: str) -> str:
    """``METHOD name``, as the Locust plugin names a request of ``request_type`` and ``name``."""
    return name if name.startswith(f"{method} ") else f"{method} {name}"

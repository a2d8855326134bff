"""A ``RequestSpec`` as the bytes sent on the wire, encoded once; only the trace header is new
for every request (DESIGN.md, "Trace header": a fresh W3C ``traceparent`` each time).

HTTP/1.1, keep-alive, never pipelined. The head is split around the ids of the ``traceparent``
line, and the ids come from a block of random hex drawn for thousands of requests at once, so
that a request costs two slices and one join (``TracedPayloads``).
"""

from __future__ import annotations

import base64
import binascii
import random
from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit

from loadkit.engines.http_request import RequestSpec
from loadkit.engines.target import parse_target
from loadkit.engines.url_request import check_header, check_method
from loadkit.exceptions import ConfigError

USER_AGENT = "loadkit-native"
TRACE_HEADER = "traceparent"
TRACE_BLOCK = 4096
"""Requests whose trace and parent ids are drawn at once (24 random bytes each)."""
_HOP_BY_HOP = frozenset({"content-length", "connection", "transfer-encoding"})
"""Headers the engine writes itself (with the target's trace header): a user's own would
contradict them (framing, keep-alive, the trace header), so they are refused."""
PATH_SAFE = "!#$%&'()*+,/:;=?@[]~"
"""What a path and query keep as they are (requests' ``requote_uri``): the rest, non-ASCII above
all, is percent-encoded as UTF-8."""


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
    """Request line and headers up to the trace header's ids (``traceparent: 00-``)."""
    tail: bytes
    """From after the ids (``-01``) to the end of the head, and the body."""
    w3c: bool = True
    """The trace header is W3C ``traceparent`` (trace id, ``-``, parent id); else another
    header (the target's ``trace_header``) that carries the trace id alone."""

    def trace_id(self, payload: bytes) -> str:
        """The trace id (32 hex) in ``payload``, a request's bytes from ``TracedPayloads``."""
        start = len(self.head)
        return payload[start : start + 32].decode("ascii")


class TracedPayloads:
    """A request's bytes, each time with a fresh ``traceparent``: a 128-bit trace id and a
    64-bit parent id.

    The ids come from ``random.Random`` seeded from ``os.urandom`` for each instance (so for
    each process's pool), not from ``secrets``: trace ids must be unique, not unpredictable,
    and 128 random bits make a collision among a run's requests as unlikely as W3C intends.
    They are drawn ``TRACE_BLOCK`` requests at a time, as one hex block: a request then costs
    two slices of it and one join (0.3 µs here, against 0.7 to format fresh ids each time).
    """

    __slots__ = ("_block", "_end", "_head", "_next", "_random", "_tail", "_w3c")

    def __init__(self, request: EncodedRequest) -> None:
        self._head = request.head
        self._tail = request.tail
        self._w3c = request.w3c
        self._random = random.Random()  # seeded from os.urandom
        self._block = b""
        self._next = 0
        self._end = 0

    def next(self) -> bytes:
        """The request's bytes with ids never handed out before."""
        i = self._next
        if i >= self._end:
            self._block = _id_block(self._random)
            self._end = len(self._block)
            i = 0
        self._next = i + 48
        block = self._block
        if not self._w3c:
            return b"".join((self._head, block[i : i + 32], self._tail))
        return b"".join((self._head, block[i : i + 32], b"-", block[i + 32 : i + 48], self._tail))


class TraceIds:
    """Fresh ids for requests whose bytes are made one by one (a declarative scenario's): 48 hex
    digits each (a 128-bit trace id, then a 64-bit parent id), drawn as ``TracedPayloads``
    draws them, a block at a time."""

    __slots__ = ("_block", "_end", "_next", "_random")

    def __init__(self) -> None:
        self._random = random.Random()  # seeded from os.urandom
        self._block = b""
        self._next = 0
        self._end = 0

    def next(self) -> bytes:
        """48 hex digits never handed out before."""
        i = self._next
        if i >= self._end:
            self._block = _id_block(self._random)
            self._end = len(self._block)
            i = 0
        self._next = i + 48
        return self._block[i : i + 48]


def _id_block(rng: random.Random) -> bytes:
    """``TRACE_BLOCK`` requests' ids as one block of hex: 48 digits each (a 128-bit trace id,
    then a 64-bit parent id)."""
    return binascii.hexlify(rng.getrandbits(TRACE_BLOCK * 192).to_bytes(TRACE_BLOCK * 24, "little"))


def encode_request(spec: RequestSpec) -> EncodedRequest:
    """Encode ``spec`` once (a ``ConfigError`` naming the bad URL, method or header)."""
    target = parse_target(spec.url, option="URL")
    method = check_method(spec.method)
    lines = [f"{method} {quote(target.path, safe=PATH_SAFE)} HTTP/1.1"]
    given = {name.lower() for name, _ in spec.headers}
    trace_header = spec.target.trace_header
    w3c = trace_header.lower() == TRACE_HEADER
    if "host" not in given:  # the user's own Host is sent, as on the Locust path
        lines.append(f"Host: {host_header(target.hostname, target.port, target.scheme)}")
    url = urlsplit(spec.url.strip())
    if url.username is not None and "authorization" not in given:
        # Credentials in the URL are Basic auth (as requests and geventhttpclient send them),
        # never part of the Host header.
        credentials = f"{unquote(url.username)}:{unquote(url.password or '')}".encode()
        lines.append(f"Authorization: Basic {base64.b64encode(credentials).decode()}")
    for name, value in spec.headers:
        check_header(name, value)
        if name.lower() in _HOP_BY_HOP or name.lower() == trace_header.lower():
            raise ConfigError(
                f"--header {name!r}: the native engine writes this header itself (framing, "
                "keep-alive, the trace header); leave it out"
            )
        if not value.isascii() and not _is_latin1(value):
            raise ConfigError(
                f"--header {name!r}: its value must be Latin-1 text (HTTP/1.1 headers are "
                "bytes); percent-encode or base64 anything else"
            )
        lines.append(f"{name}: {value}")
    if "user-agent" not in given:
        lines.append(f"User-Agent: {USER_AGENT}")
    if spec.body or method in {"POST", "PUT", "PATCH"}:
        lines.append(f"Content-Length: {len(spec.body)}")
    head = ("\r\n".join(lines) + f"\r\n{trace_header}: {'00-' if w3c else ''}").encode("latin-1")
    return EncodedRequest(
        scheme=target.scheme,
        host=target.hostname,
        port=target.port,
        server_hostname=target.hostname,
        method=method,
        endpoint=endpoint_name(method, spec.name or target.path),
        head=head,
        tail=(b"-01\r\n\r\n" if w3c else b"\r\n\r\n") + spec.body,
        w3c=w3c,
    )


def host_header(hostname: str, port: int, scheme: str) -> str:
    """The Host header of a URL's host and port: IDNA (ASCII) names, bracketed IPv6, no
    default port."""
    host = f"[{hostname}]" if ":" in hostname else hostname.encode("idna").decode("ascii")
    return host if port == (443 if scheme == "https" else 80) else f"{host}:{port}"


def _is_latin1(text: str) -> bool:
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


def endpoint_name(method: str, name: str) -> str:
    """``METHOD name``, as the Locust plugin names a request of ``request_type`` and ``name``."""
    return name if name.startswith(f"{method} ") else f"{method} {name}"

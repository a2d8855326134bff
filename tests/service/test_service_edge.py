"""The server's edge, on a real ``python -m service`` process over raw sockets: the header size
limit, the header-read timeout and malformed requests, each answered with the error envelope."""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from loadkit.run.bundled_service import BundledService


def connect(service: BundledService) -> socket.socket:
    parts = urlsplit(service.url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=10)
    return sock


def read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    chunks = []
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def parse(raw: bytes) -> tuple[int, dict[str, str], dict[str, dict[str, str]]]:
    """Status, headers (lower-case names) and JSON body of one HTTP/1.1 answer."""
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, json.loads(body)


def assert_envelope(raw: bytes, status: int, kind: str) -> dict[str, str]:
    code, headers, body = parse(raw)
    assert code == status, raw[:300]
    assert headers["content-type"] == "application/json"
    assert headers["connection"] == "close"
    error = body["error"]
    assert set(error) == {"kind", "message", "trace_id"} and error["kind"] == kind, error
    assert error["trace_id"] == headers["x-trace-id"]
    return headers


@pytest.fixture(scope="module")
def edge_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BundledService]:
    """The service with a 4 KiB header limit and a 1 s header-read timeout, one for the module:
    each test ends its connections and changes nothing the service holds (a start and stop
    cost about two seconds each time)."""
    env = {
        "ENGINES_BCRYPT_ROUNDS": "4",
        "ENGINES_MAX_HEADER_BYTES": "4096",
        "ENGINES_HEADER_TIMEOUT_S": "1",
    }
    with BundledService(workdir=tmp_path_factory.mktemp("edge-service"), env=env) as service:
        yield service


def test_a_header_over_the_limit_is_431_in_the_envelope_and_never_read_whole(
    edge_service: BundledService,
) -> None:
    with connect(edge_service) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ")
        # Up to 20 MB of header value, looking for the answer after each 64 KiB: the server
        # must answer long before it has read it all.
        sent = 0
        answer = b""
        while sent < 20_000_000 and not answer:
            try:
                sock.sendall(b"a" * 65536)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += 65536
            with contextlib.suppress(BlockingIOError):
                answer = sock.recv(65536, socket.MSG_DONTWAIT)
        assert sent < 1_000_000, sent
        raw = answer + read_all(sock)
    assert_envelope(raw, 431, "headers_too_large")
    assert httpx.get(f"{edge_service.url}/health").status_code == 200


def test_headers_under_the_limit_are_served(edge_service: BundledService) -> None:
    response = httpx.get(f"{edge_service.url}/health", headers={"X-Fill": "b" * 3000})
    assert response.status_code == 200


def test_trickled_headers_are_408_in_the_envelope_after_the_header_timeout(
    edge_service: BundledService,
) -> None:
    with connect(edge_service) as sock:
        started = time.monotonic()
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        # A slowloris client: one header byte every 0.2 s, never the blank line.
        sock.settimeout(0.2)
        raw = b""
        while time.monotonic() - started < 8:
            try:
                sock.sendall(b"X")
                raw = sock.recv(65536)
                if raw:
                    break
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                break
        sock.settimeout(5)
        raw += read_all(sock)
        held_for = time.monotonic() - started
    assert held_for < 5, held_for  # the 1 s limit, not the 8 s the client would have taken
    assert_envelope(raw, 408, "header_timeout")


def test_a_silent_connection_is_closed_after_the_header_timeout(
    edge_service: BundledService,
) -> None:
    with connect(edge_service) as sock:
        started = time.monotonic()
        assert read_all(sock) == b""  # closed without an answer: there was no request
        assert time.monotonic() - started < 5


MALFORMED = {
    "two-content-lengths": b"GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n"
    b"Content-Length: 2\r\n\r\nab",
    "space-in-header-name": b"GET /health HTTP/1.1\r\nHost: x\r\nBad Header Name: 1\r\n\r\n",
    "tls-hello": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not http at all\r\n\r\n",
    "bad-chunk-size": b"GET /health HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"zz\r\n",
}


def test_a_malformed_request_is_400_in_the_envelope(edge_service: BundledService) -> None:
    # The limits change nothing for these; the module's other tests send no 400.
    service = edge_service
    for name, request_bytes in MALFORMED.items():
        with connect(service) as sock:
            sock.sendall(request_bytes)
            raw = read_all(sock)
        assert raw, name
        assert_envelope(raw, 400, "validation_error")
    lines = [json.loads(x) for x in service.log_path.read_text().splitlines() if x[:1] == "{"]
    refused = [x for x in lines if x["event"] == "request" and x["status_code"] == 400]
    assert len(refused) == len(MALFORMED)
    assert {(x["error_kind"], x["endpoint"], x["level"]) for x in refused} == {
        ("validation_error", "unmatched", "warning")
    }


def test_a_keep_alive_connection_serves_several_requests_under_the_limits(
    edge_service: BundledService,
) -> None:
    with httpx.Client(base_url=edge_service.url) as client:
        for _ in range(3):
            assert client.get("/health").status_code == 200
            time.sleep(0.6)  # each pause under the 1 s header timeout, together over it

"""A loopback HTTP(S) server that answers 200 to anything and records what it was sent.

Its TLS certificate is self-signed for 127.0.0.1, made by the test (the ``openssl`` command): a
client that verifies against the system's CAs refuses it, one given ``ca_cert`` accepts it.
Runs on a thread; stopped by its own context.
"""

from __future__ import annotations

import contextlib
import ssl
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


@dataclass
class Seen:
    """What the server was sent: (method, path, headers lower-cased, body), in order."""

    requests: list[tuple[str, str, dict[str, str], bytes]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass(frozen=True)
class TlsServer:
    """The server's base URL, its certificate (PEM, the CA to trust) and what it saw."""

    url: str
    ca_cert: Path
    seen: Seen


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost, and its key, as PEM files in ``folder``."""
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key_path), "-out", str(cert_path), "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    return cert_path, key_path


@contextlib.contextmanager
def tls_server(folder: Path, *, tls: bool = True) -> Iterator[TlsServer]:
    """Serve on a free loopback port (https with a fresh self-signed certificate, or http)."""
    seen = Seen()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            with seen.lock:
                seen.requests.append((self.command, self.path, headers, body))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        do_GET = do_POST = do_PUT = _answer

        def log_message(self, format: str, *args: object) -> None:
            pass  # quiet

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    cert_path, key_path = self_signed(folder)
    if tls:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_path, key_path)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1})
    thread.daemon = True
    thread.start()
    scheme = "https" if tls else "http"
    try:
        yield TlsServer(f"{scheme}://127.0.0.1:{server.server_port}", cert_path, seen)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

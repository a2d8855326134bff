"""The bundled service over HTTP/2: nginx with an ``http2`` listener in front of uvicorn.

The spike (docs/http2.md) chose it: it is what a team deploys in front of a Python API, and the
only candidate measured that resets a stream with INTERNAL_ERROR when its upstream's response
breaks off after its headers (hypercorn never does). A handler stuck past ``upstream_timeout_s``
before its headers gets nginx's 504 instead. h2c (HTTP/2 by prior knowledge) by default; TLS with
ALPN h2 when given a certificate and its key. nginx (Debian's ``nginx-light`` has ``http_v2``)
runs as a child process in ``workdir``, stopped by its own handle.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from loadkit.defaults import LOOPBACK
from loadkit.exceptions import ConfigError, ServiceStartError
from loadkit.files import write_file
from loadkit.run.bundled_service import BundledService, free_port

DEFAULT_UPSTREAM_TIMEOUT_S = 60.0
"""nginx's own default ``proxy_read_timeout``: how long the edge waits on a silent upstream."""
START_TIMEOUT_S = 10.0

_CONF = """\
{user}worker_processes 1;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/edge-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    upstream service {{ server {upstream}; keepalive 64; }}
    server {{
        listen {listen} http2{ssl};
{tls}        keepalive_requests 100000;
        location / {{
            proxy_pass http://service;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_read_timeout {timeout}ms;
        }}
    }}
}}
"""


@dataclass(frozen=True, kw_only=True)
class EdgeTls:
    """A certificate (PEM, chain first) and its private key: the edge serves https with ALPN h2."""

    certfile: Path
    keyfile: Path

    def __post_init__(self) -> None:
        # nginx reads relative paths from its own prefix (a work folder), not from where the
        # command was given: absolute, as the user meant them.
        object.__setattr__(self, "certfile", Path(self.certfile).resolve())
        object.__setattr__(self, "keyfile", Path(self.keyfile).resolve())


def nginx_binary() -> str:
    """nginx's path; a ConfigError saying how to install it when there is none."""
    found = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.path.exists(p)), None
    )
    if found is None:
        raise ConfigError(
            "--http2 serves the bundled service through nginx, which is not installed: "
            "install it (Debian/Ubuntu: apt-get install nginx-light), or drop --http2"
        )
    return found


def edge_config(
    *,
    prefix: Path,
    listen: str,
    upstream: str,
    upstream_timeout_s: float,
    tls: EdgeTls | None,
    as_root: bool,
) -> str:
    """nginx's configuration for the edge (pure: tested on its text)."""
    tls_lines = (
        f'        ssl_certificate "{tls.certfile}";\n        ssl_certificate_key "{tls.keyfile}";\n'
        if tls is not None
        else ""
    )
    return _CONF.format(
        # Run as root, nginx's workers would otherwise run as nobody, who cannot write the
        # temp folders of a private work folder.
        user="user root;\n" if as_root else "",
        prefix=prefix,
        listen=listen,
        ssl=" ssl" if tls is not None else "",
        tls=tls_lines,
        upstream=upstream,
        timeout=f"{max(1, round(upstream_timeout_s * 1000))}",  # nginx takes whole ms
    )


class Http2Edge:
    """nginx serving HTTP/2 on ``host:port`` in front of ``upstream`` (``host:port``)."""

    def __init__(
        self,
        *,
        workdir: Path,
        upstream: str,
        host: str = LOOPBACK,
        port: int | None = None,
        upstream_timeout_s: float = DEFAULT_UPSTREAM_TIMEOUT_S,
        tls: EdgeTls | None = None,
    ) -> None:
        self.workdir = workdir.resolve()
        self.upstream = upstream
        self.host = host
        self.port = port or free_port(host)
        self.upstream_timeout_s = upstream_timeout_s
        self.tls = tls
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The edge's base URL (``http://`` for h2c, ``https://`` with TLS)."""
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    @property
    def error_log(self) -> Path:
        """nginx's error log (warnings and up): upstream timeouts are logged there."""
        return self.workdir / "edge-error.log"

    def start(self) -> Http2Edge:
        """Start nginx and wait until its port accepts connections."""
        binary = nginx_binary()
        if self.tls is not None:
            for path in (self.tls.certfile, self.tls.keyfile):
                if not path.is_file():
                    raise ConfigError(f"{path}: no such file (--certfile/--keyfile)")
        conf = write_file(
            self.workdir / "edge-nginx.conf",
            edge_config(
                prefix=self.workdir,
                listen=f"{self.host}:{self.port}",
                upstream=self.upstream,
                upstream_timeout_s=self.upstream_timeout_s,
                tls=self.tls,
                as_root=os.geteuid() == 0,
            ).encode(),
        )
        self._process = subprocess.Popen(
            [binary, "-c", str(conf), "-p", str(self.workdir), "-e", str(self.error_log)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,  # its workers in its group: a kill reaches them all
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if self._process.poll() is not None:
                why = (
                    self._process.stderr.read().decode(errors="replace")
                    if self._process.stderr
                    else ""
                )
                raise ServiceStartError(
                    f"nginx (the HTTP/2 edge) exited with code {self._process.returncode}: "
                    f"{why.strip()[-800:]}"
                )
            try:
                socket.create_connection((self.host, self.port), timeout=0.5).close()
                return self
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise ServiceStartError(
                        f"nginx (the HTTP/2 edge) did not listen on {self.host}:{self.port} "
                        f"within {START_TIMEOUT_S:g} s; its log: {self.error_log}"
                    ) from None
                time.sleep(0.05)

    def stop(self) -> None:
        """Stop nginx (SIGTERM: fast shutdown), SIGKILL if it lingers."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)  # nginx's workers too
                process.wait()
        if process.stderr is not None:
            process.stderr.close()

    def __enter__(self) -> Http2Edge:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def serve_over_http2(
    *,
    host: str,
    port: int,
    database_url: str | None,
    tls: EdgeTls | None,
    upstream_timeout_s: float,
    announce: Callable[[str], None],
) -> None:
    """``loadkit serve --http2``: the bundled service on a free loopback port behind the edge on
    ``host:port``, until Ctrl-C or SIGTERM (a KeyboardInterrupt) or the service exits."""
    workdir = Path(tempfile.mkdtemp(prefix="loadkit-serve-http2-"))
    env = {
        "ENGINES_DATABASE_URL": database_url
        or os.environ.get("ENGINES_DATABASE_URL")
        or f"sqlite+aiosqlite:///{Path.cwd() / 'engines.db'}"
    }
    with (
        BundledService(workdir=workdir / "service", env=env) as service,
        Http2Edge(
            workdir=workdir / "edge",
            upstream=f"{service.host}:{service.port}",
            host=host,
            port=port,
            upstream_timeout_s=upstream_timeout_s,
            tls=tls,
        ) as edge,
    ):
        announce(
            f"serving the bundled service over HTTP/2 ({'TLS, ALPN h2' if tls else 'h2c'}) at "
            f"{edge.url}: nginx (proxy_read_timeout {upstream_timeout_s:g} s) in front of "
            f"uvicorn at {service.url}; logs: {service.log_path}, {edge.error_log}"
        )
        while service.process.poll() is None:
            time.sleep(0.5)
        raise ServiceStartError(
            f"the bundled service exited with code {service.process.returncode}; its log: "
            f"{service.log_path}\n{service.log_tail()}"
        )

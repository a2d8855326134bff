"""The bundled service over HTTP/2 (nginx's http2 listener in front of uvicorn,
loadkit/run/http2_edge.py): `accept --http2` passes on it, `serve --http2` serves TLS with ALPN
h2, and a response the upstream breaks off after its headers reaches the client as RST_STREAM
INTERNAL_ERROR, counted by the criterion: the seed's failure, reproduced on the bundled service by
its stall-after-headers fault, fails `accept --http2` on "no HTTP/2 INTERNAL_ERROR"."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from loadkit.run.bundled_service import free_port
from loadkit.run.http2_edge import EdgeTls, Http2Edge, edge_config, nginx_binary
from tests.loadkit.misbehaving_servers import read_request, serve

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists(),
        reason="needs nginx (apt-get install nginx-light)",
    ),
]

ROOT = Path(__file__).resolve().parents[2]
PROJECT = """
[[criteria]]
name = "no HTTP/2 INTERNAL_ERROR"
metric = "load.http2_internal_errors"
op = "=="
threshold = 0

[[criteria]]
metric = "smoke.checks_failed"
op = "=="
threshold = 0

[lock_audit]
paths = ["src"]

[profiles.quick]
scenario = "api"
concurrency = 2
duration_s = 1
"""


def loadkit(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``python -m loadkit ARGS`` (this checkout's code)."""
    return subprocess.run(
        [sys.executable, "-m", "loadkit", *args],
        capture_output=True, text=True, timeout=timeout, check=False, cwd=ROOT,
    )  # fmt: skip


def test_the_edge_config_is_h2c_or_tls_with_the_upstream_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    h2c = edge_config(
        prefix=tmp_path, listen="127.0.0.1:1", upstream="127.0.0.1:2", upstream_timeout_s=1.5,
        tls=None, as_root=False,
    )  # fmt: skip
    assert "listen 127.0.0.1:1 http2;" in h2c and "ssl_certificate" not in h2c
    assert "proxy_read_timeout 1500ms;" in h2c and "server 127.0.0.1:2;" in h2c
    tls = EdgeTls(certfile=tmp_path / "c.pem", keyfile=tmp_path / "k.pem")
    https = edge_config(
        prefix=tmp_path, listen="127.0.0.1:1", upstream="127.0.0.1:2", upstream_timeout_s=60,
        tls=tls, as_root=True,
    )  # fmt: skip
    assert (
        "listen 127.0.0.1:1 http2 ssl;" in https
        and f'ssl_certificate_key "{tls.keyfile}";' in https
    )
    assert https.startswith("user root;")
    # nginx reads relative paths from its own work folder: they are made absolute, as meant.
    monkeypatch.chdir(tmp_path)
    relative = EdgeTls(certfile=Path("c.pem"), keyfile=Path("k.pem"))
    assert relative.certfile == tmp_path.resolve() / "c.pem" and relative.keyfile.is_absolute()


def test_accept_http2_passes_on_the_bundled_service(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "app.py").write_text("def handler() -> int:\n    return 1\n")
    (tmp_path / "acceptance.toml").write_text(PROJECT)
    done = loadkit(
        "accept", "--http2", "--config", str(tmp_path / "acceptance.toml"), "--profile", "quick",
        "--out-dir", str(tmp_path / "r"),
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "over HTTP/2 (h2c)" in done.stdout
    (folder,) = (tmp_path / "r").iterdir()
    smoke = json.loads((folder / "smoke.json").read_text())
    load = json.loads((folder / "load.json").read_text())
    assert smoke["config"]["http2"] is True and load["config"]["http2"] is True
    assert load["totals"]["requests"] > 0 and load["totals"]["errors"] == 0


def cut_after_headers(conn: socket.socket) -> None:
    """An HTTP/1.1 upstream whose response stalls after its headers and one body byte."""
    read_request(conn)
    conn.sendall(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 99\r\n\r\n{"
    )
    time.sleep(5)


def test_a_response_stuck_after_its_headers_is_reset_with_internal_error_by_the_edge(
    tmp_path: Path,
) -> None:
    with (
        serve(cut_after_headers) as upstream,
        Http2Edge(
            workdir=tmp_path / "edge", upstream=upstream.removeprefix("http://"),
            upstream_timeout_s=0.5,
        ) as edge,
    ):  # fmt: skip
        done = loadkit(
            "load", f"{edge.url}/stuck", "--http2", "--concurrency", "2", "--duration", "1",
            "--out", str(tmp_path / "r.json"), "-q",
        )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    results = json.loads((tmp_path / "r.json").read_text())
    [group] = results["errors"]
    assert (group["endpoint"], group["kind"]) == ("GET /stuck", "http2_internal_error")
    assert group["count"] == results["totals"]["requests"] > 0


SEED = """
[[criteria]]
name = "no HTTP/2 INTERNAL_ERROR"
metric = "load.http2_internal_errors"
op = "=="
threshold = 0

[[criteria]]
name = "no reset on login"
metric = "load.http2_internal_errors"
endpoint = "POST /api/auth/login"
op = "=="
threshold = 0

[[criteria]]
metric = "lock_audit.lock_violations"
op = "=="
threshold = 0

[lock_audit]
paths = ["src"]

[profiles.seed]
scenario = "login"
concurrency = 3
duration_s = 2
"""


def test_accept_http2_fails_on_internal_error_when_login_stalls_after_its_headers(
    tmp_path: Path,
) -> None:
    # The seed's failure: login responses that froze after their headers went out, behind an
    # edge that gives up on them sooner: nginx resets those streams with INTERNAL_ERROR.
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "app.py").write_text("def handler() -> int:\n    return 1\n")
    (tmp_path / "acceptance.toml").write_text(SEED)
    env = [
        "ENGINES_BCRYPT_ROUNDS=4", "ENGINES_FAULT_STALL_AFTER_HEADERS_MS=1000",
        "ENGINES_FAULT_STALL_AFTER_HEADERS_SHARE=0.2", "ENGINES_FAULT_PATHS=/api/auth/login",
    ]  # fmt: skip
    done = loadkit(
        "accept", "--http2", "--edge-timeout", "0.4", "--config", str(tmp_path / "acceptance.toml"),
        "--profile", "seed", "--out-dir", str(tmp_path / "r"),
        *(arg for setting in env for arg in ("--service-env", setting)),
    )  # fmt: skip
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-2000:]
    (folder,) = (tmp_path / "r").iterdir()
    load = json.loads((folder / "load.json").read_text())
    resets = [g for g in load["errors"] if g["kind"] == "http2_internal_error"]
    assert {g["endpoint"] for g in resets} == {"POST /api/auth/login"}
    count = sum(g["count"] for g in resets)
    assert count > 0
    verdict = json.loads((folder / "verdict.json").read_text())
    failed = {c["name"]: c for c in verdict["criteria"] if c["status"] == "failed"}
    assert failed["no HTTP/2 INTERNAL_ERROR"]["measured"] == count
    assert failed["no reset on login"]["measured"] == count
    (table,) = failed["no HTTP/2 INTERNAL_ERROR"]["evidence"]
    assert table["rows"][0][:3] == ["POST /api/auth/login", "http2_internal_error", count]
    assert f"no HTTP/2 INTERNAL_ERROR: {count}, off by {count}" in done.stdout
    assert "POST /api/auth/login  http2_internal_error" in done.stdout


def test_serve_http2_serves_tls_with_alpn_h2_until_sigterm(tmp_path: Path) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("needs openssl to make a throwaway certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
         "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    port = free_port()
    env = dict(os.environ, ENGINES_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'e.db'}")
    process = subprocess.Popen(
        [sys.executable, "-m", "loadkit", "serve", "--http2", "--port", str(port),
         "--certfile", str(cert), "--keyfile", str(key)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path, env=env,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert f"https://127.0.0.1:{port}" in line and "ALPN h2" in line, line
        smoke = loadkit(
            "smoke", "--http2", "--host", f"https://127.0.0.1:{port}", "--ca-cert", str(cert)
        )
        assert smoke.returncode == 0, smoke.stdout[-2000:] + smoke.stderr[-1000:]
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    with pytest.raises(OSError):  # nginx stopped with it
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    assert nginx_binary()

"""The same failures through both engines: the Locust path (its url scenario with the plugin)
and the native engine, against the same loopback server, give the same error kinds on the same
endpoint, and results files that validate alike; a redirect is a response, never followed."""

from __future__ import annotations

import itertools
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from loadkit.config import LoadProfile
from loadkit.engines.http_request import RequestSpec
from loadkit.engines.locust.launch import PLUGIN_PATH
from loadkit.measure.results import LoadResults, read_results
from loadkit.run.native import run_native_load
from tests.loadkit.misbehaving_servers import read_request, serve

REPO = Path(__file__).resolve().parents[2]
URL_SCENARIO = REPO / "scenarios" / "url.py"
ENVELOPE = b'{"error": {"kind": "db_pool_exhausted", "message": "pool", "trace_id": "t-9"}}'


def _mixed_failures(seen: list[bytes]) -> object:
    """Per arrival, in turn: 200, the service's 503 envelope, a 404 without a kind, a 302 to
    /missing (which would be one more 404); notes each request in ``seen``."""
    arrivals = itertools.count()
    lock = threading.Lock()

    def handler(conn: socket.socket) -> None:
        while request := read_request(conn):
            with lock:
                seen.append(request)
            turn = next(arrivals) % 4
            if request.startswith(b"GET /missing"):
                conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
            elif turn == 0:
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
            elif turn == 1:
                head = b"HTTP/1.1 503 X\r\nContent-Length: %d\r\n\r\n" % len(ENVELOPE)
                conn.sendall(head + ENVELOPE)
            elif turn == 2:
                conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\n\r\nnope")
            else:
                conn.sendall(
                    b"HTTP/1.1 302 Found\r\nLocation: /missing\r\nContent-Length: 0\r\n\r\n"
                )

    return handler


def locust_command(url: str, out: Path) -> list[str]:
    """Plain Locust with the plugin: the url scenario on ``url``/orders, 2 users, 1 s."""
    return [
        sys.executable, "-m", "locust", "-f", f"{URL_SCENARIO},{PLUGIN_PATH}",
        "--headless", "--host", url, "--url-path", "/orders", "--users", "2",
        "--only-summary", "--loadkit-duration", "1", "--loadkit-out", str(out),
    ]  # fmt: skip


def run_locust(url: str, tmp_path: Path) -> LoadResults:
    out = tmp_path / f"locust-{len(list(tmp_path.iterdir()))}.json"
    done = subprocess.run(
        locust_command(url, out), cwd=tmp_path, capture_output=True, text=True, timeout=90
    )
    assert out.exists(), done.stderr[-3000:]
    results = read_results(out)
    assert isinstance(results, LoadResults)
    return results


def loadkit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "loadkit", *args], capture_output=True, text=True, timeout=60
    )


def run_native(url: str, tmp_path: Path) -> LoadResults:
    return run_native_load(
        request=RequestSpec(url=f"{url}/orders"),
        profile=LoadProfile(concurrency=2, duration_s=1.0),
        out=tmp_path / "native.json",
        quiet=True,
    )


@pytest.mark.slow
def test_the_same_failures_have_the_same_kinds_and_a_redirect_is_never_followed_by_either_engine(
    tmp_path: Path,
) -> None:
    # One run per engine for both checks (each run costs a Locust start): the redirects were
    # a test of their own, whose every assertion is here.
    seen: list[bytes] = []
    with serve(_mixed_failures(seen)) as url:  # type: ignore[arg-type]
        locust = run_locust(url, tmp_path)
        native = run_native(url, tmp_path)
    groups = {engine: {(g.endpoint, g.kind) for g in r.errors} for engine, r in
              (("locust", locust), ("native", native))}  # fmt: skip
    assert (
        groups["native"]
        == groups["locust"]
        == {
            ("GET /orders", "db_pool_exhausted"),
            ("GET /orders", "unexpected_status"),
        }
    )
    for results in (locust, native):
        by_kind = {g.kind: g for g in results.errors}
        assert by_kind["db_pool_exhausted"].example_trace_id == "t-9"
        assert by_kind["db_pool_exhausted"].status_codes.keys() == {"503"}
        # The 302 is recorded as it came: neither an unexpected status nor an error at all.
        assert by_kind["unexpected_status"].status_codes.keys() == {"404"}
        # Two of every four requests fail (the 503 and the 404), whichever engine sent them.
        assert results.totals.error_rate == pytest.approx(2 / 4, abs=0.03)
    # A redirect is never followed...
    assert not any(request.startswith(b"GET /missing") for request in seen)
    # ...and the same work is asked of the target: nothing compressed, whichever engine asks.
    assert not any(b"gzip" in request.lower() for request in seen)
    assert native.config["engine"] == "native"
    # Gate and compare read either file the same way: both fail the error-rate criterion (not
    # a usage error, not an invalid run), and the two compare.
    files = {"locust": tmp_path / "locust-0.json", "native": tmp_path / "native.json"}
    for path in files.values():
        gate = loadkit("gate", str(path), "--config", str(REPO / "acceptance.toml"))
        assert gate.returncode == 1, gate.stdout + gate.stderr
        assert "error" in gate.stdout.lower()
    compared = loadkit("compare", str(files["locust"]), str(files["native"]))
    assert compared.returncode == 0, compared.stdout + compared.stderr

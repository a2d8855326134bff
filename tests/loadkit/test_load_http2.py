"""`loadkit load --http2` against loopback HTTP/2 servers of our own that reset a known share of
streams (tests/loadkit/http2_servers.py): every reset and GOAWAY is counted as its kind, on its
endpoint, merged exactly across processes; the gate's default criterion fails naming it; the
bundled scenarios switch to HTTP/2 with the flag; an HTTP/1.1-only locustfile is refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from loadkit.run.bundled_service import free_port
from tests.loadkit.http2_servers import h2_by_path
from tests.loadkit.misbehaving_servers import serve

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
LOCUSTFILE = Path(__file__).resolve().parent / "http2_locustfile.py"
EXPECTED = {
    "GET /reset/2": "http2_internal_error",
    "GET /cut/2": "http2_internal_error",
    "GET /goaway/2": "http2_internal_error",
    "GET /reset/8": "http2_stream_reset",
    "GET /reset/7": "http2_refused_stream",
    "GET /goaway/0": "http2_goaway",
}
"""Each failing endpoint of the locustfile and the one kind all its requests must get."""


def loadkit(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """``python -m loadkit ARGS`` (this checkout's code), the locustfile's GOAWAY paths on."""
    env = dict(os.environ, H2_TEST_GOAWAY="1")
    return subprocess.run(
        [sys.executable, "-m", "loadkit", *args],
        capture_output=True, text=True, timeout=120, check=False, env=env, cwd=cwd,
    )  # fmt: skip


def load(url: str, out: Path, *extra: str) -> dict[str, Any]:
    """A 1-second `loadkit load --http2` of the sequence locustfile; its results file. (Each
    iteration hits every path, 10 ms apart: a second is dozens of iterations per user.)"""
    done = loadkit(
        "load", "--host", url, "--scenario", str(LOCUSTFILE), "--http2", "--concurrency", "2",
        "--duration", "1", "--out", str(out), "-q", *extra,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    results: dict[str, Any] = json.loads(out.read_text())
    return results


def test_each_reset_and_goaway_is_counted_as_its_kind_on_its_endpoint(tmp_path: Path) -> None:
    # Over two processes: each worker's users classify as one process's would (the same
    # Http2User code), and the shares must still add up exactly once merged. (One process
    # as well cost 4-5 s and proved nothing more.)
    with serve(h2_by_path()) as url:
        results = load(url, tmp_path / "r.json", "--processes", "2")
    assert results["config"]["http2"] is True
    endpoints = {e["name"]: e for e in results["endpoints"]}
    assert endpoints["GET /ok"]["errors"] == 0
    # A graceful GOAWAY naming the request's stream as the last still lets it be answered.
    assert endpoints["GET /drain"]["requests"] > 0 and endpoints["GET /drain"]["errors"] == 0
    groups = {(g["endpoint"], g["kind"]): g["count"] for g in results["errors"]}
    # Every request of a failing endpoint is one error of its kind: exactly the share the
    # server reset, two processes' shares merged.
    assert groups == {(name, kind): endpoints[name]["requests"] for name, kind in EXPECTED.items()}
    assert all(endpoints[name]["requests"] > 0 for name in EXPECTED)
    messages = {g["endpoint"]: g["example_message"] for g in results["errors"]}
    assert "CANCEL (8)" in messages["GET /reset/8"]
    assert "NO_ERROR (0)" in messages["GET /goaway/0"]
    # A reset has no trace id from the server: the one its request was sent with is kept.
    assert all(len(g["example_trace_id"] or "") == 32 for g in results["errors"])
    # The gate's default criterion fails, naming it and where the resets were.
    gate = loadkit("gate", str(tmp_path / "r.json"), "--config", str(ROOT / "acceptance.toml"))
    assert gate.returncode == 1, gate.stdout + gate.stderr
    internal = sum(endpoints[n]["requests"] for n, k in EXPECTED.items() if "internal" in k)
    row = next(x for x in gate.stdout.splitlines() if "(load.http2_internal_errors)" in x)
    assert row.split()[-1] == "FAIL", row
    shown = {str(internal), f"{internal:,}"}
    assert any(f"✗ no HTTP/2 INTERNAL_ERROR: {n}, off by {n}" in gate.stdout for n in shown)
    evidence = gate.stdout.split("✗ no HTTP/2 INTERNAL_ERROR")[1]
    assert {"GET /reset/2", "GET /cut/2", "GET /goaway/2"} <= set(evidence.split("  "))


def test_the_bundled_url_scenario_speaks_http2_with_the_flag(tmp_path: Path) -> None:
    # The server speaks HTTP/2 only: every request succeeding proves the scenario switched.
    # At a paced rate: the url scenario flat out would saturate a busy machine's generator.
    # Few slots: by default 50/s would start 1,500 users (30 s of the rate), each opening its
    # own HTTP/2 connection, a start-up burst a busy machine's timetable lags behind.
    with serve(h2_by_path()) as url:
        done = loadkit(
            "load", f"{url}/ok", "--http2", "--rate", "50", "--max-in-flight", "5",
            "--duration", "1",
            "--out", str(tmp_path / "r.json"), "-q",
        )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    results = json.loads((tmp_path / "r.json").read_text())
    assert results["config"]["engine"] == "locust" and results["config"]["http2"] is True
    assert results["totals"]["requests"] > 0 and results["totals"]["errors"] == 0


def test_a_locustfile_on_fasthttpuser_is_refused_with_http2_saying_how_to_switch(
    tmp_path: Path,
) -> None:
    with serve(h2_by_path()) as url:
        done = loadkit(
            "load", "--host", url, "--scenario", "tests/scenarios/crashing_locustfile.py",
            "--http2", "--duration", "1", "--out", str(tmp_path / "r.json"), "-q",
        )  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    assert "CrashingUser speaks HTTP/1.1 only" in done.stderr
    assert "Http2User" in done.stderr and "FastOrHttp2User" in done.stderr


def test_a_worker_started_without_http2_speaks_it_for_a_master_with_it(tmp_path: Path) -> None:
    # The master's --http2 reaches its workers with the spawn message; the server speaks
    # HTTP/2 only, so a worker left on HTTP/1.1 would fail every request.
    port = str(free_port())
    out = tmp_path / "r.json"
    with serve(h2_by_path()) as url:
        master = subprocess.Popen(
            [sys.executable, "-m", "loadkit", "load", f"{url}/ok", "--http2", "--engine",
             "locust", "--master", "--expect-workers", "1", "--master-port", port,
             "--concurrency", "2", "--duration", "1", "-q", "--out", str(out)],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        worker = subprocess.Popen(
            [sys.executable, "-m", "loadkit", "load", "--worker", "--master-port", port,
             "--scenario", "url", "--engine", "locust"],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            _out, err = master.communicate(timeout=60)
            worker.wait(timeout=30)
        finally:
            for process in (master, worker):
                if process.poll() is None:
                    process.kill()
                    process.wait()
    assert master.returncode == 0, err[-2000:]
    results = json.loads(out.read_text())
    assert results["config"]["http2"] is True and results["config"]["distributed"] is True
    assert results["totals"]["requests"] > 0 and results["totals"]["errors"] == 0

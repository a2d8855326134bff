"""loadkit ui: Locust's web UI with the plugin; each test started from it writes results."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from loadkit.cli import app
from loadkit.measure.results import LoadResults, read_results
from loadkit.run.bundled_service import BundledService, free_port
from tests.loadkit.http2_servers import h2_by_path
from tests.loadkit.misbehaving_servers import serve
from tests.shared_service import module_service

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BundledService]:
    """One bundled service for the module: the UI's users register accounts of their own."""
    yield from module_service(tmp_path_factory)


def wait_for_port(port: int, timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"nothing listens on {port}")


def test_ui_serves_exact_tabs_and_writes_results_per_test(
    service: BundledService, tmp_path: Path
) -> None:
    port = free_port()
    folder = tmp_path / "results"
    command = [
        sys.executable, "-m", "loadkit", "ui", "--host", service.url,
        "--web-port", str(port), "--results-dir", str(folder),
    ]  # fmt: skip
    ui = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_port(port)
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, timeout=10) as client:
            assert "Exact latency (loadkit)" in client.get("/").text
            swarm = {"user_count": "2", "spawn_rate": "2", "host": service.url}
            assert client.post("/swarm", data=swarm).status_code == 200
            # Until the users have logged in: a fixed 2 s sleep fails on a slow start.
            deadline = time.monotonic() + 20
            while True:
                rows = client.get("/stats/requests").json()["extended_stats"]
                latency = next(r["data"] for r in rows if r["key"] == "loadkit_latency")
                if any(r["endpoint"] == "POST /api/auth/login" for r in latency):
                    break
                assert time.monotonic() < deadline, latency
                time.sleep(0.2)
            # "Reset stats" in the UI: loadkit forgets the first part too.
            assert client.post("/stats/reset").status_code == 200
            time.sleep(1.0)
            assert client.post("/stop").status_code == 200
            deadline = time.monotonic() + 10
            while not list(folder.glob("ui-*.json")) and time.monotonic() < deadline:
                time.sleep(0.1)
            # The UI caches /stats/requests for up to ~2 s: ask until it shows the stopped
            # test's final count (what the results file says), or give up and compare anyway.
            written = read_results(next(folder.glob("ui-*.json")))
            assert isinstance(written, LoadResults)
            deadline = time.monotonic() + 10
            while True:
                stats = client.get("/stats/requests").json()
                locust_requests = next(s for s in stats["stats"] if s["name"] == "Aggregated")[
                    "num_requests"
                ]
                if locust_requests == written.totals.requests or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
        ui.send_signal(signal.SIGINT)
        try:
            ui.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            ui.kill()
            out, err = ui.communicate()
            raise AssertionError(f"loadkit ui ignored Ctrl-C:\n{out}\n{err[-4000:]}") from None
    finally:
        if ui.poll() is None:
            ui.kill()
            ui.wait()
    assert ui.returncode == 0
    files = list(folder.glob("ui-*.json"))
    assert len(files) == 1
    results = read_results(files[0])
    assert isinstance(results, LoadResults)
    assert results.valid and results.config["ui"] is True
    assert results.totals.requests == locust_requests > 0
    assert "POST /api/auth/register" not in {e.name for e in results.endpoints}  # reset away


def test_ui_on_a_busy_port_exits_2() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = CliRunner().invoke(app, ["ui", "--web-port", str(port)])
    assert result.exit_code == 2, result.output
    assert f"--web-port {port}" in result.output


def test_ui_with_a_locustfile_locust_cannot_load_exits_2(tmp_path: Path) -> None:
    locustfile = tmp_path / "broken.py"
    locustfile.write_text("import loadkit_no_such_module\n")
    with socket.socket() as target:  # something that accepts connections, for the preflight
        target.bind(("127.0.0.1", 0))
        target.listen()
        host = f"http://127.0.0.1:{target.getsockname()[1]}"
        command = ["ui", "--host", host, "--scenario", str(locustfile)]
        result = CliRunner().invoke(app, [*command, "--web-port", str(free_port())])
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines()[-1] == (
        f"error: scenario {locustfile.resolve()} cannot be loaded: ModuleNotFoundError: "
        "No module named 'loadkit_no_such_module' (broken.py, line 1)"
    )


def test_locust_shuts_down_when_loadkit_is_killed(service: BundledService) -> None:
    # Locust runs in a session of its own; killed outright, loadkit cannot stop it, so Locust
    # watches for that itself (otherwise a web UI would run on forever).
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "loadkit",
        "ui",
        "--host",
        service.url,
        "--web-port",
        str(port),
    ]
    ui = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port)
    finally:
        ui.kill()
        ui.wait()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        except OSError:
            return
        time.sleep(0.2)
    raise AssertionError("Locust's web UI outlived loadkit by 15 s")


def test_ui_http2_users_speak_http2(tmp_path: Path) -> None:
    # The target speaks h2c only and resets every stream with INTERNAL_ERROR: only users that
    # really speak HTTP/2 get those resets (HTTP/1.1 would fail as a protocol error).
    port = free_port()
    folder = tmp_path / "results"
    with serve(h2_by_path()) as target:
        command = [
            sys.executable, "-m", "loadkit", "ui", "--http2", "--scenario", "url",
            "--host", f"{target}/reset/2", "--web-port", str(port), "--results-dir", str(folder),
        ]  # fmt: skip
        ui = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            wait_for_port(port)
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
                swarm = {"user_count": "1", "spawn_rate": "1", "host": target}
                assert client.post("/swarm", data=swarm).status_code == 200
                deadline = time.monotonic() + 20
                while client.get("/stats/requests").json()["fail_ratio"] == 0:
                    assert time.monotonic() < deadline, "no request failed"
                    time.sleep(0.2)
                assert client.post("/stop").status_code == 200
                deadline = time.monotonic() + 10
                while not list(folder.glob("ui-*.json")) and time.monotonic() < deadline:
                    time.sleep(0.1)
            ui.send_signal(signal.SIGINT)
            _, err = ui.communicate(timeout=30)
        finally:
            if ui.poll() is None:
                ui.kill()
                ui.wait()
    assert "users over HTTP/2" in err
    (file,) = folder.glob("ui-*.json")
    results = read_results(file)
    assert isinstance(results, LoadResults) and results.config["http2"] is True
    assert {(g.endpoint, g.kind) for g in results.errors} == {
        ("GET /reset/2", "http2_internal_error")
    }
    assert results.totals.errors == results.totals.requests > 0


def test_ui_http2_with_an_http1_only_locustfile_exits_2_saying_how_to_switch(
    tmp_path: Path,
) -> None:
    locustfile = tmp_path / "fast.py"
    locustfile.write_text(
        "from locust import FastHttpUser, task\n\n\nclass Shop(FastHttpUser):\n"
        "    @task\n    def home(self) -> None:\n        self.client.get('/')\n"
    )
    with socket.socket() as target:  # something that accepts connections, for the preflight
        target.bind(("127.0.0.1", 0))
        target.listen()
        host = f"http://127.0.0.1:{target.getsockname()[1]}"
        command = ["ui", "--http2", "--host", host, "--scenario", str(locustfile)]
        result = CliRunner().invoke(app, [*command, "--web-port", str(free_port())])
    assert result.exit_code == 2, result.output
    assert "--http2: user class Shop speaks HTTP/1.1 only" in result.output
    assert "FastOrHttp2User" in result.output

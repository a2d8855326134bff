"""A password in the target URL, on the Locust path: the requests carry it (the server checks
Basic auth), and it shows nowhere else: not in any process's command line (every user of the
machine reads those with ``ps``), not in what the web UI sends, not in the results file or the
HTML report. A URL run's header, body and query string stay out of every command line too.

Two real runs against one loopback server: a headless ``loadkit load`` with forked Locust
workers (master and workers alike), and ``loadkit ui`` started from its form as the UI shows it.
"""

from __future__ import annotations

import base64
import contextlib
import http.server
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
import pytest

from loadkit.measure.results import LoadResults, read_results
from loadkit.run.bundled_service import free_port

pytestmark = pytest.mark.slow

PASSWORD = "Pa55-w0rd-9f3c"
USER = "bob"
API_KEY = "K3y-h3ader-7d1e"
QUERY_TOKEN = "qu3ry-t0ken-4b2a"
BODY = '{"secret": "b0dy-5ecret-8c0f"}'
SECRETS = (PASSWORD, API_KEY, QUERY_TOKEN, "b0dy-5ecret-8c0f")


@dataclass
class AuthServer:
    """Answers 200 to a GET with ``USER``'s Basic credentials, and to a POST with them,
    ``X-Api-Key: API_KEY``, ``?token=QUERY_TOKEN`` and ``BODY``; 401 to any other."""

    port: int = 0
    allowed: int = 0
    denied: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str = "/private") -> str:
        return f"http://{USER}:{PASSWORD}@127.0.0.1:{self.port}{path}"


@pytest.fixture(scope="module")
def server() -> Iterator[AuthServer]:
    state = AuthServer()
    expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self.answer(self.headers.get("Authorization") == expected)

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            self.answer(
                self.headers.get("Authorization") == expected
                and self.headers.get("X-Api-Key") == API_KEY
                and self.path == f"/private?token={QUERY_TOKEN}"
                and body == BODY.encode()
            )

        def answer(self, ok: bool) -> None:
            with state.lock:
                if ok:
                    state.allowed += 1
                else:
                    state.denied += 1
            self.send_response(200 if ok else 401)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok" if ok else b"no")

        def log_message(self, *_args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


class CommandLines:
    """Samples the command lines of a process's descendants while it runs (Locust and the
    workers it forks), every 50 ms."""

    def __init__(self, pid: int) -> None:
        self.seen: set[tuple[str, ...]] = set()
        self.environ_host: set[str] = set()
        self.locust_pids: set[int] = set()
        self._root = psutil.Process(pid)
        # A child between its fork and its exec shows its parent's command line: the one the
        # user typed, which is theirs to keep secrets off; what loadkit starts is checked.
        self._own = tuple(self._root.cmdline())
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.05):
            with contextlib.suppress(psutil.Error):
                for child in self._root.children(recursive=True):
                    with contextlib.suppress(psutil.Error):
                        line = tuple(child.cmdline())
                        if line == self._own:
                            continue
                        self.seen.add(line)
                        if line[1:3] == ("-m", "locust"):
                            self.locust_pids.add(child.pid)
                        host = child.environ().get("LOCUST_HOST")
                        if host is not None:
                            self.environ_host.add(host)

    def locust(self) -> list[tuple[str, ...]]:
        """The command lines seen of Locust processes."""
        return [line for line in self.seen if line[1:3] == ("-m", "locust")]

    def __enter__(self) -> CommandLines:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()


def environ() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if not key.startswith("LOCUST_")}


def loadkit(*args: str, cwd: Path) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "loadkit", *args]
    return subprocess.Popen(
        command, cwd=cwd, env=environ(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def assert_no_password(path: Path) -> None:
    assert PASSWORD not in path.read_text(encoding="utf-8"), path


def showing(lines: CommandLines, secret: str) -> list[tuple[str, ...]]:
    """The command lines seen with ``secret`` in them."""
    return [line for line in lines.seen if any(secret in arg for arg in line)]


def test_a_headless_run_authenticates_and_no_command_line_shows_its_secrets(
    server: AuthServer, tmp_path: Path
) -> None:
    before = server.allowed
    load = loadkit(
        *("load", server.url(f"/private?token={QUERY_TOKEN}"), "--engine", "locust"),
        *("--method", "POST", "--header", f"X-Api-Key: {API_KEY}", "--body", BODY),
        *("--concurrency", "2", "--duration", "1", "--processes", "2", "--out", "load.json"),
        cwd=tmp_path,
    )
    with CommandLines(load.pid) as lines:
        out, err = load.communicate(timeout=90)
    assert load.returncode == 0, err[-3000:]
    # The master and its two forked workers were seen, none with a secret in its argv (the
    # workers got the url scenario's options from the master); Locust had them in its
    # environment, which only its own user can read.
    assert len(lines.locust_pids) == 3, lines.seen
    for secret in SECRETS:
        assert not showing(lines, secret), secret
    assert lines.environ_host == {server.url("")}
    # Every request carried the password, the header, the query and the body.
    assert server.allowed > before and server.denied == 0
    assert PASSWORD not in out + err and API_KEY not in out + err
    results = read_results(tmp_path / "load.json")
    assert isinstance(results, LoadResults)
    assert results.totals.errors == 0 and results.totals.requests > 0
    assert results.target == f"http://{USER}:***@127.0.0.1:{server.port}"
    assert_no_password(tmp_path / "load.json")  # its HTML report: the web UI's test below


def wait_for(condition: Callable[[], object], what: str, timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_the_web_ui_shows_the_host_masked_and_its_form_as_shown_authenticates(
    server: AuthServer, tmp_path: Path
) -> None:
    port = free_port()
    folder = tmp_path / "results"
    shown = f"http://{USER}:***@127.0.0.1:{server.port}"
    ui = loadkit(
        *("ui", "--scenario", "url", "--host", server.url()),
        *("--web-port", str(port), "--results-dir", str(folder)),
        cwd=tmp_path,
    )
    try:
        with (
            CommandLines(ui.pid) as lines,
            httpx.Client(base_url=f"http://127.0.0.1:{port}") as ui_client,
        ):

            def serving() -> bool:
                with contextlib.suppress(httpx.TransportError):
                    return ui_client.get("/").status_code == 200
                return False

            wait_for(serving, "the web UI")
            page = ui_client.get("/").text
            assert PASSWORD not in page and shown in page
            before = server.allowed
            # The form as the page filled it in: the masked host.
            swarm = {"user_count": "1", "spawn_rate": "1", "host": shown}
            answer = ui_client.post("/swarm", data=swarm)
            assert answer.status_code == 200 and answer.json()["host"] == shown
            wait_for(lambda: server.allowed > before + 5, "authenticated requests")
            for path in ("/", "/stats/requests", "/stats/report", "/stats/requests/csv"):
                answer = ui_client.get(path)
                assert PASSWORD not in answer.text and PASSWORD not in str(answer.headers), path
            assert ui_client.post("/stop").status_code == 200
            wait_for(lambda: list(folder.glob("ui-*.html")), "the UI test's HTML report", 60)
        assert not [line for line in lines.seen if any(PASSWORD in arg for arg in line)]
        assert lines.locust(), lines.seen
    finally:
        ui.send_signal(signal.SIGINT)
        try:
            out, err = ui.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            ui.kill()
            out, err = ui.communicate()
    assert server.denied == 0
    assert PASSWORD not in out + err
    for written_file in [*folder.glob("ui-*.json"), *folder.glob("ui-*.html")]:
        assert_no_password(written_file)
    (results,) = folder.glob("ui-*.json")
    written = read_results(results)
    assert isinstance(written, LoadResults) and written.totals.requests > 0
    assert written.totals.errors == 0

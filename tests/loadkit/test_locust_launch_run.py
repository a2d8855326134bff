"""How loadkit starts Locust, end to end: the target's path kept as plain Locust keeps it, the
arguments after `--` and Locust's own configuration honoured and recorded (what loadkit's command
line overrides said so), a slow test_start hook not charged to the run, and Locust's refusal of
an argument (or the plugin's, of an option Locust parsed otherwise) reported as a usage error.

Each test runs Locust for a couple of seconds against a loopback server that records the paths
it was asked for.
"""

from __future__ import annotations

import contextlib
import http.server
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from loadkit.measure.results import LoadResults, read_results

pytestmark = pytest.mark.slow

# Both of Locust's HTTP clients, a path with and without its leading slash: plain Locust
# prepends --host, path included, to each (the slash doubled where both have one).
PATHS_LOCUSTFILE = """
from locust import FastHttpUser, HttpUser, constant, task

class Requests(HttpUser):
    wait_time = constant(0.2)

    @task
    def both(self):
        self.client.get("/items")
        self.client.get("items")

class Fast(FastHttpUser):
    wait_time = constant(0.2)

    @task
    def both(self):
        self.client.get("/fast")
        self.client.get("fast")
"""

# Locustfile arguments (one named --user: Locust's parser takes that exact name over its own
# --users), tags, and a test_start hook slower than a second.
HOOKED_LOCUSTFILE = """
import time

from locust import HttpUser, constant, events, tag, task

@events.init_command_line_parser.add_listener
def _arguments(parser, **_kwargs):
    parser.add_argument("--greeting", default="none")
    parser.add_argument("--user", default="alice")

@events.test_start.add_listener
def _slow_setup(environment, **_kwargs):
    time.sleep(1.5)

class Greeter(HttpUser):
    wait_time = constant(0.1)

    @tag("hello")
    @task
    def hello(self):
        options = self.environment.parsed_options
        self.client.get(f"/hello/{options.greeting}?u={options.user}")

    @tag("other")
    @task
    def other(self):
        self.client.get("/other")
"""


@dataclass
class PathServer:
    url: str
    paths: set[str] = field(default_factory=set)


@contextlib.contextmanager
def path_server() -> Iterator[PathServer]:
    """A loopback HTTP server answering 200 to every GET and recording the paths asked."""
    server = PathServer(url="")

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            server.paths.add(self.path)
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *_args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def loadkit_load(
    cwd: Path, *args: str, home: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**_clean_environ(), "HOME": str(home or cwd)}
    command = [sys.executable, "-m", "loadkit", "load", "--quiet", "--out", "load.json", *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=90)


def _clean_environ() -> dict[str, str]:
    import os

    return {key: value for key, value in os.environ.items() if not key.startswith("LOCUST_")}


def test_the_host_path_is_kept_as_plain_locust_keeps_it(tmp_path: Path) -> None:
    # Before: loadkit gave Locust the scheme and host only, so /api/v1/ was dropped ("/items")
    # and a relative path made an invalid URL.
    # Both tools run at once, each against a server of its own that records its paths.
    (tmp_path / "paths.py").write_text(PATHS_LOCUSTFILE)
    with path_server() as plain_server, path_server() as server:
        plain_host, host = f"{plain_server.url}/api/v1/", f"{server.url}/api/v1/"
        plain = [sys.executable, "-m", "locust", "-f", "paths.py", "--headless", "-u", "2"]
        plain += ["-r", "2", "-t", "2s", "-H", plain_host, "--only-summary", "--loglevel", "ERROR"]
        plain_run = subprocess.Popen(
            plain, cwd=tmp_path, env=_clean_environ(), stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )  # fmt: skip
        try:
            loaded = loadkit_load(
                tmp_path, "--host", host, "--scenario", "paths.py", "--duration", "2"
            )
            _, plain_err = plain_run.communicate(timeout=60)
        finally:
            if plain_run.poll() is None:
                plain_run.kill()
                plain_run.wait()
        assert plain_run.returncode == 0, plain_err[-2000:]
        assert loaded.returncode == 0, loaded.stderr
        plain_paths, loadkit_paths = plain_server.paths, server.paths
    assert plain_paths == {"/api/v1//items", "/api/v1/items", "/api/v1//fast", "/api/v1/fast"}
    assert loadkit_paths == plain_paths
    results = read_results(tmp_path / "load.json")
    assert isinstance(results, LoadResults)
    assert results.target == host
    assert results.totals.errors == 0


def test_locust_args_and_config_reach_locust_and_a_slow_hook_does_not_eat_the_run(
    tmp_path: Path,
) -> None:
    (tmp_path / "hooked.py").write_text(HOOKED_LOCUSTFILE)
    # A team's locust.conf: the keys loadkit's command line overrides, tags, a locustfile's
    # argument. Before: locustfile/host/users/spawn-rate were refused (exit 2), and `--user`
    # after `--` was refused as an abbreviation of --users.
    (tmp_path / "locust.conf").write_text(
        "locustfile = elsewhere.py\nhost = http://127.0.0.1:1\nusers = 40\nspawn-rate = 0.5\n"
        "tags = [hello]\ngreeting = from-conf\n"
    )
    with path_server() as server:
        loaded = loadkit_load(
            tmp_path,
            *("--host", server.url, "--scenario", "hooked.py", "--duration", "1"),
            *("--concurrency", "2", "--", "--user", "bob"),
        )
        assert loaded.returncode == 0, loaded.stderr
        paths = server.paths
    # Only the tagged task ran, with the locustfile's arguments from locust.conf and `--`.
    assert paths == {"/hello/from-conf?u=bob"}
    keys = ["locustfile", "host", "users", "spawn-rate", "tags", "greeting"]
    overridden = ["locustfile", "host", "users", "spawn-rate"]
    assert (
        f"Locust's own configuration is read too: locust.conf ({', '.join(keys)}); "
        f"overridden by loadkit: {', '.join(overridden)}"
    ) in loaded.stderr
    results = read_results(tmp_path / "load.json")
    assert isinstance(results, LoadResults)
    assert results.config["locust_args"] == ["--user", "bob"]
    assert results.config["locust_config"] == {
        "files": [{"path": "locust.conf", "keys": keys, "overridden": overridden}],
        "env": [],
    }
    assert results.config["concurrency"] == 2
    # The 1.5 s hook ran before the plugin's clock started: a complete, valid 1 s run (a clock
    # started before it would have left no time to send anything).
    assert results.valid and results.invalid_reasons == []
    assert 0.9 <= results.duration_s < 1.9
    assert results.totals.requests > 0


REFUSED: list[tuple[list[str], str, str]] = [
    (["--tagz", "x"], "", "error: unrecognized arguments: --tagz Did you mean '--tags'?"),
    (["NoSuchUser"], "", "Unknown User(s): NoSuchUser"),
    # Abbreviations Locust's parser takes for an option loadkit sets: the plugin finds them
    # in what Locust parsed (before: refused by name, a locustfile's own --user included).
    (
        ["--run", "5s"],
        "",
        "loadkit: error: `--run` after `--` sets Locust's --run-time, which would change "
        "the run loadkit measures: loadkit sets it itself; use --duration",
    ),
    ([], "run = 5s\n", "loadkit: error: locust.conf: key 'run' sets Locust's --run-time"),
]
"""Arguments after ``--`` and a locust.conf Locust or the plugin refuses, and the line said."""


def test_an_argument_locust_refuses_is_exit_2_with_locusts_line(tmp_path: Path) -> None:
    # Before: "the load generator (Locust) exited with code 2 ..." and exit 4, a crash.
    # The cases run at once, each in a folder of its own: each is a Locust start-up that
    # refuses, seconds of imports and no load, which one after another cost 3 s each.
    folders = []
    for number, (_args, conf, _line) in enumerate(REFUSED):
        folder = tmp_path / f"case{number}"
        folder.mkdir()
        (folder / "paths.py").write_text(PATHS_LOCUSTFILE)
        if conf:
            (folder / "locust.conf").write_text(conf)
        folders.append(folder)
    with path_server() as server:
        scenario = ("--scenario", "paths.py", "--duration", "2")
        with ThreadPoolExecutor(max_workers=len(REFUSED)) as pool:
            started = [
                pool.submit(loadkit_load, folder, "--host", server.url, *scenario, "--", *args)
                for folder, (args, _conf, _line) in zip(folders, REFUSED, strict=True)
            ]
            runs = [future.result() for future in started]
        assert not server.paths  # refused before any request
    for folder, (args, conf, line), loaded in zip(folders, REFUSED, runs, strict=True):
        case = (args, conf)
        assert loaded.returncode == 2, (case, loaded.stderr)
        last = loaded.stderr.strip().splitlines()[-1]
        if line.startswith("loadkit: error: "):  # the plugin's own line, said as loadkit's error
            assert last.startswith("error: " + line.removeprefix("loadkit: error: ")), (case, last)
        else:
            assert last.startswith(
                "error: Locust refused its arguments (those after `--`, or its "
            ), (case, last)
            assert line in last, (case, last)
        results = read_results(folder / "load.json")
        assert not results.valid, case  # the run could not start: never an earlier run's file

"""A declarative scenario's request paths follow the target's base path alike on both engines:
``http://h``, ``http://h/``, ``http://h/api``, ``http://h/api/`` request ``/items`` or
``/api/items`` (a trailing slash never doubled), and a target with a query is refused before
anything is sent, with the same exit code and words. Run end to end through ``loadkit load``
against one loopback server that records the request lines it gets."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from loadkit.cli import app
from loadkit.engines.target import scenario_base_path, scenario_target
from loadkit.exceptions import ConfigError
from loadkit.measure.results import LoadResults, read_results
from tests.loadkit.misbehaving_servers import serve

pytestmark = pytest.mark.slow

ACCEPTANCE = """
[scenarios.items]
[[scenarios.items.requests]]
path = "/items"
query = { page = 1 }
expect_status = 200
"""
ENGINES = ("native", "locust")


class _Seen:
    """The request targets the server got, from the latest run only."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.targets: set[str] = set()

    def take(self) -> set[str]:
        with self.lock:
            taken, self.targets = self.targets, set()
        return taken


def _recording(seen: _Seen) -> object:
    def handler(conn: socket.socket) -> None:
        conn.settimeout(5)
        data = b""
        while True:
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            head, _, data = data.partition(b"\r\n\r\n")
            with seen.lock:
                seen.targets.add(head.split(b" ", 2)[1].decode("latin-1"))
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")

    return handler


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, _Seen]]:
    seen = _Seen()
    with serve(_recording(seen)) as url:  # type: ignore[arg-type]
        yield url, seen


def _load(tmp_path: Path, engine: str, host: str) -> tuple[int, str]:
    config = tmp_path / "acceptance.toml"
    config.write_text(ACCEPTANCE, encoding="utf-8")
    result = CliRunner().invoke(
        app,
        ["load", "--config", str(config), "--scenario", "items", "--engine", engine,
         "--host", host, "--concurrency", "1", "--duration", "0.5", "--quiet",
         "--out", str(tmp_path / f"{engine}.json")],
    )  # fmt: skip
    return result.exit_code, result.output


@pytest.mark.parametrize(
    ("suffix", "base"), [("", ""), ("/", ""), ("/api", "/api"), ("/api/", "/api"), ("//", "")]
)
def test_the_base_path_is_the_targets_without_its_trailing_slash(suffix: str, base: str) -> None:
    host = f"http://u:p@api.test:8080{suffix}"
    assert scenario_base_path(host) == base
    assert scenario_target(host) == f"http://u:p@api.test:8080{base}"


@pytest.mark.parametrize("host", ["http://h/api?x=1", "http://h/?", "http://h#top"])
def test_a_target_with_a_query_or_a_fragment_is_refused_naming_it(host: str) -> None:
    with pytest.raises(ConfigError, match=r"^target '.+': .*query or a fragment.*give "):
        scenario_target(host, option="target")


def test_both_engines_request_the_same_paths_below_a_trailing_slash(
    server: tuple[str, _Seen], tmp_path: Path
) -> None:
    # On main, Locust requested /api//items here, and //items (refused by its client, every
    # request an exception, exit 4) below http://h/; test_native_scenario.py checks every form
    # of the join against what Locust's client sends for it.
    url, seen = server
    for engine in ENGINES:
        seen.take()
        code, output = _load(tmp_path, engine, f"{url}/api/")
        assert code == 0, f"{engine}: {output}"
        assert seen.take() == {"/api/items?page=1"}, engine
        results = read_results(tmp_path / f"{engine}.json")
        assert isinstance(results, LoadResults), engine
        assert results.totals.errors == 0 and results.totals.requests > 0, engine
        # Both record the same target: the URL the scenario's paths were appended to.
        assert results.target == f"{url}/api", engine


def test_both_engines_refuse_a_target_with_a_query_alike(
    server: tuple[str, _Seen], tmp_path: Path
) -> None:
    url, seen = server
    seen.take()
    outcomes = {engine: _load(tmp_path, engine, f"{url}/api?x=1") for engine in ENGINES}
    assert outcomes["native"] == outcomes["locust"]
    code, output = outcomes["native"]
    assert code == 2
    assert f"target '{url}/api?x=1'" in output and "cannot carry a query or a fragment" in output
    assert seen.take() == set()

"""A URL run judges its answer the same way on both engines: a response cut short by the server
(or a connection reset before any answer) is a lost connection (``connection_reset``), never a
success or an unexpected status. (That a
redirect is a response, never followed, and that the response is asked uncompressed, is checked
on the same runs as the other answers both engines judge alike: test_native_side_by_side.)"""

from __future__ import annotations

import contextlib
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from loadkit.measure.results import LoadResults, read_results
from tests.loadkit.misbehaving_servers import read_request, resets, serve
from tests.loadkit.test_native_side_by_side import locust_command, run_native

Handler = Callable[[socket.socket], None]


def _cut_short(answer: bytes) -> Handler:
    """Reads a request, sends ``answer`` (less than it announces), then closes."""

    def handler(conn: socket.socket) -> None:
        if read_request(conn):
            conn.sendall(answer)
        conn.close()

    return handler


def _kinds(results: LoadResults) -> set[tuple[str, str]]:
    return {(group.endpoint, group.kind) for group in results.errors}


CUT_SHORT: dict[str, Handler] = {
    "headers-cut": _cut_short(b"HTTP/1.1 200 OK\r\nContent-Len"),
    "body-cut": _cut_short(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nhello"),
    "body-cut-connection-close": _cut_short(
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1000\r\n\r\nhello"
    ),
    "chunk-cut": _cut_short(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nhel"),
    # Nothing at all: the connection reset (RST) once the request is read.
    "reset": resets,
}
"""Each way a server loses the connection mid-answer, by name."""


@pytest.mark.slow
def test_a_response_cut_short_is_a_lost_connection_on_both_engines(tmp_path: Path) -> None:
    # A server per case; every case's Locust run at once (each a Locust start-up, seconds of
    # imports: one after another they were most of this test's time), the native runs meanwhile.
    with contextlib.ExitStack() as stack:
        urls = {name: stack.enter_context(serve(handler)) for name, handler in CUT_SHORT.items()}
        outs = {name: tmp_path / f"locust-{name}.json" for name in CUT_SHORT}
        locusts = {
            name: subprocess.Popen(
                locust_command(urls[name], outs[name]),
                cwd=tmp_path,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            for name in CUT_SHORT
        }
        try:
            natives = {}
            for name, url in urls.items():
                (tmp_path / name).mkdir()
                natives[name] = run_native(url, tmp_path / name)
            errors = {name: process.communicate(timeout=90)[1] for name, process in locusts.items()}
        finally:
            for process in locusts.values():
                if process.poll() is None:
                    process.kill()
                    process.wait()
    for name in CUT_SHORT:
        assert outs[name].exists(), (name, errors[name][-3000:])
        locust = read_results(outs[name])
        assert isinstance(locust, LoadResults)
        native = natives[name]
        for results in (locust, native):
            assert results.totals.requests > 0, name
            assert results.totals.errors == results.totals.requests, (name, results.errors)
        assert _kinds(locust) == _kinds(native) == {("GET /orders", "connection_reset")}, name
        # A body cut after its head keeps the head's status on both engines.
        statuses = [set(group.status_codes) for group in (*locust.errors, *native.errors)]
        assert statuses[0] == statuses[1], (name, statuses)

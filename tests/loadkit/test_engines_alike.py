"""A URL run judges its answer the same way on both engines: a response cut short by the server
is a lost connection (``connection_reset``), never a success or an unexpected status. (That a
redirect is a response, never followed, and that the response is asked uncompressed, is checked
on the same runs as the other answers both engines judge alike: test_native_side_by_side.)"""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from loadkit.measure.results import LoadResults
from tests.loadkit.misbehaving_servers import read_request, serve
from tests.loadkit.test_native_side_by_side import run_locust, run_native

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


@pytest.mark.slow
@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(b"HTTP/1.1 200 OK\r\nContent-Len", id="headers-cut"),
        pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nhello", id="body-cut"),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1000\r\n\r\nhello",
            id="body-cut-connection-close",
        ),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nhel",
            id="chunk-cut",
        ),
    ],
)
def test_a_response_cut_short_is_a_lost_connection_on_both_engines(
    answer: bytes, tmp_path: Path
) -> None:
    with serve(_cut_short(answer)) as url:
        locust = run_locust(url, tmp_path)
        native = run_native(url, tmp_path)
    for results in (locust, native):
        assert results.totals.requests > 0
        assert results.totals.errors == results.totals.requests, results.errors
    assert _kinds(locust) == _kinds(native) == {("GET /orders", "connection_reset")}
    # A body cut after its head keeps the head's status on both engines.
    statuses = [set(group.status_codes) for group in (*locust.errors, *native.errors)]
    assert statuses[0] == statuses[1], statuses

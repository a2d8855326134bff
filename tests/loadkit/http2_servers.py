"""A loopback HTTP/2 server (h2c, prior knowledge) whose answer each path decides.

``/ok`` and any other path: 200 with a small JSON body. ``/reset/<code>``: the stream is reset
with RST_STREAM carrying that error code (2 INTERNAL_ERROR, 7 REFUSED_STREAM, 8 CANCEL, ...).
``/goaway/<code>``: the connection ends with GOAWAY carrying that code (this stream unprocessed).
``/cut/<code>``: headers and part of a body, then RST_STREAM with that code (as nginx does when
its upstream stalls after its headers). ``/drain``: a graceful GOAWAY (NO_ERROR) naming this
stream as the last, then its 200, then the connection closes (nginx at ``keepalive_requests``).
Runs on ``misbehaving_servers.serve``'s threads.
"""

from __future__ import annotations

import socket

import h2.config
import h2.connection
import h2.events

from tests.loadkit.misbehaving_servers import Handler

OK_BODY = b'{"status": "ok"}'


def h2_by_path() -> Handler:
    """The handler of one connection (see the module's docstring)."""

    def handler(conn: socket.socket) -> None:
        conn.settimeout(10)
        paths: dict[int, str] = {}
        h2conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=False))
        h2conn.initiate_connection()
        conn.sendall(h2conn.data_to_send())
        while True:
            data = conn.recv(65536)
            if not data:
                return
            ended = False
            for event in h2conn.receive_data(data):
                if isinstance(event, h2.events.StreamEnded):
                    ended = _answer(h2conn, event.stream_id, paths.pop(event.stream_id, "/"))
                elif isinstance(event, h2.events.RequestReceived):
                    paths[event.stream_id] = dict(event.headers).get(b":path", b"/").decode()
                elif isinstance(event, h2.events.DataReceived):
                    h2conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                if ended:
                    break
            conn.sendall(h2conn.data_to_send())
            if ended:
                return

    return handler


def _answer(h2conn: h2.connection.H2Connection, stream_id: int, path: str) -> bool:
    """Answer one request; True when the connection is over (GOAWAY sent)."""
    parts = path.strip("/").split("/")
    code = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 2
    if parts[0] == "reset":
        h2conn.reset_stream(stream_id, error_code=code)
        return False
    if parts[0] == "goaway":
        h2conn.close_connection(error_code=code, last_stream_id=max(0, stream_id - 2))
        return True
    if parts[0] == "drain":
        h2conn.close_connection(error_code=0, last_stream_id=stream_id)
        _ok(h2conn, stream_id)
        return True
    if parts[0] == "cut":
        h2conn.send_headers(stream_id, [(":status", "200"), ("content-type", "application/json")])
        h2conn.send_data(stream_id, b'{"sta')
        h2conn.reset_stream(stream_id, error_code=code)
        return False
    _ok(h2conn, stream_id)
    return False


def _ok(h2conn: h2.connection.H2Connection, stream_id: int) -> None:
    # h2 refuses to send after its own GOAWAY: reopened here, as a draining server does.
    h2conn.state_machine.state = h2.connection.ConnectionState.SERVER_OPEN
    h2conn.send_headers(
        stream_id,
        [(":status", "200"), ("content-type", "application/json"), ("content-length", "16")],
    )
    h2conn.send_data(stream_id, OK_BODY, end_stream=True)

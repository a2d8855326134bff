"""A locustfile on loadkit's HTTP/2 user whose every iteration hits a fixed sequence of paths
(``tests/loadkit/http2_servers.py`` decides each path's answer), so the share of each failure
kind is known exactly: per iteration one ``/ok``, one ``/reset/2``, one ``/reset/8``, one
``/reset/7``, one ``/cut/2`` and, with ``H2_TEST_GOAWAY=1``, one ``/goaway/0``, one
``/goaway/2`` and one ``/drain`` (a graceful GOAWAY that still answers the request)."""

from __future__ import annotations

import os

from locust import constant, task

from scenarios.http2_user import Http2User

PATHS = ["/ok", "/reset/2", "/reset/8", "/reset/7", "/cut/2"]
if os.environ.get("H2_TEST_GOAWAY") == "1":
    PATHS += ["/goaway/0", "/goaway/2", "/drain"]


class SequenceUser(Http2User):
    """Hits PATHS in order, again and again."""

    wait_time = constant(0.01)

    @task
    def sequence(self) -> None:
        """One iteration: every path once, each its own endpoint."""
        for path in PATHS:
            self.client.get(path, name=path)

"""A locustfile for tests: its user keeps the generator's CPU busy, as a heavy scenario would.

Each task burns 50 ms of CPU before a cheap GET, so the Locust process runs near 100 % of a core
for the whole run, too short a run for Locust's own CPU reading (every 10 s) to see it. Run by
path, never imported by the test process (Locust would monkey-patch it).
"""

from __future__ import annotations

import time

from locust import FastHttpUser, constant, task

BURN_S = 0.05


class BusyUser(FastHttpUser):
    """Computes, then asks for a static file."""

    wait_time = constant(0)

    @task
    def busy(self) -> None:
        """CPU work on the generator, then one request."""
        started = time.process_time()
        while time.process_time() - started < BURN_S:
            pass
        self.client.get("/hello.txt", name="/hello.txt")

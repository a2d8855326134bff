"""A locustfile for tests of load stages: each user announces itself once (``GET /start``, so the
users a run started can be counted from its results), then gets ``/work`` again and again. Run by
path, never imported by the test process (Locust would monkey-patch it).
"""

from __future__ import annotations

from locust import FastHttpUser, constant, task


class CountedUser(FastHttpUser):
    """One ``/start`` when it starts, then ``/work`` in a closed loop."""

    wait_time = constant(0)

    def on_start(self) -> None:
        """Counted: one per user started."""
        self.client.get("/start")

    @task
    def work(self) -> None:
        """The load."""
        self.client.get("/work")

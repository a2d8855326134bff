"""A ``LoadTestShape``: 2 users for the first second, 4 until the second second, then the end.

Plain Locust runs a shape to its end whatever ``--run-time`` says (``-t`` is ignored, with a
warning) and then quits ("Shape test completed"). Each user makes ``ITERATIONS`` rounds as soon
as it starts, then idles, so the run's requests are 4 users' rounds however long it lasts.
"""

from __future__ import annotations

from locust import HttpUser, LoadTestShape, task

ITERATIONS = 2
PAUSE_S = 0.01
IDLE_S = 3600.0
STAGES = ((1.0, 2), (2.0, 4))
"""(until this many seconds, this many users)."""


class TwoStages(LoadTestShape):
    """2 users, then 4, then stop."""

    def tick(self) -> tuple[int, float] | None:
        """The users wanted now (all started at once), or None: the shape is over."""
        run_time = self.get_run_time()  # type: ignore[no-untyped-call]
        for until_s, users in STAGES:
            if run_time < until_s:
                return users, float(users)
        return None


class Worker(HttpUser):
    """A job and a failing job per round."""

    rounds_left = ITERATIONS

    def wait_time(self) -> float:
        """A short pause between rounds; idle once they are done."""
        return PAUSE_S if self.rounds_left > 0 else IDLE_S

    @task
    def work(self) -> None:
        """One job that succeeds, one that fails (500)."""
        self.rounds_left -= 1
        self.client.get("/jobs")
        self.client.post("/fail-jobs", json={})

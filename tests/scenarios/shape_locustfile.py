"""A locustfile for tests with a ``LoadTestShape``: 2 users for ``LOADKIT_TEST_STEP_S`` seconds
(default 1.5, so that each step holds one of the ticks Locust's shape loop makes once a second,
even on a busy machine), then 4 for as long again, then done (``tick()`` returns None). Run by
path, never imported by the test process (Locust would monkey-patch it).
"""

from __future__ import annotations

import os

from locust import FastHttpUser, LoadTestShape, constant, task

STEP_S = float(os.environ.get("LOADKIT_TEST_STEP_S", "1.5"))


class TwoSteps(LoadTestShape):
    """Two stages, then the end of the test."""

    def tick(self) -> tuple[int, float] | None:
        """Users and spawn rate for now, None once the shape is over."""
        run_time = self.get_run_time()  # type: ignore[no-untyped-call]  # Locust is unannotated
        if run_time < STEP_S:
            return (2, 10.0)
        if run_time < 2 * STEP_S:
            return (4, 10.0)
        return None


class IndexUser(FastHttpUser):
    """Gets the index again and again."""

    wait_time = constant(0.05)

    @task
    def index(self) -> None:
        """The index."""
        self.client.get("/")

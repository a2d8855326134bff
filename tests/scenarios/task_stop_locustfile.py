"""A locustfile for tests whose task ends the test itself: after ``LOADKIT_TEST_STOP_AFTER``
requests (default 20) in its process, a task calls ``self.environment.runner.quit()`` (or
``stop()``, ``LOADKIT_TEST_STOP_HOW=stop``), having set ``process_exit_code`` to
``LOADKIT_TEST_EXIT_CODE`` (unset: none). With ``LOADKIT_TEST_STOP_WORKER=0`` only the worker
of that index stops (the others run on). Run by path, never imported by the test process
(Locust would monkey-patch it).
"""

from __future__ import annotations

import os

from locust import FastHttpUser, constant, task

STOP_AFTER = int(os.environ.get("LOADKIT_TEST_STOP_AFTER", "20"))
STOP_WORKER = os.environ.get("LOADKIT_TEST_STOP_WORKER")


class IndexUser(FastHttpUser):
    """Gets the index, and ends the test after enough requests."""

    wait_time = constant(0.02)
    sent = 0

    @task
    def index(self) -> None:
        """The index; then, the STOP_AFTER-th time in this process, the end of the test."""
        self.client.get("/")
        IndexUser.sent += 1
        if IndexUser.sent != STOP_AFTER:
            return
        runner = self.environment.runner
        assert runner is not None
        if STOP_WORKER is not None and getattr(runner, "worker_index", None) != int(STOP_WORKER):
            return
        exit_code = os.environ.get("LOADKIT_TEST_EXIT_CODE")
        if exit_code is not None:
            self.environment.process_exit_code = int(exit_code)
        if os.environ.get("LOADKIT_TEST_STOP_HOW", "quit") == "stop":
            runner.stop()
        else:
            runner.quit()

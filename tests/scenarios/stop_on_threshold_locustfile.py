"""A locustfile for tests that quits on purpose when too many requests fail, in the manner of
the stop-on-threshold pattern of Locust's documentation: a greenlet started from an ``init``
listener watches ``runner.stats.total.fail_ratio``.

``LOADKIT_TEST_STOP_HOW`` picks ``quit`` (default) or ``stop``; ``LOADKIT_TEST_EXIT_CODE`` is the
``process_exit_code`` it sets first (unset: none). Run by path, never imported by the test
process (Locust would monkey-patch it).
"""

from __future__ import annotations

import os
import time

import gevent
from locust import FastHttpUser, constant, events, task
from locust.env import Environment
from locust.runners import STATE_CLEANUP, STATE_STOPPED, STATE_STOPPING, WorkerRunner

FAIL_RATIO_LIMIT = 0.2


def _check_fail_ratio(environment: Environment) -> None:
    runner = environment.runner
    assert runner is not None
    while runner.state not in (STATE_STOPPING, STATE_STOPPED, STATE_CLEANUP):
        time.sleep(0.3)
        if runner.stats.total.fail_ratio > FAIL_RATIO_LIMIT:
            exit_code = os.environ.get("LOADKIT_TEST_EXIT_CODE")
            if exit_code is not None:
                environment.process_exit_code = int(exit_code)
            if os.environ.get("LOADKIT_TEST_STOP_HOW", "quit") == "stop":
                runner.stop()
            else:
                runner.quit()
            return


@events.init.add_listener  # type: ignore[untyped-decorator]  # Locust's is unannotated
def _on_init(environment: Environment, **_kwargs: object) -> None:
    if not isinstance(environment.runner, WorkerRunner):
        gevent.spawn(_check_fail_ratio, environment)


class IndexUser(FastHttpUser):
    """Gets the index again and again."""

    wait_time = constant(0.02)

    @task
    def index(self) -> None:
        """The index."""
        self.client.get("/")

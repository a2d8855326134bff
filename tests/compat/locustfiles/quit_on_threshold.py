"""A locustfile that ends the run itself: the stop-on-threshold pattern of Locust's docs.

A greenlet started from ``init`` watches Locust's statistics; once every user's work is done
(all planned requests counted) and the failure ratio is above ``MAX_FAIL_RATIO``, it sets the
exit code to 1 and calls ``runner.quit()``, long before ``--run-time``.
"""

from __future__ import annotations

from typing import Any

import gevent
from locust import HttpUser, events, task
from locust.env import Environment
from locust.runners import WorkerRunner

ITERATIONS = 3
REQUESTS_PER_ROUND = 2
PAUSE_S = 0.01
IDLE_S = 3600.0
MAX_FAIL_RATIO = 0.2
CHECK_EVERY_S = 0.1


def stop_on_failure_ratio(environment: Environment) -> None:
    """Quit with exit code 1 once the planned work is counted and too much of it failed."""
    assert environment.parsed_options is not None
    planned = environment.parsed_options.num_users * ITERATIONS * REQUESTS_PER_ROUND
    assert environment.runner is not None
    while True:
        gevent.sleep(CHECK_EVERY_S)
        total = environment.stats.total
        if total.num_requests >= planned and total.fail_ratio > MAX_FAIL_RATIO:
            environment.process_exit_code = 1
            environment.runner.quit()
            return


@events.init.add_listener  # type: ignore[untyped-decorator]  # Locust's is unannotated
def on_init(environment: Environment, **_kwargs: Any) -> None:
    """Watch the statistics where they are gathered (not on a worker)."""
    if not isinstance(environment.runner, WorkerRunner):
        gevent.spawn(stop_on_failure_ratio, environment)


class Searcher(HttpUser):
    """A search that works and one that fails (500), ``ITERATIONS`` times."""

    rounds_left = ITERATIONS

    def wait_time(self) -> float:
        """A short pause between rounds; idle once they are done."""
        return PAUSE_S if self.rounds_left > 0 else IDLE_S

    @task
    def search(self) -> None:
        """Two searches."""
        self.rounds_left -= 1
        self.client.get("/search?q=ann", name="/search")
        self.client.get("/fail-search?q=bob", name="/fail-search")

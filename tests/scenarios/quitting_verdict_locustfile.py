"""A locustfile for tests that gives its own verdict as it quits, in the manner of Locust's
documentation ("a quitting listener sets ``environment.process_exit_code``"): it never stops
the run, and finds it failed (exit code 1) however it went. Run by path, never imported by the
test process (Locust would monkey-patch it).
"""

from __future__ import annotations

from locust import FastHttpUser, constant, events, task
from locust.env import Environment


@events.quitting.add_listener  # type: ignore[untyped-decorator]  # Locust's is unannotated
def _verdict(environment: Environment, **_kwargs: object) -> None:
    # Locust's documented example checks its stats (a fail ratio, an average); any check
    # that fails does the same.
    if environment.stats.total.num_requests > 0:
        environment.process_exit_code = 1


class IndexUser(FastHttpUser):
    """Gets the index again and again."""

    wait_time = constant(0.05)

    @task
    def index(self) -> None:
        """The index."""
        self.client.get("/")

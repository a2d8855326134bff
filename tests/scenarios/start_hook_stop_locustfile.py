"""A locustfile for tests whose ``test_start`` hook refuses to start the test: it raises
``StopTest``, as a precondition check would (no test data). Its listener is registered before
any plugin's. Run by path, never imported by the test process (Locust would monkey-patch it).
"""

from __future__ import annotations

from locust import FastHttpUser, constant, events, task
from locust.env import Environment
from locust.exception import StopTest


@events.test_start.add_listener  # type: ignore[untyped-decorator]  # Locust's is unannotated
def _check_test_data(environment: Environment, **_kwargs: object) -> None:
    raise StopTest("no test data")


class IndexUser(FastHttpUser):
    """Gets the index again and again (never, here)."""

    wait_time = constant(0.02)

    @task
    def index(self) -> None:
        """The index."""
        self.client.get("/")

"""A locustfile for tests: reports an overloaded generator, and asks for a missing file too.

It fires Locust's own ``cpu_warning`` event (what Locust does when its process stays above 90 %
CPU) shortly after the test starts, so that loadkit's reaction can be tested without saturating
a shared CI machine. Run by path, never imported by the test process (Locust would monkey-patch
it).
"""

from __future__ import annotations

import gevent
from locust import FastHttpUser, constant, events, task
from locust.env import Environment


@events.test_start.add_listener  # type: ignore[untyped-decorator]  # Locust's is unannotated
def _overload_soon(environment: Environment, **_kwargs: object) -> None:
    gevent.spawn_later(0.3, environment.events.cpu_warning.fire, environment=environment,
                       cpu_usage=99.0)  # fmt: skip


class StaticUser(FastHttpUser):
    """Gets a file that exists and one that does not."""

    wait_time = constant(0.01)

    @task(3)
    def hello(self) -> None:
        """An existing file."""
        self.client.get("/hello.txt", name="/hello.txt")

    @task(1)
    def missing(self) -> None:
        """A 404 with an HTML body: an error without a kind."""
        self.client.get("/missing.txt", name="/missing.txt")

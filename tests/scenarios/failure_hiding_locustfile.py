"""A locustfile for tests: its own request listener raises RescheduleTask on every failure.

As Locust's ``examples/response_validations.py`` does: the listener is registered in the
locustfile's ``init`` listener, which runs before loadkit's plugin attaches, and Locust's event
dispatch re-raises RescheduleTask from it, skipping every listener after it. Each task asks for
one page that succeeds and one that fails (tests/compat/answering_server.py). Run by path.
"""

from __future__ import annotations

from typing import Any

from locust import FastHttpUser, constant, events, task
from locust.exception import RescheduleTask


@events.init.add_listener  # type: ignore[untyped-decorator]  # Locust's is unannotated
def _on_init(environment: Any, **_kwargs: Any) -> None:
    def reschedule_on_failure(exception: BaseException | None = None, **_kw: Any) -> None:
        if exception is not None:
            raise RescheduleTask()

    environment.events.request.add_listener(reschedule_on_failure)


class CheckingUser(FastHttpUser):
    """A page that works, then one that fails."""

    wait_time = constant(0.01)

    @task
    def ok_then_fail(self) -> None:
        """Two requests; the second fails and its listener reschedules the task."""
        self.client.get("/ok")
        self.client.get("/fail")

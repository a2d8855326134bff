"""A request listener, registered from an ``init`` listener, that ends the task on any failure.

The pattern of Locust's own response-validation example: the listener raises ``RescheduleTask``
when a request failed, so the task stops at its first failure. Locust re-raises it out of the
event's dispatch and skips the listeners registered after this one; Locust's statistics still
count the failure (their listener came first).
"""

from __future__ import annotations

from typing import Any

from locust import HttpUser, events, task
from locust.env import Environment
from locust.exception import RescheduleTask

ITERATIONS = 3
PAUSE_S = 0.01
IDLE_S = 3600.0


@events.init.add_listener  # type: ignore[untyped-decorator]  # Locust's is unannotated
def register_request_listener(environment: Environment, **_kwargs: Any) -> None:
    """Once Locust is set up: end the task at its first failed request."""

    @environment.events.request.add_listener  # type: ignore[untyped-decorator]
    def end_task_on_failure(exception: BaseException | None, **_kwargs: Any) -> None:
        if exception is not None:
            raise RescheduleTask()


class Buyer(HttpUser):
    """An account page, a checkout that fails (500); the confirmation is never reached."""

    rounds_left = ITERATIONS

    def wait_time(self) -> float:
        """A short pause between rounds; idle once they are done."""
        return PAUSE_S if self.rounds_left > 0 else IDLE_S

    @task
    def buy(self) -> None:
        """Account, checkout (fails: the listener ends the task), confirmation."""
        self.rounds_left -= 1
        self.client.get("/account")
        self.client.post("/fail-checkout", json={"cart": 1})
        self.client.get("/confirmation")  # never reached

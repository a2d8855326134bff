"""A user's own control flow: ``InterruptTaskSet``, ``RescheduleTask`` and ``StopUser``.

Each round of the mailbox (a SequentialTaskSet) reads the inbox twice (a nested TaskSet that
leaves with ``InterruptTaskSet(reschedule=False)``), drafts a message whose sending fails (500),
gives up on the rest of that task with ``RescheduleTask`` (``/sent`` is never requested), and
logs out. After ``ITERATIONS`` rounds the user stops itself with ``StopUser``.
"""

from __future__ import annotations

from locust import HttpUser, SequentialTaskSet, TaskSet, constant, task
from locust.exception import InterruptTaskSet, RescheduleTask, StopUser

ITERATIONS = 2
READS = 2
PAUSE_S = 0.01


class Inbox(TaskSet):
    """Nested TaskSet: ``READS`` reads, then back to the mailbox without rescheduling at once."""

    def on_start(self) -> None:
        """A fresh count each time the mailbox enters the inbox."""
        self.reads = 0

    @task
    def read(self) -> None:
        """One read; leave after the last."""
        self.client.get("/inbox")
        self.reads += 1
        if self.reads >= READS:
            raise InterruptTaskSet(reschedule=False)  # type: ignore[no-untyped-call]


class Mailbox(SequentialTaskSet):
    """Inbox, compose, logout."""

    tasks = [Inbox]  # noqa: RUF012 (Locust declares it so)

    @task
    def compose(self) -> None:
        """A draft, then a send that fails: the rest of the task is given up."""
        self.client.post("/drafts", json={"to": "ann"})
        response = self.client.post("/fail-send", json={"draft": 1})
        if not response.ok:
            raise RescheduleTask()
        self.client.get("/sent")  # never reached: sending always fails

    @task
    def logout(self) -> None:
        """The round's end; the user stops after its last."""
        self.client.post("/logout")
        mailer = self.user
        assert isinstance(mailer, Mailer)
        mailer.rounds_left -= 1
        if mailer.rounds_left == 0:
            raise StopUser()


class Mailer(HttpUser):
    """``ITERATIONS`` rounds of the mailbox, then it stops."""

    tasks = [Mailbox]  # noqa: RUF012 (Locust declares it so)
    wait_time = constant(PAUSE_S)

    rounds_left = ITERATIONS

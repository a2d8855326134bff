"""TaskSets nested both ways: a SequentialTaskSet holding a TaskSet and a SequentialTaskSet.

Each iteration of a shopper's journey browses the catalogue (a nested TaskSet that interrupts
itself back to the journey), checks out (a nested SequentialTaskSet: basket, a payment that
fails with 500, a receipt) and ends with a plain function task. Product pages are grouped under
one name with ``name=``. After ``ITERATIONS`` journeys a shopper idles.
"""

from __future__ import annotations

from locust import HttpUser, SequentialTaskSet, TaskSet, task

ITERATIONS = 3
PRODUCTS = 2
"""Product pages visited per journey, all counted as ``/products/[id]``."""
PAUSE_S = 0.01
IDLE_S = 3600.0


class Catalogue(TaskSet):
    """Nested TaskSet: one visit of the catalogue, then back to the journey."""

    @task
    def browse(self) -> None:
        """The catalogue and a few product pages."""
        self.client.get("/catalogue")
        for product in range(PRODUCTS):
            self.client.get(f"/products/{product}", name="/products/[id]")
        self.interrupt()  # type: ignore[no-untyped-call]


class Checkout(SequentialTaskSet):
    """Nested SequentialTaskSet: basket, payment (always refused), receipt, in this order."""

    @task
    def basket(self) -> None:
        """Put something in the basket."""
        self.client.post("/basket", json={"product": 1})

    @task
    def pay(self) -> None:
        """The payment service is down: 500."""
        self.client.post("/fail-payment", json={"amount": 10})

    @task
    def receipt(self) -> None:
        """A receipt that does not exist (404), then back to the journey."""
        self.client.get("/missing-receipt")
        self.interrupt()  # type: ignore[no-untyped-call]


def leave(journey: SequentialTaskSet) -> None:
    """A plain function as a task: the journey's last step, which counts the iteration."""
    journey.client.get("/goodbye")
    shopper = journey.user
    assert isinstance(shopper, Shopper)
    shopper.journeys_left -= 1


class Journey(SequentialTaskSet):
    """The shopper's journey: catalogue, checkout, goodbye."""

    tasks = [Catalogue, Checkout, leave]  # noqa: RUF012 (Locust declares it so)


class Shopper(HttpUser):
    """Goes on ``ITERATIONS`` journeys, then idles."""

    tasks = [Journey]  # noqa: RUF012 (Locust declares it so)

    journeys_left = ITERATIONS

    def wait_time(self) -> float:
        """A short pause between steps; idle once the journeys are done."""
        return PAUSE_S if self.journeys_left > 0 else IDLE_S

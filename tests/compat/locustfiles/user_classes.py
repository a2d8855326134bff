"""Several user classes: one with ``fixed_count``, two sharing the rest by ``weight``.

With 5 users Locust starts 1 Admin (fixed), then splits the other 4 by weight 3:1: 3 Readers
and 1 Writer (a FastHttpUser). The Readers share an abstract base class. Each user makes
``ITERATIONS`` rounds, then idles.
"""

from __future__ import annotations

from locust import FastHttpUser, HttpUser, task

ITERATIONS = 2
PAUSE_S = 0.01
IDLE_S = 3600.0


class Rounds(HttpUser):
    """Abstract: a user that makes ``ITERATIONS`` rounds, then idles."""

    abstract = True

    rounds_left = ITERATIONS

    def wait_time(self) -> float:
        """A short pause between rounds; idle once they are done."""
        return PAUSE_S if self.rounds_left > 0 else IDLE_S


class Admin(Rounds):
    """Exactly one, whatever the user count."""

    fixed_count = 1

    @task
    def report(self) -> None:
        """The daily report."""
        self.rounds_left -= 1
        self.client.get("/admin/report")


class Reader(Rounds):
    """Three readers for each writer."""

    weight = 3

    @task
    def read(self) -> None:
        """The article list."""
        self.rounds_left -= 1
        self.client.get("/articles")


class Writer(FastHttpUser):
    """Writes an article, then looks for a draft that is not there (404)."""

    weight = 1

    rounds_left = ITERATIONS

    def wait_time(self) -> float:
        """A short pause between rounds; idle once they are done."""
        return PAUSE_S if self.rounds_left > 0 else IDLE_S

    @task
    def write(self) -> None:
        """One article, one missing draft."""
        self.rounds_left -= 1
        self.client.post("/articles", json={"title": "compat"})
        self.client.get("/missing-draft")

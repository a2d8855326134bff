"""Responses validated by the locustfile: ``catch_response`` with HttpUser, ``rest`` with
FastHttpUser.

A 200 whose body says ``"ok": false`` is marked a failure; a 404 the user expects (no avatar
yet) is marked a success; a 500 left unmarked stays a failure; a 200 with a good body, marked
success, is one. FastHttpUser's ``rest`` checks a JSON body the same way.
"""

from __future__ import annotations

from locust import FastHttpUser, HttpUser, task

ITERATIONS = 2
PAUSE_S = 0.01
IDLE_S = 3600.0


class ProfileUser(HttpUser):
    """HttpUser with ``catch_response``."""

    rounds_left = ITERATIONS

    def wait_time(self) -> float:
        """A short pause between rounds; idle once they are done."""
        return PAUSE_S if self.rounds_left > 0 else IDLE_S

    @task
    def profile(self) -> None:
        """Four checked requests."""
        self.rounds_left -= 1
        with self.client.get("/profile", catch_response=True) as response:
            if response.json()["ok"]:
                response.success()
        with self.client.get("/invalid-profile", catch_response=True) as response:
            if not response.json()["ok"]:
                response.failure("the profile says it is not ok")
        with self.client.get("/missing-avatar", catch_response=True) as response:
            if response.status_code == 404:
                response.success()  # no avatar yet: expected
        with self.client.get("/fail-stats", catch_response=True):
            pass  # a 500 left unmarked stays a failure


class OrderUser(FastHttpUser):
    """FastHttpUser with ``rest``."""

    rounds_left = ITERATIONS

    def wait_time(self) -> float:
        """A short pause between rounds; idle once they are done."""
        return PAUSE_S if self.rounds_left > 0 else IDLE_S

    @task
    def order(self) -> None:
        """One good order, one whose confirmation is rejected."""
        self.rounds_left -= 1
        with self.rest("POST", "/orders", json={"item": 1}) as response:
            if response.js is None or not response.js.get("ok"):
                response.failure("order not confirmed")  # type: ignore[no-untyped-call]
        with self.rest("POST", "/invalid-orders", json={"item": 2}) as response:
            if response.js is None or not response.js.get("ok"):
                response.failure("order not confirmed")  # type: ignore[no-untyped-call]

"""The login load test: every user registers its own account, then logs in again and again.

A closed loop with no think time, as a team's login load test does: each simulated user sends its
next login as soon as the previous one has answered. Runs as it is with plain Locust::

    locust -f scenarios/login.py --host http://127.0.0.1:8000

Request names are route templates, so per-endpoint figures group properly.
"""

from __future__ import annotations

import uuid

# a sibling module: Locust puts the locustfile's folder on sys.path while it imports it
from http2_user import FastOrHttp2User
from locust import constant, task

PASSWORD = "load-test-password-1"
REGISTER_ATTEMPTS = 3
"""Registration is retried (a busy service may shed it); every attempt still counts as a request."""
RETRYABLE_STATUSES = frozenset({0, 429, 500, 502, 503, 504})


def new_email(prefix: str) -> str:
    """An address no other user of this or any earlier run has."""
    return f"{prefix}-{uuid.uuid4().hex}@example.com"


class LoginUser(FastOrHttp2User):
    """Registers once, then logs in continuously."""

    wait_time = constant(0)

    def on_start(self) -> None:
        """Register this user's own account (a 409 means it exists: fine for logging in)."""
        self.email = new_email("login")
        for _ in range(REGISTER_ATTEMPTS):
            with self.client.post(
                "/api/auth/register",
                json={"email": self.email, "password": PASSWORD},
                name="/api/auth/register",
                catch_response=True,
            ) as response:
                if response.status_code in (201, 409):
                    response.success()
                    return
                if response.status_code not in RETRYABLE_STATUSES:
                    return

    @task
    def login(self) -> None:
        """Exchange the credentials for a token."""
        self.client.post(
            "/api/auth/login",
            json={"email": self.email, "password": PASSWORD},
            name="/api/auth/login",
        )

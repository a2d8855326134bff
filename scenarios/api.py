"""A realistic mix: log in once, then weighted work on /api/items and /api/auth/me.

A small share of deliberately wrong logins is part of the mix; their 401 ``invalid_credentials``
is the expected outcome, so it counts as a success, not an error. Runs with plain Locust::

    locust -f scenarios/api.py --host http://127.0.0.1:8000
"""

from __future__ import annotations

import random
import uuid

# a sibling module: Locust puts the locustfile's folder on sys.path while it imports it
from http2_user import FastOrHttp2User
from locust import between, task

PASSWORD = "load-test-password-1"
MAX_KNOWN_ITEMS = 50
"""Each user remembers at most this many of its item ids (to read and delete)."""
SETUP_ATTEMPTS = 3
RETRYABLE_STATUSES = frozenset({0, 429, 500, 502, 503, 504})


class ApiUser(FastOrHttp2User):
    """One logged-in client working with its own items."""

    wait_time = between(0.05, 0.25)

    def on_start(self) -> None:
        """Register an account and log in once; the token serves every later request.

        Both are retried a few times when the service sheds them (429, 5xx, no answer): without
        a token every later request would fail as unauthorized and hide the first error. Every
        attempt still counts as a request.
        """
        self.email = f"api-{uuid.uuid4().hex}@example.com"
        self.item_ids: list[int] = []
        self.headers: dict[str, str] = {}
        credentials = {"email": self.email, "password": PASSWORD}
        for _ in range(SETUP_ATTEMPTS):
            with self.client.post(
                "/api/auth/register",
                json=credentials,
                name="/api/auth/register",
                catch_response=True,
            ) as response:
                if response.status_code == 409:
                    # An earlier attempt went through after all: the account exists.
                    response.success()
                if response.status_code not in RETRYABLE_STATUSES:
                    break
        for _ in range(SETUP_ATTEMPTS):
            response = self.client.post("/api/auth/login", json=credentials, name="/api/auth/login")
            if response.status_code == 200:
                token = response.json().get("access_token", "")
                self.headers = {"Authorization": f"Bearer {token}"}
                return
            if response.status_code not in RETRYABLE_STATUSES:
                return

    @task(3)
    def create_item(self) -> None:
        """Create an item and remember its id."""
        with self.client.post(
            "/api/items",
            json={"name": f"item-{uuid.uuid4().hex[:8]}", "description": "made under load"},
            headers=self.headers,
            name="/api/items",
            catch_response=True,
        ) as response:
            if response.status_code == 201:
                self.item_ids.append(int(response.json()["id"]))
                del self.item_ids[:-MAX_KNOWN_ITEMS]

    @task(4)
    def list_items(self) -> None:
        """List the first page of this user's items."""
        self.client.get("/api/items?limit=20", headers=self.headers, name="/api/items")

    @task(4)
    def get_item(self) -> None:
        """Read one of this user's items."""
        if not self.item_ids:
            return
        item_id = random.choice(self.item_ids)
        self.client.get(f"/api/items/{item_id}", headers=self.headers, name="/api/items/{item_id}")

    @task(1)
    def delete_item(self) -> None:
        """Delete the oldest item this user remembers."""
        if not self.item_ids:
            return
        item_id = self.item_ids.pop(0)
        self.client.delete(
            f"/api/items/{item_id}", headers=self.headers, name="/api/items/{item_id}"
        )

    @task(2)
    def me(self) -> None:
        """Who am I?"""
        self.client.get("/api/auth/me", headers=self.headers, name="/api/auth/me")

    @task(1)
    def wrong_login(self) -> None:
        """A login with a wrong password: 401 is the right answer, anything else is an error."""
        with self.client.post(
            "/api/auth/login",
            json={"email": self.email, "password": "not-the-password"},
            name="/api/auth/login",
            catch_response=True,
        ) as response:
            if response.status_code == 401:
                response.success()
            else:
                response.failure(f"expected 401 for a wrong password, got {response.status_code}")

"""A task that raises: the page it parses has no form, so every visit ends in AttributeError.

Written as a careless CSRF-token scraper: the page's request succeeds, then the code reads a
field of a lookup that found nothing. Locust counts the exception (one row: same traceback each
time), prints it and exits 1; no request fails.
"""

from __future__ import annotations

import re

from locust import HttpUser, task

ITERATIONS = 3
PAUSE_S = 0.01
IDLE_S = 3600.0


class Scraper(HttpUser):
    """Fetches a page and reads a token that is not in it."""

    visits_left = ITERATIONS

    def wait_time(self) -> float:
        """A short pause between visits; idle once they are done."""
        return PAUSE_S if self.visits_left > 0 else IDLE_S

    @task
    def visit(self) -> None:
        """The page, then its (absent) CSRF token."""
        self.visits_left -= 1
        page = self.client.get("/login-page")
        token = re.search(r'name="csrf" value="([^"]+)"', page.text)
        self.client.headers["X-CSRF-Token"] = token.group(1)  # type: ignore[union-attr]
        self.client.post("/login", json={"user": "ann"})  # never reached

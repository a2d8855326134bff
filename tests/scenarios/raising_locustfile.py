"""A locustfile for tests whose tasks raise, as a broken locustfile's do.

``LOCUSTFILE_CASE`` (environment) picks the user class: ``all`` (every task raises
AttributeError on a missing attribute, as Locust's examples/csrf_form_authentication.py does
with an absent element: no request is ever sent), ``no_tasks`` (a user class without tasks, as
examples/x-forwarded-for.py), ``some`` (one task raises, the other sends a request). Run by
path.
"""

from __future__ import annotations

import os

from locust import FastHttpUser, constant, task

CASE = os.environ.get("LOCUSTFILE_CASE", "all")


class Page:
    """What a missing form field parses to."""

    form = None


def csrf_token(page: Page) -> str:
    """Reads an attribute of nothing: AttributeError, raised in user code."""
    return str(page.form.token)  # type: ignore[attr-defined]


class BrokenUser(FastHttpUser):
    """Every task raises before sending anything."""

    abstract = CASE != "all"
    wait_time = constant(0.05)

    @task
    def login(self) -> None:
        """Fails to read the form before the login request."""
        token = csrf_token(Page())
        self.client.post("/ok", data={"token": token})


class NoTaskUser(FastHttpUser):
    """A user class without tasks (Locust raises "No tasks defined on NoTaskUser")."""

    abstract = CASE != "no_tasks"
    wait_time = constant(0.05)


class HalfBrokenUser(FastHttpUser):
    """One task raises, the other sends a request."""

    abstract = CASE != "some"
    wait_time = constant(0.02)

    @task
    def browse(self) -> None:
        """A request that succeeds."""
        self.client.get("/ok")

    @task
    def checkout(self) -> None:
        """Raises a KeyError of its own."""
        cart: dict[str, int] = {}
        self.client.get("/ok?cart=" + str(cart["items"]))

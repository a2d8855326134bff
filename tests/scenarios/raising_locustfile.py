"""A locustfile for tests whose tasks raise, as a broken locustfile's do.

``LOCUSTFILE_CASE`` (environment) picks the user class: ``all`` (every task raises
AttributeError on a missing attribute, as Locust's examples/csrf_form_authentication.py does
with an absent element: no request is ever sent), ``no_tasks`` (a user class without tasks, as
examples/x-forwarded-for.py), ``some`` (one task raises, the other sends a request),
``outside_tasks`` (tasks send requests, but a ``test_start`` listener raises ValueError and a
TaskSet's ``on_stop`` RuntimeError), ``shape`` (a LoadTestShape whose ``tick()`` raises
IndexError after its first second). Run by path.
"""

from __future__ import annotations

import os

from locust import FastHttpUser, LoadTestShape, TaskSet, constant, events, task

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


if CASE == "outside_tasks":

    @events.test_start.add_listener  # type: ignore[untyped-decorator]  # Locust's is unannotated
    def set_up(**_kwargs: object) -> None:
        """A test_start hook that fails (in every process that starts the test)."""
        raise ValueError("setup failed")


class BrowseThenFailToLeave(TaskSet):
    """Browses; fails as its user stops."""

    @task
    def browse(self) -> None:
        """A request that succeeds."""
        self.client.get("/ok")

    def on_stop(self) -> None:
        """Raises as the user stops."""
        raise RuntimeError("cannot leave")


class HookedUser(FastHttpUser):
    """Sends requests; the locustfile's hooks around it raise."""

    abstract = CASE != "outside_tasks"
    wait_time = constant(0.05)
    tasks = [BrowseThenFailToLeave]  # noqa: RUF012  # Locust's own attribute, a list


class QuietUser(FastHttpUser):
    """Sends requests while the broken shape lasts."""

    abstract = CASE != "shape"
    wait_time = constant(0.05)

    @task
    def browse(self) -> None:
        """A request that succeeds."""
        self.client.get("/ok")


if CASE == "shape":

    class BrokenShape(LoadTestShape):
        """2 users for its first second, then a stage it does not have."""

        stages = ((2, 10.0),)

        def tick(self) -> tuple[int, float] | None:
            """Users and spawn rate for now; IndexError once the first second is over."""
            run_time = self.get_run_time()  # type: ignore[no-untyped-call]  # Locust's
            return self.stages[0] if run_time < 1 else self.stages[int(run_time)]

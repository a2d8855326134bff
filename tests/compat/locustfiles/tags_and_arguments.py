"""Tags and a locustfile's own command-line argument, the two things passed after ``--``.

Run with a path in ``--host`` too (``http://h/api/v1``): Locust requests every path under it.

``--tags checkout`` leaves only the tagged task; ``--catalogue NAME`` (added through
``init_command_line_parser``) picks the catalogue the checkout requests, so it shows in the
endpoint's name. Without the argument the name says ``/catalogues/unset``; without the tag
filter the untagged and ``browse`` tasks would run too.
"""

from __future__ import annotations

from typing import Any

from locust import HttpUser, events, tag, task

ITERATIONS = 3
PAUSE_S = 0.01
IDLE_S = 3600.0


@events.init_command_line_parser.add_listener  # type: ignore[untyped-decorator]  # Locust's is unannotated
def add_catalogue_argument(parser: Any, **_kwargs: Any) -> None:
    """``--catalogue``: which catalogue the customers order from."""
    parser.add_argument("--catalogue", type=str, default="unset", help="catalogue to order from")


class Customer(HttpUser):
    """Browses, wanders or checks out; ``ITERATIONS`` tasks, then idles."""

    tasks_left = ITERATIONS

    def wait_time(self) -> float:
        """A short pause between tasks; idle once they are done."""
        return PAUSE_S if self.tasks_left > 0 else IDLE_S

    @tag("checkout")
    @task
    def checkout(self) -> None:
        """The catalogue named on the command line, then an order that fails (500)."""
        self.tasks_left -= 1
        catalogue = self.environment.parsed_options.catalogue
        self.client.get(f"/catalogues/{catalogue}")
        self.client.post("/fail-order", json={"catalogue": catalogue})

    @tag("browse")
    @task
    def browse(self) -> None:
        """Not run with ``--tags checkout``."""
        self.tasks_left -= 1
        self.client.get("/browse")

    @task
    def wander(self) -> None:
        """Untagged: not run with any ``--tags``."""
        self.tasks_left -= 1
        self.client.get("/wander")

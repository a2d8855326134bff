"""The simplest case every load tool supports: hit one URL, again and again.

``--url-path`` (default ``/``) is the path and query on ``--host``; the request is named after it.
``loadkit load http://host/path`` runs this scenario. With plain Locust::

    locust -f scenarios/url.py --host http://127.0.0.1:8080 --url-path /index.html
"""

from __future__ import annotations

from typing import Any

from locust import FastHttpUser, constant, events, task

DEFAULT_PATH = "/"


@events.init_command_line_parser.add_listener
def _add_arguments(parser: Any, **_kwargs: Any) -> None:
    parser.add_argument(
        "--url-path",
        default=DEFAULT_PATH,
        help="Path (and query) to request on --host (default /).",
        env_var="LOCUST_URL_PATH",
    )


class UrlUser(FastHttpUser):
    """GETs one URL in a closed loop with no think time."""

    wait_time = constant(0)

    def on_start(self) -> None:
        """Read the path once: it does not change during a run."""
        options = self.environment.parsed_options
        path = getattr(options, "url_path", None) or DEFAULT_PATH
        self.path = path if path.startswith("/") else f"/{path}"

    @task
    def get(self) -> None:
        """One GET of the URL."""
        self.client.get(self.path, name=self.path)

"""The simplest case every load tool supports: hit one URL, again and again.

``--url-path`` (default ``/``) is the path and query on ``--host``; the request is named after it.
``--url-method`` (default GET), ``--url-header 'Name: value'`` (repeatable) and ``--url-body``
(text) or ``--url-body-file`` (a file's bytes) shape the request. ``loadkit load
http://host/path`` runs this scenario (``--method``, ``--header``, ``--body`` become these).
The URL is hit as it is, as wrk does: a redirect is a response like any other (never followed),
and the response is asked uncompressed (``Accept-Encoding: identity``, where FastHttpUser would
ask for gzip) unless a header says otherwise, so that the target does the same work for this
scenario as for loadkit's native engine. With plain Locust::

    locust -f scenarios/url.py --host http://127.0.0.1:8080 --url-path /index.html
    locust -f scenarios/url.py --host http://127.0.0.1:8080 --url-path /items \\
        --url-method POST --url-header 'Content-Type: application/json' --url-body '{"a": 1}'

Each option has a variable too (``LOCUST_URL_PATH``, ``LOCUST_URL_METHOD``,
``LOCUST_URL_HEADER``, ``LOCUST_URL_BODY``), which loadkit uses for the path, headers and body:
a process's command line is readable by every user of the machine (``ps``), its environment by
its own user alone. ``LOCUST_URL_HEADER`` holds one header or a JSON list of them::

    LOCUST_URL_HEADER='["Authorization: Bearer s3cret", "Accept: application/json"]' \\
        locust -f scenarios/url.py --host http://127.0.0.1:8080 --url-path /private
"""

from __future__ import annotations

from typing import Any

# a sibling module: Locust puts the locustfile's folder on sys.path while it imports it
from http2_user import FastOrHttp2User
from locust import constant, events, task

DEFAULT_PATH = "/"
DEFAULT_METHOD = "GET"


@events.init_command_line_parser.add_listener
def _add_arguments(parser: Any, **_kwargs: Any) -> None:
    parser.add_argument(
        "--url-path",
        default=DEFAULT_PATH,
        help="Path (and query) to request on --host (default /).",
        env_var="LOCUST_URL_PATH",
    )
    parser.add_argument(
        "--url-method",
        default=DEFAULT_METHOD,
        help="HTTP method of the request (default GET).",
        env_var="LOCUST_URL_METHOD",
    )
    parser.add_argument(
        "--url-header",
        action="append",
        default=None,
        help="A header of the request, 'Name: value' (repeatable; the variable: one header "
        "or a JSON list of them).",
        # configargparse gives an append option one value per item of a JSON list.
        env_var="LOCUST_URL_HEADER",
    )
    parser.add_argument(
        "--url-body",
        default=None,
        help="The request's body, as text (UTF-8).",
        env_var="LOCUST_URL_BODY",
    )
    parser.add_argument(
        "--url-body-file", default=None, help="The request's body: this file's bytes."
    )


def _headers(lines: list[str] | None) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in lines or ():
        name, sep, value = line.partition(":")
        if not sep or not name.strip():
            raise ValueError(f"--url-header {line!r}: must look like 'Name: value'")
        headers[name.strip()] = value.strip()
    return headers


class UrlUser(FastOrHttp2User):
    """Sends one request to one URL in a closed loop with no think time."""

    wait_time = constant(0)

    def on_start(self) -> None:
        """Read the request once: it does not change during a run."""
        options = self.environment.parsed_options
        path = getattr(options, "url_path", None) or DEFAULT_PATH
        self.path = path if path.startswith("/") else f"/{path}"
        self.method = (getattr(options, "url_method", None) or DEFAULT_METHOD).upper()
        self.headers = _headers(getattr(options, "url_header", None))
        if not any(name.lower() == "accept-encoding" for name in self.headers):
            self.headers["Accept-Encoding"] = "identity"
        body_file = getattr(options, "url_body_file", None)
        body_text = getattr(options, "url_body", None)
        if body_file:
            with open(body_file, "rb") as file:
                self.body: bytes | None = file.read()
        else:
            self.body = body_text.encode() if body_text is not None else None

    @task
    def send(self) -> None:
        """One request to the URL."""
        self.client.request(
            self.method,
            self.path,
            name=self.path,
            headers=self.headers,
            data=self.body,
            allow_redirects=False,
        )

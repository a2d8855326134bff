"""The target's password in Locust's web UI: shown masked, sent as given.

Locust's web UI shows its host (``environment.host``) in its header, in the start form's "Host"
field, in the ``/swarm`` answer, in its own HTML report and in the names of the files it offers
for download. Locust serves the page with the host in it, so masking it in the browser would
be too late: the password must never leave Locust's process. Two hooks on the UI's Flask app
do it, and neither changes what the users send:

- every answer the UI gives (pages, JSON, CSV, their headers) has the user info of a host with a
  password replaced by its masked form (``bob:Pa55word@`` → ``bob:***@``), also where the page
  quotes it JSON- or HTML-escaped;
- a start (``POST /swarm``) whose "Host" is a masked form the UI showed is taken as the host it
  masked, password and all: a user who leaves the field as shown tests what loadkit was given;
  one who adds a path or a query to it keeps that user's password on that scheme, host and port
  (``url_credentials.unmask``). A host typed in with its own password is used as typed (and
  shown masked from then on); one typed with ``***`` as its password for a user, host, port or
  scheme the UI never showed is used as typed too.

Files the UI sends as they are (loadkit's results and report, already masked; Locust's static
assets) are left alone. Flask and Werkzeug, which Locust serves the UI with, are imported
inside the hooks, in Locust's process.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

from loadkit.url_credentials import has_password, unmask, userinfo

SWARM_ROUTE = "/swarm"

_TEXT_TYPES = ("text/", "application/json", "application/javascript")


def _encodings() -> tuple[Callable[[str], str], ...]:
    """The ways a page or a JSON answer of the UI can quote a URL, each made by the library
    that writes it, so that a change in one cannot let a password through unmasked: Flask's
    JSON (``jsonify``: the app's JSON provider, within a request), its ``tojson`` filter
    (Jinja's ``htmlsafe_json_dumps`` with the app's JSON policies, as the filter calls it),
    Jinja's autoescape (``markupsafe.escape``) and the standard library's ``html.escape``."""
    from flask import current_app, has_app_context
    from flask import json as flask_json
    from jinja2.utils import htmlsafe_json_dumps
    from markupsafe import escape

    dumps: Callable[..., str] = flask_json.dumps
    options: dict[str, Any] = {}
    if has_app_context():
        policies = current_app.jinja_env.policies
        dumps, options = policies["json.dumps_function"], policies["json.dumps_kwargs"]

    def inside(quoted: str) -> str:
        return quoted[1:-1]  # a JSON string without its quotes: the URL is part of a value

    return (
        lambda text: text,
        lambda text: inside(flask_json.dumps(text)),
        lambda text: inside(flask_json.dumps(text, ensure_ascii=False)),
        lambda text: inside(str(htmlsafe_json_dumps(text, dumps=dumps, **options))),
        html.escape,
        lambda text: str(escape(text)),
    )


def mask_hosts(text: str, hosts: list[str]) -> str:
    """``text`` with the user info of each of ``hosts`` that has a password replaced by its
    masked form (``bob:***@``), as written and in each of ``_encodings()``."""
    pairs: dict[str, str] = {}
    encodings = _encodings()
    for host in hosts:
        found = userinfo(host)
        if found is None:
            continue
        secret, masked = found
        for encode in encodings:
            pairs[encode(secret)] = encode(masked)
    # Longest first: a user info that contains another is masked whole.
    for secret in sorted(pairs, key=len, reverse=True):
        text = text.replace(secret, pairs[secret])
    return text


class WebUiHost:
    """The hosts with a password that the UI has had (the one loadkit gave first), for
    masking what it shows and for taking a masked form posted back as the host it masked."""

    def __init__(self, environment: Any) -> None:
        """``environment``: Locust's, whose ``host`` the UI shows and sets."""
        self._environment = environment
        self.known: list[str] = []
        self._remember()

    def _remember(self) -> None:
        host = self._environment.host
        if isinstance(host, str) and has_password(host) and host not in self.known:
            self.known.append(host)

    def install(self, web_ui: Any) -> None:
        """The hooks on ``web_ui`` (Locust's ``WebUI``). Install before any other hook that
        rewrites answers: Flask runs ``after_request`` hooks last-registered first, and the
        masking must see what they added."""
        web_ui.app.before_request(self.restore_posted_host)
        web_ui.app.after_request(self.mask_answer)

    def restore_posted_host(self) -> None:
        """A start whose "Host" is a masked form the UI showed: the host it masked."""
        from flask import request
        from werkzeug.datastructures import ImmutableMultiDict

        if request.method != "POST" or not request.path.endswith(SWARM_ROUTE):
            return
        shown = request.form.get("host")
        if shown is None:
            return
        host = unmask(shown, self.known)
        if host == shown:
            return
        items = [(key, host if key == "host" else value) for key, value in request.form.items(True)]
        # Werkzeug's form is a cached property that may be set: Locust's view reads this one.
        request.form = ImmutableMultiDict(items)

    def mask_answer(self, response: Any) -> Any:
        """``response`` with every known password masked in its text and headers."""
        self._remember()  # a host typed into the form with its own password
        if not self.known:
            return response
        for name, value in list(response.headers.items()):
            masked = mask_hosts(value, self.known)
            if masked != value:
                response.headers[name] = masked
        if response.direct_passthrough or response.is_streamed:
            return response  # a file sent as it is (loadkit's masked results, static assets)
        if not (response.mimetype or "").startswith(_TEXT_TYPES):
            return response
        text = response.get_data(as_text=True)
        masked = mask_hosts(text, self.known)
        if masked != text:
            response.set_data(masked)
        return response

"""Locust's web UI never sends a target's password to the browser, and a start with the host
field left as shown tests the host loadkit was given, password and all.

The plugin's hooks (``plugin/web_ui_host.py``) run here on a plain Flask app that quotes the
host as Locust's UI does (its page through ``tojson``, its report HTML-escaped, its ``/swarm``
answer as JSON, a download's file name in a header): no Locust is started or imported.
"""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from flask import Flask, jsonify, make_response, render_template_string, request

from loadkit.engines.locust.plugin.web_ui_host import WebUiHost, mask_hosts

HOST = "http://bob:p&ss'w<rd@127.0.0.1:8000/v2"
SHOWN = "http://bob:***@127.0.0.1:8000/v2"
PAGE = "<script>window.templateArgs = {{ args|tojson }}</script><p>Target: {{ host }}</p>"


def ui_app(environment: Any) -> Flask:
    """Locust's UI in miniature: what it answers quotes ``environment.host``."""
    app = Flask("ui")

    @app.route("/")
    def index() -> str:
        host = environment.host
        return render_template_string(PAGE, args={"host": host}, host=host)

    @app.route("/swarm", methods=["POST"])
    def swarm() -> Any:
        environment.host = request.form["host"]  # as Locust's view does
        environment.users = request.form["user_count"]
        return jsonify({"success": True, "host": environment.host})

    @app.route("/stats/report")
    def report() -> Any:
        response = make_response(render_template_string("<p>{{ host }}</p>", host=environment.host))
        response.headers["Content-Disposition"] = f"attachment;filename=Locust_{environment.host}"
        return response

    return app


@pytest.fixture
def ui() -> Iterator[tuple[Any, Any]]:
    environment = SimpleNamespace(host=HOST, users=None)
    app = ui_app(environment)
    WebUiHost(environment).install(SimpleNamespace(app=app))
    yield environment, app.test_client()


def test_no_answer_of_the_ui_carries_the_password(ui: tuple[Any, Any]) -> None:
    _, client = ui
    page = client.get("/")
    assert "p&ss" not in page.text and "p\\u0026ss" not in page.text
    assert "p&amp;ss" not in page.text
    assert "bob:***@127.0.0.1:8000/v2" in page.text
    report = client.get("/stats/report")
    assert "p&" not in report.text and "bob:***@" in report.text
    assert report.headers["Content-Disposition"].endswith(SHOWN)


def test_the_host_left_as_shown_is_the_host_with_its_password(ui: tuple[Any, Any]) -> None:
    environment, client = ui
    answer = client.post("/swarm", data={"host": SHOWN, "user_count": "3"})
    assert environment.host == HOST and environment.users == "3"
    assert answer.json["host"] == SHOWN


def test_a_host_typed_with_its_own_password_is_used_and_masked_from_then_on(
    ui: tuple[Any, Any],
) -> None:
    environment, client = ui
    typed = "http://eve:S3cret@127.0.0.1:9000"
    assert client.post("/swarm", data={"host": typed, "user_count": "1"}).json["host"] == (
        "http://eve:***@127.0.0.1:9000"
    )
    assert environment.host == typed and "S3cret" not in client.get("/").text
    # Left as shown next time: the typed host, not the one loadkit started with.
    client.post("/swarm", data={"host": "http://eve:***@127.0.0.1:9000", "user_count": "1"})
    assert environment.host == typed
    # A *** password the UI never showed for that host is the user's own.
    client.post("/swarm", data={"host": "http://al:***@127.0.0.1:9000", "user_count": "1"})
    assert environment.host == "http://al:***@127.0.0.1:9000"


def test_a_host_without_password_is_left_alone() -> None:
    assert mask_hosts("http://h/ and http://bob@h/", ["http://h/", "http://bob@h/"]) == (
        "http://h/ and http://bob@h/"
    )


def test_the_page_is_masked_however_the_apps_json_writes_the_host() -> None:
    # The encodings come from the libraries that write the page: an app whose JSON keeps
    # non-ASCII text as it is (a setting or a library's default) quotes the password otherwise
    # than the standard json module does, and still shows it masked.
    host = "http://bob:pässw<rd@127.0.0.1:8000/v2"
    environment = SimpleNamespace(host=host, users=None)
    app = ui_app(environment)
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    WebUiHost(environment).install(SimpleNamespace(app=app))
    page = app.test_client().get("/")
    assert "päss" not in page.text and "p\\u00e4ss" not in page.text, page.text
    assert page.text.count("bob:***@127.0.0.1:8000/v2") == 2


def test_the_host_shown_with_a_path_added_keeps_its_password(ui: tuple[Any, Any]) -> None:
    environment, client = ui
    client.post("/swarm", data={"host": SHOWN + "/orders?x=1", "user_count": "2"})
    assert environment.host == HOST + "/orders?x=1"

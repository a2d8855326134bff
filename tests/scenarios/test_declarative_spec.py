"""What ``scenarios/declarative.py`` sends for a declarative scenario, and what fails a response:
the description read (``declarative_spec``, no Locust), each request filled in for one user."""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qs

import pytest

from loadkit.config import parse_config, parse_toml
from loadkit.engines.declarative import describe
from scenarios.declarative_spec import Setup, Values, judge, parse_scenario, prepare, weighted

ACCEPTANCE = """
[scenarios.shop]
[[scenarios.shop.setup]]
name = "sign in"
method = "POST"
path = "/sessions"
form = { client = "load", secret = "${SHOP_SECRET}", remember = true }
expect_status = 200
save = { token = "data.jwt", user = "data.user" }

[[scenarios.shop.requests]]
method = "POST"
path = "/carts/{user}/lines"
headers = { Authorization = "Token {token}" }
json = { user = "{user}", note = "for {user}", id = "{uuid}", qty = 2 }
expect_status = [200, 201]
save = { line = "line.id" }

[[scenarios.shop.requests]]
path = "/lines/{line}"
query = { full = true, who = "{user}" }
expect_status = 200
weight = 3
"""
ENV = {"SHOP_SECRET": "p&ss word"}


def _scenario(environ: dict[str, str] = ENV) -> Any:
    config = parse_config(parse_toml(ACCEPTANCE, source="a.toml"), source="a.toml")
    return parse_scenario(describe("shop", config.scenarios["shop"], ENV), environ)


def _signed_in() -> Values:
    values = Values(ENV)
    values.saved |= {"token": "jwt-1", "user": 42}
    return values


def test_a_form_is_encoded_with_the_secret_from_the_environment() -> None:
    (login,) = _scenario().setup
    sent = prepare(login, Values(ENV))
    assert (sent.method, sent.path) == ("POST", "/sessions")
    assert sent.headers == {"Content-Type": "application/x-www-form-urlencoded"}
    form = parse_qs(sent.body["data"].decode())
    assert form == {"client": ["load"], "secret": ["p&ss word"], "remember": ["true"]}


def test_saved_values_fill_path_headers_and_json_keeping_their_type() -> None:
    create, _ = _scenario().requests
    sent = prepare(create, _signed_in())
    assert sent.path == "/carts/42/lines"
    assert sent.headers == {"Authorization": "Token jwt-1"}
    body = sent.body["json"]
    assert (body["user"], body["note"], body["qty"]) == (42, "for 42", 2)
    assert len(body["id"]) == 36 and body["id"] != prepare(create, _signed_in()).body["json"]["id"]


def test_the_query_is_encoded_onto_the_path() -> None:
    _, read = _scenario().requests
    values = _signed_in()
    values.saved["line"] = "L/7"
    assert prepare(read, values).path == "/lines/L/7?full=true&who=42"


def test_a_status_not_expected_or_a_value_not_in_the_body_fails_without_values_in_the_words() -> (
    None
):
    (login,) = _scenario().setup
    values = Values(ENV)
    assert judge(login, 401, b'{"data": {}}', values) == "expected status 200, got 401"
    missing = judge(login, 200, b'{"data": {"jwt": "jwt-9"}}', values)
    assert missing == "cannot save user: `data.user` is not in the body"
    assert "token" not in values.saved  # nothing saved from a response that failed
    assert judge(login, 200, b"<html>", values) == "cannot save token, user: the body is not JSON"
    assert judge(login, 200, json.dumps({"data": {"jwt": "j", "user": 7}}).encode(), values) is None
    assert (values.saved["token"], values.saved["user"]) == ("j", 7)


def test_the_mix_waits_for_its_values_then_follows_the_weights() -> None:
    requests = _scenario().requests
    first, cumulative = weighted(requests, frozenset({"token", "user"}))
    assert [r.path for r in first] == ["/carts/{user}/lines"] and cumulative == [1]
    both, cumulative = weighted(requests, frozenset({"token", "user", "line"}))
    assert [r.weight for r in both] == [1, 3] and cumulative == [1, 4]
    picks = Counter(r.path for r in random.Random(7).choices(both, cum_weights=cumulative, k=4000))
    assert 2.6 < picks["/lines/{line}"] / picks["/carts/{user}/lines"] < 3.4


def test_a_secret_missing_where_the_scenario_runs_is_named() -> None:
    with pytest.raises(ValueError, match="SHOP_SECRET is not set"):
        _scenario(environ={})
    with pytest.raises(ValueError, match=r"format must be 'loadkit\.declarative/1'"):
        parse_scenario('{"setup": [], "requests": []}', ENV)


def test_a_secret_holding_a_line_break_is_refused_naming_the_variable_not_the_value() -> None:
    # A token read from a file or a k8s secret often ends in a newline: no header can carry it.
    me = {"name": "me", "path": "/me", "headers": {"A": "Bearer ${TOKEN}"}, "statuses": [200]}
    spec = {"format": "loadkit.declarative/1", "setup": [], "requests": [me]}
    with pytest.raises(ValueError) as refused:
        parse_scenario(json.dumps(spec), {"TOKEN": "Tok987\n"})
    message = str(refused.value)
    assert "variable TOKEN holds a line break" in message and "Tok987" not in message
    # Encoded into a form, a line break is sent as %0A: that secret is kept.
    assert _scenario(environ={"SHOP_SECRET": "two\nlines"}).setup


def test_a_setup_that_failed_goes_on_from_the_step_that_failed() -> None:
    # register passes, login fails once: the retry logs in, it never registers again (a 409).
    register, login = (replace(_scenario().setup[0], name=name) for name in ("register", "login"))
    outcomes = iter([True, False, True])
    sent: list[str] = []

    def send(step: Any) -> bool:
        sent.append(step.name)
        return next(outcomes)

    setup = Setup((register, login))
    assert setup.run(send) is False and not setup.finished
    assert setup.run(send) is True and setup.finished
    assert setup.run(send) is True
    assert sent == ["register", "login", "login"]

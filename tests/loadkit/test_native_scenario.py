"""A declarative scenario on the native engine, without a network: each request's bytes are what
the Locust path sends for it (``scenarios/declarative_spec.prepare``), and each user's state
machine (setup retried from the step that failed, values waited for, weights) is the Locust
user's."""

from __future__ import annotations

import json
import random
from collections import Counter
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

from loadkit.config import parse_config, parse_toml
from loadkit.engines.declarative import describe
from loadkit.engines.native.request_template import UnsendableValue
from loadkit.engines.native.scenario import (
    CompiledScenario,
    ScenarioCall,
    ScenarioUser,
    compile_scenario,
    judge,
)
from loadkit.engines.target import scenario_base_path, scenario_target
from loadkit.exceptions import ConfigError
from scenarios.declarative_spec import Values, parse_scenario, prepare

SHOP = """
[scenarios.shop]
[[scenarios.shop.setup]]
name = "sign in"
method = "POST"
path = "/sessions"
form = { client = "load", secret = "${SHOP_SECRET}", remember = true, n = 3 }
expect_status = 200
save = { token = "data.jwt", user = "data.user" }

[[scenarios.shop.setup]]
name = "profile"
path = "/users/{user}"
headers = { Authorization = "Token {token}" }
expect_status = 200
save = { cart = "cart" }

[[scenarios.shop.requests]]
method = "POST"
path = "/carts/{cart}/lines"
headers = { Authorization = "Token {token}", X-Client = "${SHOP_SECRET}" }
json = { user = "{user}", note = "for {user}", tags = ["a", "{token}"], qty = 2, gift = false }
expect_status = [200, 201]
save = { line = "line.id" }
weight = 1

[[scenarios.shop.requests]]
path = "/lines/{line}"
query = { full = true, who = "{user}", page = 2, q = "a b&c" }
expect_status = 200
weight = 3

[[scenarios.shop.requests]]
name = "catalogue"
path = "/catalogue?lang=en"
query = { q = "x" }
expect_status = [200, 404]
weight = 6
"""
ENV = {"SHOP_SECRET": "p&ss wörd"}
HOST = "api.test:8080"


def _description(toml: str = SHOP, environ: dict[str, str] = ENV) -> str:
    config = parse_config(parse_toml(toml, source="a.toml"), source="a.toml")
    (name,) = config.scenarios
    return describe(name, config.scenarios[name], environ)


def _compiled(trace_header: str = "traceparent") -> CompiledScenario:
    return compile_scenario(_description(), ENV, host=HOST, trace_header=trace_header)


def _parse(payload: bytes) -> tuple[str, str, dict[str, str], bytes]:
    head, _, body = payload.partition(b"\r\n\r\n")
    line, *lines = head.decode("latin-1").split("\r\n")
    method, target, version = line.split(" ")
    assert version == "HTTP/1.1"
    headers = dict(h.split(": ", 1) for h in lines)
    assert int(headers.pop("Content-Length", len(body))) == len(body)
    return method, target, headers, body


IDS = b"0123456789abcdef0123456789abcdef" + b"fedcba9876543210"
SAVED: dict[str, Any] = {"token": "jwt-1", "user": 42, "cart": "c/7", "line": 9}


@pytest.mark.parametrize("index", range(5))
def test_every_request_is_sent_as_the_locust_path_prepares_it(index: int) -> None:
    native = _compiled()
    locust = parse_scenario(_description(), ENV)
    ours = [*native.setup, *native.requests][index]
    theirs = [*locust.setup, *locust.requests][index]
    values = Values(ENV)
    values.saved |= SAVED
    user = ScenarioUser(native, random.Random(1))
    user.values |= values.saved

    method, target, headers, body = _parse(ours.template.render(user.values, IDS)[0])
    sent = prepare(theirs, values)
    assert (method, unquote(target)) == (sent.method, unquote(sent.path))
    assert headers.pop("Host") == HOST and headers.pop("User-Agent") == "loadkit-native"
    assert headers.pop("traceparent") == f"00-{IDS[:32].decode()}-{IDS[32:].decode()}-01"
    if "json" in sent.body:
        # What FastHttpSession sends for json=: json.dumps, typed as JSON.
        assert body == json.dumps(sent.body["json"]).encode()
        assert json.loads(body)["user"] == 42 and json.loads(body)["tags"] == ["a", "jwt-1"]
        assert (headers.pop("Content-Type"), headers.pop("Accept")) == ("application/json",) * 2
    else:
        assert body == sent.body.get("data", b"")
    assert headers == sent.headers
    assert ours.endpoint == f"{sent.method} {theirs.name}"


@pytest.mark.parametrize(
    "host",
    [
        "http://api.test:8080",
        "http://api.test:8080/",
        "http://api.test:8080/v2",
        "http://api.test:8080/v2/",
        "http://u:p@api.test/a;b/c",
    ],
)
def test_a_target_with_a_path_is_requested_below_it_as_the_locust_path_requests_it(
    host: str,
) -> None:
    # What FastHttpSession requests for a relative path: the URL ``--host + path`` (its
    # _build_url), sent as geventhttpclient's request URI of it; loadkit gives Locust the
    # scenario's target as --host (tests/loadkit/test_declarative_host.py runs both).
    from geventhttpclient.url import URL

    native = compile_scenario(_description(), ENV, host=HOST, base_path=scenario_base_path(host))
    locust = parse_scenario(_description(), ENV)
    values = Values(ENV)
    values.saved |= SAVED
    user = ScenarioUser(native, random.Random(1))
    user.values |= values.saved
    for ours, theirs in zip(
        [*native.setup, *native.requests], [*locust.setup, *locust.requests], strict=True
    ):
        _, target, _, _ = _parse(ours.template.render(user.values, IDS)[0])
        sent = URL(scenario_target(host) + prepare(theirs, values).path)
        assert unquote(target) == unquote(sent.request_uri)
        assert target.startswith(urlsplit(host).path.rstrip("/") + "/")
        assert "//" not in target


def test_constant_parts_are_encoded_once_and_only_the_ids_change() -> None:
    scenario = _compiled()
    catalogue = scenario.requests[2]
    first, at = catalogue.template.render({}, IDS)
    second, _ = catalogue.template.render({}, IDS[::-1])
    assert first.replace(IDS[:32], b"").replace(IDS[32:], b"") == second.replace(
        IDS[::-1][:32], b""
    ).replace(IDS[::-1][32:], b"")
    # The path already has a query: the scenario's query follows it with '&'.
    assert first.startswith(b"GET /catalogue?lang=en&q=x HTTP/1.1\r\n")
    assert first[at : at + 32] == IDS[:32]
    # Secrets are read once and folded in; they never need a value of the user's.
    sign_in = scenario.setup[0]
    assert sign_in.needs == frozenset()
    assert b"secret=p%26ss+w%C3%B6rd" in sign_in.template.render({}, IDS)[0]


def test_another_trace_header_carries_the_trace_id_alone() -> None:
    scenario = _compiled(trace_header="X-Request-Id")
    payload, at = scenario.requests[1].template.render(SAVED, IDS)
    _, _, headers, _ = _parse(payload)
    assert headers["X-Request-Id"] == IDS[:32].decode() and "traceparent" not in headers
    assert payload[at : at + 32] == IDS[:32]


def test_fresh_values_are_new_at_each_request() -> None:
    toml = """
[scenarios.fresh]
[[scenarios.fresh.requests]]
method = "POST"
path = "/accounts/{uuid}"
json = { email = "{new_email}" }
expect_status = 201
"""
    call = compile_scenario(_description(toml, {}), {}, host=HOST).requests[0]
    assert call.needs == frozenset()
    bodies = {call.template.render({}, IDS)[0] for _ in range(3)}
    assert len(bodies) == 3


def test_a_secret_no_header_can_carry_is_refused_before_the_run_without_its_value() -> None:
    with pytest.raises(ConfigError) as refused:
        compile_scenario(_description(), {"SHOP_SECRET": "wörd€"}, host=HOST)
    message = str(refused.value)
    assert "requests[0] (/carts/{cart}/lines): header X-Client" in message
    assert "Latin-1" in message and "wörd€" not in message
    with pytest.raises(ConfigError, match="SHOP_SECRET is not set"):
        compile_scenario(_description(), {}, host=HOST)


def test_a_saved_value_with_a_line_break_is_never_put_in_a_header() -> None:
    call = _compiled().setup[1]
    with pytest.raises(UnsendableValue, match="header Authorization") as refused:
        call.template.render({**SAVED, "token": "a\r\nX-Evil: 1"}, IDS)
    assert "X-Evil" not in str(refused.value)


# --- the user's state machine ---------------------------------------------------------------


def _respond(user: ScenarioUser, call: ScenarioCall, status: int, document: object) -> bool:
    passed = judge(call, status, json.dumps(document).encode(), user.values) is None
    return passed


def test_a_failed_setup_step_is_sent_again_at_the_next_iteration_keeping_what_passed() -> None:
    scenario = _compiled()
    user = ScenarioUser(scenario, random.Random(1))
    sign_in, profile = scenario.setup
    assert user.first() is sign_in
    assert _respond(user, sign_in, 200, {"data": {"jwt": "t1", "user": 7}})
    assert user.after(sign_in, True) is profile  # the same iteration goes on
    assert not _respond(user, profile, 503, {"error": {"kind": "overloaded"}})
    assert user.after(profile, False) is None  # the iteration ends there
    # The next iteration sends the step that failed, not the sign-in again, nor the mix.
    assert user.first() is profile and user.values["token"] == "t1"
    assert _respond(user, profile, 200, {"cart": "c1"})
    assert user.after(profile, True) is None and user.set_up
    # Then one request of the mix per iteration, never a setup step again.
    for _ in range(20):
        call = user.first()
        assert call.setup_index is None and user.after(call, True) is None


def test_a_request_waits_for_the_value_it_needs_and_weights_choose_the_rest() -> None:
    scenario = _compiled()
    user = ScenarioUser(scenario, random.Random(7))
    user.done = len(scenario.setup)
    user.values |= {"token": "t", "user": 1, "cart": "c"}
    add, line, catalogue = scenario.requests
    before = Counter(user.first().endpoint for _ in range(7000))
    # /lines/{line} needs a line no request has saved yet: weights 1 and 6 share the draws.
    assert set(before) == {add.endpoint, catalogue.endpoint}
    assert 5.0 < before[catalogue.endpoint] / before[add.endpoint] < 7.2
    assert _respond(user, add, 201, {"line": {"id": 5}}) and user.values["line"] == 5
    after = Counter(user.first().endpoint for _ in range(10000))
    assert 0.27 < after[line.endpoint] / 10000 < 0.33  # weight 3 of 10


def test_a_response_is_judged_by_its_own_statuses_and_saves_all_or_nothing() -> None:
    scenario = _compiled()
    sign_in = scenario.setup[0]
    catalogue = scenario.requests[2]
    values: dict[str, Any] = {}
    assert judge(catalogue, 404, b"", values) is None  # a 404 this request expects passes
    assert judge(sign_in, 201, b"{}", values) == "expected status 200, got 201"
    missing = judge(sign_in, 200, b'{"data": {"jwt": "t"}}', values)
    assert missing == "cannot save user: `data.user` is not in the body"
    assert values == {}  # the token found is not kept either
    assert judge(sign_in, 200, b"<html>", values) == "cannot save token, user: the body is not JSON"

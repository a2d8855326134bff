"""The pure parts of smoke flows: templates and secrets, expectations, and how checks written
before flows become one."""

from __future__ import annotations

import re
from typing import Any

import httpx
import orjson
import pytest

from loadkit.config import DEFAULT_SMOKE_SETUP, SmokeCheck, SmokeConfig, SmokeRequest
from loadkit.engines.expectations import Response, first_failure
from loadkit.engines.smoke_flow import BEARER, plan_flow
from loadkit.engines.templates import Secrets, render, render_json

NO_SECRETS = Secrets({})


def test_a_json_placeholder_alone_keeps_its_type_and_secrets_fill_in() -> None:
    values = {"item_id": 42, "tags": ["a"]}
    secrets = Secrets({"API_KEY": "k-123"})
    body = {"id": "{item_id}", "label": "item {item_id}", "key": "${API_KEY}", "t": "{tags}"}
    assert render_json(body, values, secrets) == {
        "id": 42,
        "label": "item 42",
        "key": "k-123",
        "t": ["a"],
    }
    assert render("/items/{item_id}?tags={tags}", values, secrets) == '/items/42?tags=["a"]'


def test_masking_hides_the_longest_secret_whole() -> None:
    secrets = Secrets({"SHORT": "abc", "LONG": "abcdef"})
    assert secrets.mask("got abcdef and abc") == "got ${LONG} and ${SHORT}"


def test_masking_hides_a_secret_encoded_in_a_query_or_escaped_in_a_message() -> None:
    key = "ab+c/d== it's\\x"
    secrets = Secrets({"API_KEY": key})
    query = str(httpx.QueryParams({"key": key}))
    assert secrets.mask(f"/items?{query}") == "/items?key=${API_KEY}"
    assert key not in secrets.mask(repr(key)) and "${API_KEY}" in secrets.mask(repr(key))
    json_text = orjson.dumps({"key": key}).decode()
    assert secrets.mask(json_text) == '{"key":"${API_KEY}"}'


def judged(
    expect: list[dict[str, Any]], body: object, headers: dict[str, str] | None = None
) -> str | None:
    request = SmokeRequest.model_validate(
        {"name": "x", "path": "/", "expect_status": 200, "expect": expect}
    )
    response = Response(200, headers or {}, orjson.dumps(body), 1.0)
    failure = first_failure(request, response, {}, NO_SECRETS)
    return failure.message if failure is not None else None


def test_a_saved_value_in_a_pattern_is_matched_as_written_never_as_a_regex() -> None:
    # A server sent "a(b" (or a pattern that backtracks for ever): it is a literal in the pattern.
    request = SmokeRequest.model_validate(
        {"name": "x", "path": "/", "expect_status": 200, "expect": [
            {"body": "echo", "matches": "^{sent}$"}
        ]}
    )  # fmt: skip
    ok = Response(200, {}, orjson.dumps({"echo": "a(b"}), 1.0)
    assert first_failure(request, ok, {"sent": "a(b"}, NO_SECRETS) is None
    other = Response(200, {}, orjson.dumps({"echo": "ab"}), 1.0)
    failure = first_failure(request, other, {"sent": "a(b"}, NO_SECRETS)
    pattern = "^" + re.escape("a(b") + "$"
    assert failure is not None and failure.expected == f"to match {pattern!r}"


@pytest.mark.parametrize(
    ("expect", "body", "message"),
    [
        ({"body": "a", "equals": 1}, {"a": 1.0}, None),  # JSON has one number type
        ({"body": "a", "equals": 1}, {"a": True}, "body `a`: expected 1, got true"),
        ({"body": "a", "matches": "^4"}, {"a": 42}, None),  # a number matched as written
        ({"body": "a", "le": 3}, {"a": "2.5"}, None),  # a number sent as a string
        ({"body": "a", "ge": 3}, {"a": "many"}, "body `a`: expected ≥ 3, got 'many'"),
        ({"body": "a", "exists": True}, {"a": None}, "body `a`: expected present, got null"),
        (
            {"body": "a", "not_equals": "x"},
            {"a": "x"},
            "body `a`: expected anything but 'x', got 'x'",
        ),
        ({"body": "length(a)", "equals": 2}, {"a": [1, 2]}, None),
    ],
)
def test_expectations(expect: dict[str, Any], body: object, message: str | None) -> None:
    assert judged([expect], body) == message


def test_a_header_is_found_whatever_its_case_and_a_long_value_is_cut() -> None:
    assert judged([{"header": "X-Version", "equals": "2"}], {}, {"x-version": "2"}) is None
    message = judged([{"body": "a", "equals": "short"}], {"a": "y" * 500})
    assert message is not None and message.endswith("…") and len(message) < 140
    body_is_html = SmokeRequest.model_validate(
        {"name": "x", "path": "/", "expect_status": 200, "expect": [{"body": "a", "exists": True}]}
    )
    failure = first_failure(body_is_html, Response(200, {}, b"<html>", 1.0), {}, NO_SECRETS)
    assert failure is not None and failure.actual == "a body that is not JSON"


def check(**fields: Any) -> dict[str, Any]:
    return {"name": "c", "path": "/", "expect_status": 200, **fields}


def test_checks_written_before_flows_get_the_steps_they_relied_on() -> None:
    flow = plan_flow(SmokeConfig.model_validate({"checks": [check(name="health")]}))
    assert flow.setup == ()  # nothing to set up: no account, no token
    flow = plan_flow(SmokeConfig.model_validate({"checks": [check(json={"email": "{email}"})]}))
    assert [s.name for s in flow.setup] == ["register"]
    flow = plan_flow(
        SmokeConfig.model_validate(
            {"checks": [check(name="me", auth=True), check(name="get", path="/items/{item_id}")]}
        )
    )
    assert flow.setup == DEFAULT_SMOKE_SETUP
    me, get = flow.checks
    assert me.headers == {"Authorization": BEARER} and me.setup == ()
    assert [s.name for s in get.setup] == ["item for get"] and get.setup[0].save == {
        "item_id": "id"
    }
    assert flow.needs_setup(me) and flow.needs_setup(get)


def test_a_check_needs_the_setup_only_when_it_uses_what_the_setup_made_or_used() -> None:
    flow = plan_flow(
        SmokeConfig.model_validate(
            {
                "setup": [
                    {"name": "s", "path": "/login", "expect_status": 200, "json": {"u": "{email}"},
                     "save": {"token": "t"}}
                ],
                "checks": [
                    check(name="free"),
                    check(name="fresh", json={"e": "{new_email}"}),
                    check(name="account", json={"e": "{email}"}),
                ],
            }
        )
    )  # fmt: skip
    free, fresh, account = flow.checks
    assert not flow.needs_setup(free) and not flow.needs_setup(fresh)
    assert flow.needs_setup(account)


def test_auth_in_a_flow_is_the_bearer_header_of_the_saved_token() -> None:
    config = SmokeConfig.model_validate(
        {
            "setup": [{"name": "s", "path": "/", "expect_status": 200, "save": {"token": "t"}}],
            "checks": [check(auth=True)],
        }
    )
    (planned,) = plan_flow(config).checks
    assert isinstance(planned, SmokeCheck) and planned.headers == {"Authorization": BEARER}

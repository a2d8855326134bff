"""Smoke flows against an API that is not ours (tests/loadkit/orders_api.py): setup steps, saved
values, body and header expectations, a secret from the environment that never shows."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from loadkit.cli import app
from loadkit.measure.results import SmokeResults, read_results
from tests.loadkit.misbehaving_servers import closed_port
from tests.loadkit.orders_api import PROBLEM_BASE, orders_api

SECRET = "s3cr3t-Client-Key-9f1e"

SETUP = """
[smoke]
preflight_path = "/status"
timeout_s = 5

[[smoke.setup]]
name = "sign in"
method = "POST"
path = "/v2/sessions"
form = { client_id = "loadkit", client_secret = "${ORDERS_SECRET}" }
expect_status = 200
save = { jwt = "data.jwt" }

[[smoke.setup]]
name = "place order"
method = "POST"
path = "/v2/orders"
headers = { Authorization = "Token {jwt}" }
json = { sku = "SKU-7", qty = 2 }
expect_status = [200, 201]
expect = [{ body = "order.qty", equals = 2 }]
save = { number = "order.number" }
"""

PASSING = (
    SETUP
    + """
[[smoke.checks]]
name = "status"
path = "/status"
expect_status = 200
expect = [{ body = "ok", equals = true }, { body = "build", matches = '^\\d+\\.\\d+' }]

[[smoke.checks]]
name = "get order"
path = "/v2/orders/{number}"
headers = { Authorization = "Token {jwt}" }
expect_status = 200
max_latency_ms = 5000
expect = [
  { body = "order.number", equals = "{number}" },
  { body = "order.qty", ge = 2 },
  { body = "length(order.lines)", lt = 2 },
  { body = "order.deleted_at", exists = false },
  { header = "content-type", matches = "^application/json" },
]

[[smoke.checks]]
name = "search"
path = "/v2/orders"
query = { sku = "SKU-7", api_key = "${ORDERS_SECRET}" }
headers = { Authorization = "Token {jwt}" }
expect_status = 200
expect = [{ body = "total", gt = 0 }, { body = "orders[0].sku", not_equals = "SKU-8" }]

[[smoke.checks]]
name = "unknown order is a problem"
path = "/v2/orders/ORD-999"
headers = { Authorization = "Token {jwt}" }
expect_status = 404
expect = [
  { header = "Content-Type", equals = "application/problem+json" },
  { body = "type", equals = "PROBLEM_BASEorder-not-found" },
]

[[smoke.checks]]
name = "key echo"
path = "/v2/echo-key"
headers = { X-Api-Key = "${ORDERS_SECRET}" }
expect_status = 200
expect = [{ body = "key_used", exists = true }]
""".replace("PROBLEM_BASE", PROBLEM_BASE)
)


def smoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["smoke", *args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "acceptance.toml"
    path.write_text(text)
    return path


def test_a_flow_with_setup_saved_values_and_a_secret_passes_and_hides_the_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORDERS_SECRET", SECRET)
    out = tmp_path / "smoke.json"
    config = write(tmp_path, PASSING)
    with orders_api(secret=SECRET) as url:
        code, output = smoke("--host", url, "--config", str(config), "--out", str(out))
        json_code, json_output = smoke("--host", url, "--config", str(config), "--json")
    assert code == 0 and json_code == 0, output + json_output
    assert output.rstrip().endswith("5/5 passed")
    results = read_results(out)
    assert isinstance(results, SmokeResults) and results.checks_passed == 5
    assert results.totals.requests == 5  # setup is not measured
    search = next(c for c in results.checks if c.name == "search")
    assert search.path == "/v2/orders?sku=SKU-7&api_key=${ORDERS_SECRET}"
    assert SECRET not in out.read_text() and SECRET not in output + json_output


def test_each_broken_expectation_fails_saying_expected_and_actual(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORDERS_SECRET", SECRET)
    broken = {
        "status": ("expect_status = [200, 204]", "status 404, expected 200 or 204"),
        "equals": (
            'expect_status = 200\nexpect = [{ body = "order.sku", equals = "SKU-8" }]',
            "body `order.sku`: expected 'SKU-8', got 'SKU-7'",
        ),
        "compare": (
            'expect_status = 200\nexpect = [{ body = "order.qty", gt = 5 }]',
            "body `order.qty`: expected > 5, got 2",
        ),
        "regex": (
            "expect_status = 200\nexpect = [{ body = \"order.number\", matches = '^INV-' }]",
            "body `order.number`: expected to match '^INV-', got 'ORD-1'",
        ),
        "presence": (
            'expect_status = 200\nexpect = [{ body = "order.customer", exists = true }]',
            "body `order.customer`: expected present, got null",
        ),
        "header": (
            'expect_status = 200\nexpect = [{ header = "ETag", exists = true }]',
            "header ETag: expected present, got nothing",
        ),
        "latency": ("expect_status = 200\nmax_latency_ms = 0.001", "latency: expected ≤ 0.001 ms"),
    }

    def check(name: str, keys: str) -> str:
        # "status" asks for an order that does not exist: 404, a problem+json body, no kind.
        number = "ORD-404" if name == "status" else "{number}"
        return (
            f'\n[[smoke.checks]]\nname = "{name}"\npath = "/v2/orders/{number}"\n'
            f'headers = {{ Authorization = "Token {{jwt}}" }}\n{keys}\n'
        )

    checks = "".join(check(name, keys) for name, (keys, _) in broken.items())
    checks += (
        '\n[[smoke.checks]]\nname = "secret in a message"\npath = "/v2/echo-key"\n'
        'headers = { X-Api-Key = "${ORDERS_SECRET}" }\nexpect_status = 200\n'
        'expect = [{ body = "key_used", equals = "another key" }]\n'
    )
    out = tmp_path / "smoke.json"
    with orders_api(secret=SECRET) as url:
        config = write(tmp_path, SETUP + checks)
        code, output = smoke("--host", url, "--config", str(config), "--out", str(out))
    assert code == 1, output
    assert "0/8 passed" in output
    results = read_results(out)
    assert isinstance(results, SmokeResults)
    by_name = {c.name: c for c in results.checks}
    for name, (_, message) in broken.items():
        assert message in (by_name[name].message or ""), name
        assert f"  {name}: {message}" in output
    assert by_name["status"].error_kind == "unexpected_status"
    assert by_name["equals"].error_kind == "expectation_failed"
    leaked = by_name["secret in a message"].message
    assert leaked == "body `key_used`: expected 'another key', got '${ORDERS_SECRET}'"
    assert SECRET not in out.read_text() and SECRET not in output


def test_a_setup_step_that_saves_nothing_fails_the_checks_that_need_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORDERS_SECRET", SECRET)
    flow = SETUP.replace('save = { jwt = "data.jwt" }', 'save = { jwt = "access_token" }') + (
        '\n[[smoke.checks]]\nname = "status"\npath = "/status"\nexpect_status = 200\n'
        '\n[[smoke.checks]]\nname = "mine"\npath = "/v2/orders"\n'
        'headers = { Authorization = "Token {jwt}" }\nexpect_status = 200\n'
    )
    with orders_api(secret=SECRET) as url:
        code, output = smoke("--host", url, "--config", str(write(tmp_path, flow)))
    assert code == 1, output
    assert "1/2 passed (failed: mine)" in output
    assert (
        "setup (sign in) answered 200: nothing at `access_token` in the answer to save as {jwt}"
        in output
    )


@pytest.mark.parametrize(
    ("flow", "said"),
    [
        (
            SETUP + '\n[[smoke.checks]]\nname = "x"\npath = "/v2/orders/{order_id}"\n'
            "expect_status = 200\n",
            "smoke.checks[0] (x): unknown placeholder {order_id} in key path",
        ),
        (
            SETUP.replace("${ORDERS_SECRET}", "${NO_SUCH_SECRET}")
            + '\n[[smoke.checks]]\nname = "x"\npath = "/status"\nexpect_status = 200\n',
            "smoke.setup[0] (sign in), key form.client_secret uses ${NO_SUCH_SECRET}, but the "
            "environment variable NO_SUCH_SECRET is not set",
        ),
        (
            '[[smoke.checks]]\nname = "x"\npath = "/"\nexpect_status = 200\n'
            'expect = [{ body = "a..b", equals = 1 }]\n',
            "smoke.checks[0].expect[0].body: 'a..b' is not a JMESPath expression",
        ),
        (
            '[[smoke.checks]]\nname = "x"\npath = "/"\nexpect_status = 200\n'
            'expect = [{ body = "a", equals = 1, gt = 0 }]\n',
            "give exactly one of equals, not_equals, lt, le, gt, ge, matches, exists; "
            "got equals, gt",
        ),
    ],
)
def test_a_flow_that_cannot_run_is_a_config_error_naming_step_key_and_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, flow: str, said: str
) -> None:
    monkeypatch.setenv("ORDERS_SECRET", SECRET)
    monkeypatch.delenv("NO_SUCH_SECRET", raising=False)
    code, output = smoke("--host", closed_port(), "--config", str(write(tmp_path, flow)))
    assert code == 2, output
    assert said in " ".join(output.split()), output


def test_json_results_say_the_config_as_written_never_the_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORDERS_SECRET", SECRET)
    flow = SETUP + '\n[[smoke.checks]]\nname = "s"\npath = "/status"\nexpect_status = 200\n'
    with orders_api(secret=SECRET) as url:
        code, output = smoke("--host", url, "--config", str(write(tmp_path, flow)), "--json")
    assert code == 0, output
    config = orjson.loads(output)["config"]
    assert config["setup"][0]["form"]["client_secret"] == "${ORDERS_SECRET}"
    assert SECRET not in output


def test_the_target_profile_reads_problem_kinds_and_the_request_id_it_sent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORDERS_SECRET", SECRET)
    flow = (
        '[target]\nerror_kind = { problem = true }\ntrace_header = "X-Request-Id"\n'
        'trace_response_header = "X-Request-Id"\n'
        + SETUP
        + '\n[[smoke.checks]]\nname = "missing"\npath = "/v2/orders/ORD-999"\n'
        'headers = { Authorization = "Token {jwt}" }\nexpect_status = 200\n'
        '\n[[smoke.checks]]\nname = "anonymous"\npath = "/v2/orders"\nexpect_status = 200\n'
    )
    out = tmp_path / "smoke.json"
    with orders_api(secret=SECRET) as url:
        code, output = smoke(
            "--host", url, "--config", str(write(tmp_path, flow)), "--out", str(out)
        )
    assert code == 1, output
    results = read_results(out)
    assert isinstance(results, SmokeResults)
    missing, anonymous = results.checks
    assert (missing.error_kind, missing.message) == ("order-not-found", "No such order")
    assert anonymous.error_kind == "unauthenticated"
    # The id the request carried in X-Request-Id, echoed back by the API: one per request.
    assert missing.trace_id and anonymous.trace_id and missing.trace_id != anonymous.trace_id
    assert len(missing.trace_id) == 32 and int(missing.trace_id, 16) >= 0
    assert {g.kind for g in results.errors} == {"order-not-found", "unauthenticated"}


def test_a_failure_without_a_trace_id_of_its_own_keeps_the_traceparent_it_sent(
    tmp_path: Path,
) -> None:
    flow = '[[smoke.checks]]\nname = "teapot"\npath = "/status"\nexpect_status = 418\n'
    out = tmp_path / "smoke.json"
    with orders_api(secret=SECRET) as url:
        code, output = smoke(
            "--host", url, "--config", str(write(tmp_path, flow)), "--out", str(out)
        )
    assert code == 1, output
    results = read_results(out)
    assert isinstance(results, SmokeResults)
    (teapot,) = results.checks
    assert teapot.error_kind == "unexpected_status"
    assert teapot.trace_id is not None and len(teapot.trace_id) == 32

"""``loadkit smoke`` end to end: the real service, failing checks, and every exit code."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from loadkit.cli import app
from loadkit.config import DEFAULT_SMOKE_CHECKS, DEFAULT_SMOKE_SETUP, SmokeConfig, load_config
from loadkit.measure.results import SmokeResults, read_results, write_results
from loadkit.run.bundled_service import BundledService
from tests.loadkit.crafted import crafted_smoke
from tests.loadkit.misbehaving_servers import answers, closed_port, h2_server, hangs, serve
from tests.shared_service import module_service

REPO = Path(__file__).resolve().parents[2]

BEFORE_FLOWS = """
[smoke]
timeout_s = 10

[[smoke.checks]]
name = "health"
path = "/health"
expect_status = 200

[[smoke.checks]]
name = "version"
path = "/version"
expect_status = 200

[[smoke.checks]]
name = "register"
method = "POST"
path = "/api/auth/register"
expect_status = 201
json = { email = "{new_email}", password = "{password}" }

[[smoke.checks]]
name = "login"
method = "POST"
path = "/api/auth/login"
expect_status = 200
json = { email = "{email}", password = "{password}" }

[[smoke.checks]]
name = "me"
path = "/api/auth/me"
expect_status = 200
auth = true

[[smoke.checks]]
name = "items_create"
method = "POST"
path = "/api/items"
expect_status = 201
json = { name = "smoke item" }
auth = true

[[smoke.checks]]
name = "items_list"
path = "/api/items"
expect_status = 200
auth = true

[[smoke.checks]]
name = "items_get"
path = "/api/items/{item_id}"
expect_status = 200
auth = true

[[smoke.checks]]
name = "items_delete"
method = "DELETE"
path = "/api/items/{item_id}"
expect_status = 204
auth = true

[[smoke.checks]]
name = "login_bad_password"
method = "POST"
path = "/api/auth/login"
expect_status = 401
json = { email = "{email}", password = "not-the-password" }
"""
"""The smoke section acceptance.toml had before flows: checks only, `auth`, `{item_id}`."""


def smoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["smoke", *args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "acceptance.toml"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BundledService]:
    """One bundled service for the module: the smoke runs here register accounts of their own
    and change none of its settings."""
    yield from module_service(tmp_path_factory)


def test_default_suite_passes_against_the_real_service(
    service: BundledService, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No ./acceptance.toml here: the built-in suite runs.
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "smoke.json"
    code, output = smoke("--host", service.url, "--out", str(out))
    assert code == 0, output
    assert output.rstrip().endswith("10/10 passed")
    for name in ("health", "version", "register", "login", "me", "items_create"):
        assert name in output
    results = read_results(out)
    assert isinstance(results, SmokeResults)
    assert results.checks_passed == 10
    assert results.totals.requests == 10 and results.totals.errors == 0
    assert {c.name for c in results.checks} == {c.name for c in DEFAULT_SMOKE_CHECKS}
    assert results.latency_ms.p99 is not None and results.latency_ms.max is not None
    assert results.latency_ms.p99 <= results.latency_ms.max

    # A second run against the same database registers its own account again: still 10/10.
    code, output = smoke("--host", service.url, "--config", str(REPO / "acceptance.toml"), "--json")
    assert code == 0, output
    data = orjson.loads(output)
    assert data["schema"] == "loadkit.results/2" and data["kind"] == "smoke"
    assert all(check["passed"] for check in data["checks"])

    # The checks as written before flows still make their account, token and items: 10/10.
    before = write_config(tmp_path, BEFORE_FLOWS)
    code, output = smoke("--host", service.url, "--config", str(before), "--json")
    assert code == 0, output
    data = orjson.loads(output)
    assert [c["name"] for c in data["checks"]] == [c.name for c in DEFAULT_SMOKE_CHECKS]
    assert all(check["passed"] for check in data["checks"]) and data["totals"]["requests"] == 10


def test_the_repository_config_holds_the_default_suite() -> None:
    smoke = load_config(REPO / "acceptance.toml").smoke
    assert smoke.checks == DEFAULT_SMOKE_CHECKS and smoke.setup == DEFAULT_SMOKE_SETUP
    assert SmokeConfig().checks == DEFAULT_SMOKE_CHECKS
    assert SmokeConfig().setup == DEFAULT_SMOKE_SETUP


def test_a_failed_check_exits_1_with_kind_and_trace_id(
    service: BundledService, tmp_path: Path
) -> None:
    config = write_config(
        tmp_path,
        """
[[smoke.checks]]
name = "health"
path = "/health"
expect_status = 200

[[smoke.checks]]
name = "version wants a teapot"
path = "/version"
expect_status = 418

[[smoke.checks]]
name = "me without a token"
path = "/api/auth/me"
expect_status = 200
""",
    )
    code, output = smoke("--host", service.url, "--config", str(config))
    assert code == 1, output
    assert "1/3 passed" in output
    assert "unexpected_status" in output  # 200 where 418 was expected: no kind in the body
    assert "unauthorized" in output  # the service's own kind from the error body
    assert "status 200, expected 418" in output
    table_row = next(line for line in output.splitlines() if line.startswith("me without"))
    assert "FAIL" in table_row
    assert len(table_row.split()[-1]) >= 8  # the trace id, to look up in the service log


def test_unreachable_target_exits_3_with_one_line() -> None:
    url = closed_port()
    code, output = smoke("--host", url)
    assert code == 3
    assert output.strip() == f"error: cannot reach {url}: connection refused"


def test_target_that_never_answers_exits_3() -> None:
    with serve(hangs) as url:
        code, output = smoke("--host", url, "--timeout", "0.3")
    assert code == 3
    assert "no answer within 0.3 s" in output


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        ('[[smoke.checks]]\nname = "x"\npath = "/health"\n', "smoke.checks[0].expect_status"),
        (
            '[[smoke.checks]]\nname = "x"\npath = "/health"\nexpect_status = 200\ncolour = 1\n',
            "smoke.checks[0].colour: unknown key",
        ),
        ('[[smoke.checks]]\nname = "x"\npath = "health"\nexpect_status = 200\n', "path"),
        ("[smoke]\nchecks = []\n", "smoke.checks"),
        ("[smoke]\ntimeout_s = 0\n", "smoke.timeout_s"),
        (
            '[[smoke.checks]]\nname = "x"\npath = "/api/{order_id}"\nexpect_status = 200\n',
            "smoke.checks[0] (x): unknown placeholder {order_id}",
        ),
    ],
)
def test_bad_config_exits_2_naming_the_key(tmp_path: Path, toml: str, key: str) -> None:
    config = write_config(tmp_path, toml)
    code, output = smoke("--host", closed_port(), "--config", str(config))
    assert code == 2, output
    assert key in output


def test_missing_config_given_explicitly_exits_2(tmp_path: Path) -> None:
    code, output = smoke("--config", str(tmp_path / "nope.toml"))
    assert code == 2
    assert "nope.toml: no such file" in output


def test_bad_host_exits_2() -> None:
    code, output = smoke("--host", "ftp://example")
    assert code == 2
    assert "--host" in output


def test_unreachable_target_with_out_leaves_an_aborted_results_file(tmp_path: Path) -> None:
    out = tmp_path / "smoke.json"
    out.write_text("stale results of an earlier run")
    code, output = smoke("--host", closed_port(), "--out", str(out))
    assert code == 3, output
    results = read_results(out)
    assert isinstance(results, SmokeResults)
    assert results.aborted and not results.valid
    (reason,) = results.invalid_reasons
    assert reason.code == "aborted" and "cannot reach" in reason.detail


@pytest.mark.parametrize("timeout", ["0", "-1", "nan"])
def test_bad_timeout_exits_2(timeout: str) -> None:
    code, output = smoke("--host", "http://127.0.0.1:1", "--timeout", timeout)
    assert code == 2, output
    assert "--timeout must be" in output


def test_http2_stream_resets_are_reported_as_http2_internal_error(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        """
[[smoke.checks]]
name = "health"
path = "/health"
expect_status = 200

[[smoke.checks]]
name = "version"
path = "/version"
expect_status = 200
""",
    )
    out = tmp_path / "smoke.json"
    with serve(h2_server(healthy_paths=frozenset({"/health"}))) as url:
        code, output = smoke("--host", url, "--http2", "--config", str(config), "--out", str(out))
    assert code == 1, output
    assert "1/2 passed" in output
    results = read_results(out)
    assert isinstance(results, SmokeResults)
    assert [c.error_kind for c in results.checks] == [None, "http2_internal_error"]
    assert results.errors[0].kind == "http2_internal_error"
    assert results.config["http2"] is True


def test_failed_setup_is_reported_against_the_checks_that_needed_it(tmp_path: Path) -> None:
    # Every request answers 503 storage_lock_timeout: reachable, but nobody can register.
    body = orjson.dumps(
        {"error": {"kind": "storage_lock_timeout", "message": "busy", "trace_id": "t-9"}}
    )
    with serve(answers(503, body)) as url:
        code, output = smoke("--host", url, "--out", str(tmp_path / "s.json"))
    assert code == 1
    assert "0/10 passed" in output
    results = read_results(tmp_path / "s.json")
    assert isinstance(results, SmokeResults)
    me = next(c for c in results.checks if c.name == "me")
    assert me.error_kind == "storage_lock_timeout"
    assert me.message is not None and me.message.startswith("setup (register) answered 503")
    health = next(c for c in results.checks if c.name == "health")
    assert health.status == 503 and health.error_kind == "storage_lock_timeout"


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_before_any_answer_replaces_a_stale_out_with_an_aborted_file(
    tmp_path: Path, signum: signal.Signals
) -> None:
    # A passing file of an earlier run must not stay behind for the gate to judge.
    out = tmp_path / "smoke.json"
    write_results(out, crafted_smoke())
    connected = threading.Event()

    def hangs_once_connected(conn: socket.socket) -> None:
        connected.set()
        hangs(conn)

    with serve(hangs_once_connected) as url:
        process = subprocess.Popen(
            [sys.executable, "-m", "loadkit", "smoke", "--host", url, "--out", str(out)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            # Started, and waiting on a server that never answers: nothing measured yet.
            assert connected.wait(timeout=30), "smoke never connected"
            process.send_signal(signum)
            _stdout, stderr = process.communicate(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert process.returncode == 130, stderr
    assert stderr.strip().splitlines()[-1] == "interrupted"
    results = read_results(out)
    assert isinstance(results, SmokeResults)
    assert results.aborted and not results.valid and results.checks == []
    (reason,) = results.invalid_reasons
    assert reason.code == "aborted" and "interrupted" in reason.detail

"""`loadkit load`'s engine choice, a URL run's request options and the TLS flags, at the CLI:
what reaches which engine, and what is refused (exit 2) naming why. No load is run."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from loadkit.cli import app
from loadkit.config import load_config
from loadkit.engines.choice import choose_engine
from loadkit.engines.http_request import RequestSpec, TlsOptions
from loadkit.engines.locust.launch import (
    LocustLaunch,
    Users,
    Worker,
    _url_environ,
    _users_args,
    tls_args,
)
from loadkit.exceptions import ConfigError
from tests.loadkit.crafted import crafted_load


@pytest.fixture
def engines(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, list[dict[str, Any]]]:
    """Both engines replaced by recorders of their arguments."""
    calls: dict[str, list[dict[str, Any]]] = {"native": [], "locust": []}

    def recorder(name: str) -> Any:
        def run(**kwargs: Any) -> Any:
            calls[name].append(kwargs)
            return crafted_load(errors=())

        return run

    monkeypatch.setattr("loadkit.run.native.run_native_load", recorder("native"))
    monkeypatch.setattr("loadkit.run.load.run_load", recorder("locust"))
    monkeypatch.chdir(tmp_path)  # no acceptance.toml of the checkout's
    return calls


def _load(*args: str) -> Any:
    return CliRunner().invoke(app, ["load", *args, "--out", "r.json"])


@pytest.mark.parametrize(
    ("requested", "url_run", "http2", "engine"),
    [
        (None, True, False, "native"),
        (None, False, False, "locust"),
        (None, True, True, "locust"),
        ("locust", True, False, "locust"),
        ("native", True, False, "native"),
    ],
)
def test_a_url_runs_native_unless_locust_is_asked_or_http2(
    requested: str | None, url_run: bool, http2: bool, engine: str
) -> None:
    assert choose_engine(requested=requested, url_run=url_run, http2=http2) == engine


@pytest.mark.parametrize(
    ("url_run", "http2", "why"),
    [(False, False, "is a locustfile and runs on Locust"), (True, True, "HTTP/1.1")],
)
def test_native_for_a_scenario_or_with_http2_is_refused(
    url_run: bool, http2: bool, why: str
) -> None:
    with pytest.raises(ConfigError, match=why):
        choose_engine(requested="native", url_run=url_run, http2=http2)


def test_a_url_reaches_the_native_engine_with_its_request(
    engines: dict[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    (tmp_path / "b.bin").write_bytes(b"\x00\x01")
    result = _load(
        "https://h:1/p?q=1", "--method", "put", "--header", "A: 1", "--header", "B:two",
        "--body", "@b.bin", "--insecure", "--concurrency", "3",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert engines["locust"] == []
    (call,) = engines["native"]
    assert call["request"] == RequestSpec(
        url="https://h:1/p?q=1",
        method="PUT",
        headers=(("A", "1"), ("B", "two")),
        body=b"\x00\x01",
        tls=TlsOptions(verify=False),
    )
    assert call["profile"].concurrency == 3


def test_engine_locust_and_a_scenario_take_the_locust_path(
    engines: dict[str, list[dict[str, Any]]],
) -> None:
    assert _load("http://h:1/x", "--engine", "locust", "--body", "hi").exit_code == 0
    assert engines["locust"][-1]["request"].body == b"hi"
    assert _load("--host", "http://h:1", "--scenario", "api").exit_code == 0
    assert engines["native"] == [] and len(engines["locust"]) == 2


def test_a_profiles_engine_is_read_and_validated(
    engines: dict[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    (tmp_path / "acceptance.toml").write_text(
        '[profiles.default]\nscenario = "url"\nengine = "locust"\n'
    )
    assert _load("http://h:1/x").exit_code == 0
    assert len(engines["locust"]) == 1 and engines["native"] == []
    (tmp_path / "bad.toml").write_text('[profiles.default]\nengine = "fast"\n')
    with pytest.raises(ConfigError, match="engine"):
        load_config(tmp_path / "bad.toml")


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["http://h:1/", "--engine", "native", "--spawn-rate", "2"], "opens its connections"),
        (["http://h:1/", "--engine", "native", "--stages", "1s:2"], "opens its connections"),
        (["http://h:1/", "--", "--tags", "a"], "arguments after `--` (for Locust)"),
        (["--scenario", "api", "--engine", "native"], "--engine native runs a URL"),
        (["http://h:1/", "--scenario", "api", "--method", "POST"], "--method and --scenario"),
        (["--body", "x"], "--body shapes the request of a URL run"),
        (["http://h:1/", "--header", "no colon"], "--header 'no colon'"),
        (["http://h:1/", "--body", "@missing.json"], "--body @missing.json"),
        (["http://h:1/", "--ca-cert", "missing.pem"], "--ca-cert"),
        (["http://h:1/", "--ca-cert", "r.json", "--insecure"], "cannot go together"),
        (["http://h:1/", "--engine", "fast"], "--engine 'fast'"),
    ],
)
def test_what_cannot_run_is_exit_2_naming_it(
    engines: dict[str, list[dict[str, Any]]], tmp_path: Path, args: list[str], named: str
) -> None:
    (tmp_path / "r.json").write_text("")
    result = _load(*args)
    assert result.exit_code == 2, result.output
    assert named in result.output, result.output
    assert engines == {"native": [], "locust": []}


def test_a_native_url_run_with_master_distributes_on_the_native_engine(
    engines: dict[str, list[dict[str, Any]]],
) -> None:
    result = _load("http://h:1/", "--master", "--expect-workers", "3", "--master-port", "6001")
    assert result.exit_code == 0, result.output
    [call] = engines["native"]
    master = call["master"]
    assert (master.expect, master.bind_host, master.bind_port) == (3, "127.0.0.1", 6001)
    assert engines["locust"] == []


def test_a_ca_cert_that_is_not_pem_is_exit_2_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("not a certificate\n")
    result = CliRunner().invoke(
        app, ["smoke", "--host", "https://127.0.0.1:1", "--ca-cert", str(tmp_path / "ca.pem")]
    )
    assert result.exit_code == 2, result.output
    assert f"--ca-cert {tmp_path / 'ca.pem'}: cannot be read as PEM" in result.output


def test_the_plugin_is_told_the_tls_choice_and_the_url_scenario_the_request() -> None:
    assert tls_args(TlsOptions()) == []
    assert tls_args(TlsOptions(verify=False)) == ["--loadkit-insecure"]
    assert tls_args(TlsOptions(ca_cert=Path("/c.pem"))) == ["--loadkit-ca-cert", "/c.pem"]
    request = RequestSpec(url="http://h/x", method="POST", headers=(("A", "1"),), body=b"{}")
    users = Users(
        host="http://h", count=1, spawn_rate=1, scenario_label="url", url_path="/x",
        url_request=request,
    )  # fmt: skip
    args = _users_args(users)
    # The method on the command line; headers and body in Locust's environment (they may hold
    # secrets: test_locust_launch.py).
    assert args[args.index("--url-method") :] == ["--url-method", "POST"]
    assert _url_environ(users) == {
        "LOCUST_URL_PATH": "/x", "LOCUST_URL_HEADER": '["A: 1"]', "LOCUST_URL_BODY": "{}",
    }  # fmt: skip


@pytest.mark.parametrize("ramp", [["--spawn-rate", "2"], ["--stages", "1s:2,1s:0"]])
def test_a_url_run_that_ramps_users_stays_on_locust(
    engines: dict[str, list[dict[str, Any]]], ramp: list[str]
) -> None:
    # Only Locust ramps users; such a run worked on Locust before the native engine came.
    assert _load("http://h:1/x", *ramp).exit_code == 0
    assert len(engines["locust"]) == 1 and engines["native"] == []


def test_processes_auto_is_one_per_core_and_a_bad_count_is_exit_2(
    engines: dict[str, list[dict[str, Any]]],
) -> None:
    assert _load("http://h:1/x", "--processes", "auto").exit_code == 0
    assert engines["native"][0]["processes"] == (os.cpu_count() or 1)
    for bad in ("0", "two"):
        result = _load("http://h:1/x", "--processes", bad)
        assert result.exit_code == 2 and f"--processes {bad!r}" in result.output, result.output


def test_http2_from_the_flag_or_the_profile_runs_a_url_on_locust_and_tells_the_plugin(
    engines: dict[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    assert _load("http://h:1/x", "--http2").exit_code == 0
    assert engines["native"] == [] and engines["locust"][-1]["http2"] is True
    (tmp_path / "acceptance.toml").write_text(
        '[profiles.default]\nscenario = "url"\nhttp2 = true\n'
    )
    assert _load("http://h:1/x").exit_code == 0
    assert engines["native"] == [] and engines["locust"][-1]["http2"] is True
    result = _load("http://h:1/x", "--engine", "native")
    assert result.exit_code == 2 and "HTTP/1.1 only" in result.output, result.output
    launch = LocustLaunch(
        scenario=Path("s.py"), role=Worker(master_host="m", master_port=1), parent_pid=1
    )
    assert "--loadkit-http2" not in launch.argv()  # an HTTP/1.1 run's command line as before
    assert "--loadkit-http2" in replace(launch, http2=True).argv()


def test_an_edge_option_without_http2_is_refused_not_ignored() -> None:
    result = CliRunner().invoke(app, ["serve", "--edge-timeout", "5"])
    assert result.exit_code == 2
    assert "--edge-timeout is about the HTTP/2 edge: add --http2" in result.output

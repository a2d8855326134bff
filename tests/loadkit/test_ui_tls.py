"""loadkit ui's --insecure and --ca-cert: the Locust it launches checks an https target's
certificate as `loadkit load` has it checked (the plugin's TLS options on its command line),
and refuses what load refuses. No Locust is started: the launch is caught as it would start."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from loadkit.cli import app
from loadkit.engines.locust.launch import LocustLaunch
from loadkit.run.bundled_service import free_port
from tests.loadkit.tls_server import self_signed


@pytest.fixture(scope="module")
def listening() -> Iterator[str]:
    """An https base URL something accepts connections on (the UI checks it is reachable)."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        yield f"https://127.0.0.1:{server.getsockname()[1]}"


@pytest.fixture
def launches(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[LocustLaunch]:
    """The launches the UI would run, caught instead of running Locust, in a folder with no
    acceptance.toml or locust.conf."""
    caught: list[LocustLaunch] = []

    def run_until_quit(launch: LocustLaunch) -> int:
        caught.append(launch)
        return 0

    monkeypatch.setattr("loadkit.run.load._run_until_quit", run_until_quit)
    monkeypatch.chdir(tmp_path)
    return caught


def _ui(url: str, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(
        app, ["ui", "--host", url, "--web-port", str(free_port()), "--scenario", "url", *args]
    )
    return result.exit_code, result.output


def _tls_args(launch: LocustLaunch) -> list[str]:
    return [arg for arg in launch.argv() if arg in ("--loadkit-insecure", "--loadkit-ca-cert")]


def test_ui_verifies_by_default_trusts_a_ca_cert_or_checks_nothing_when_insecure(
    listening: str, launches: list[LocustLaunch], tmp_path: Path
) -> None:
    ca_cert, _key = self_signed(tmp_path)
    for args in ((), ("--ca-cert", "cert.pem"), ("--insecure",)):
        code, output = _ui(listening, *args)
        assert code == 0, output
    default, trusted, insecure = launches
    assert _tls_args(default) == []
    assert default.tls.verify and default.tls.ca_cert is None
    # Absolute: Locust runs in a process of its own, wherever it was started from.
    argv = trusted.argv()
    assert argv[argv.index("--loadkit-ca-cert") + 1] == str(ca_cert.absolute())
    assert _tls_args(insecure) == ["--loadkit-insecure"] and not insecure.tls.verify


def test_ui_refuses_both_at_once_and_a_ca_cert_that_is_not_one_with_exit_2(
    listening: str, launches: list[LocustLaunch], tmp_path: Path
) -> None:
    (tmp_path / "notes.pem").write_text("not a certificate\n")
    both = _ui(listening, "--insecure", "--ca-cert", "notes.pem")
    assert both[0] == 2 and "--insecure and --ca-cert" in both[1], both
    missing = _ui(listening, "--ca-cert", "absent.pem")
    assert missing[0] == 2 and "absent.pem: no such file" in missing[1], missing
    unreadable = _ui(listening, "--ca-cert", "notes.pem")
    assert unreadable[0] == 2 and "cannot be read as PEM" in unreadable[1], unreadable
    assert launches == []

"""`loadkit smoke` against https (httpx): the certificate verified by default, with the flags
that say what to trust; a certificate that does not verify is said as such (exit 3)."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from loadkit.cli import app
from loadkit.measure.classify import classify_httpx_error, classify_os_error
from tests.loadkit.tls_server import tls_server

CONFIG = """
[[smoke.checks]]
name = "one"
path = "/x"
expect_status = 200
"""


def test_smoke_verifies_by_default_and_trusts_what_it_is_told(tmp_path: Path) -> None:
    config = tmp_path / "smoke.toml"
    config.write_text(CONFIG)
    with tls_server(tmp_path) as server:

        def smoke(*args: str) -> tuple[int, str]:
            argv = ["smoke", "--host", server.url, "--config", str(config), "--timeout", "5"]
            result = CliRunner().invoke(app, [*argv, *args])
            return result.exit_code, result.output

        code, output = smoke()
        assert code == 3, output
        assert "TLS failed" in output and "--ca-cert" in output, output
        for trust in (["--ca-cert", str(server.ca_cert)], ["--insecure"]):
            code, output = smoke(*trust)
            assert code == 0 and "1/1 passed" in output, output
        assert [r[1] for r in server.seen.requests].count("/x") == 2


def test_a_certificate_failure_is_tls_error_for_every_client() -> None:
    import ssl

    import httpx

    failure = ssl.SSLCertVerificationError(1, "certificate verify failed")
    assert classify_os_error(failure) == "tls_error"
    wrapped = httpx.ConnectError("[SSL: CERTIFICATE_VERIFY_FAILED]")
    wrapped.__cause__ = failure
    assert classify_httpx_error(wrapped) == "tls_error"


def test_a_tls_connection_the_peer_ended_is_a_lost_connection_not_a_tls_failure() -> None:
    # An EOF or close_notify can end a connection long after its handshake, a request sent:
    # tls_error says "nothing was sent", so it must not be these.
    import ssl

    import httpx

    for ended in (ssl.SSLEOFError(8, "EOF occurred in violation of protocol"),
                  ssl.SSLZeroReturnError(6, "TLS/SSL connection has been closed")):  # fmt: skip
        assert classify_os_error(ended) == "connection_reset"
        wrapped = httpx.ReadError("EOF")
        wrapped.__cause__ = ended
        assert classify_httpx_error(wrapped) == "connection_reset"

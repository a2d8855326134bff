"""The native engine against an https target with a self-signed certificate made here
(openssl): verified by default (refused, a tls_error saying why, the Locust path's kind),
trusted with ``ca_cert``, unchecked with ``verify=False``."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from loadkit.config import LoadProfile
from loadkit.engines.http_request import RequestSpec, TlsOptions
from loadkit.exceptions import ConfigError
from loadkit.measure.results import LoadResults
from loadkit.run.native import run_native_load
from tests.loadkit.misbehaving_servers import read_request, serve


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key (PEM files), made by openssl."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not installed")
    folder = tmp_path_factory.mktemp("tls")
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", str(key_path), "-out", str(cert_path), "-days", "1",
            "-subj", "/CN=loadkit test", "-addext", "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert_path, key_path


@pytest.fixture
def https_url(certificate: tuple[Path, Path]) -> Iterator[str]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)

    def handler(conn: socket.socket) -> None:
        try:
            tls = context.wrap_socket(conn, server_side=True)
        except (ssl.SSLError, OSError):
            return  # the client refused our certificate
        while read_request(tls):
            tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")

    with serve(handler) as url:
        yield url.replace("http://", "https://")


def run(url: str, tmp_path: Path, tls: TlsOptions) -> LoadResults:
    return run_native_load(
        request=RequestSpec(url=url, tls=tls),
        profile=LoadProfile(concurrency=1, duration_s=0.3),
        out=tmp_path / "load.json",
        quiet=True,
    )


def test_a_self_signed_certificate_is_refused_by_default(https_url: str, tmp_path: Path) -> None:
    results = run(https_url, tmp_path, TlsOptions())
    assert results.totals.ok == 0
    [group] = results.errors
    assert group.kind == "tls_error"
    assert (
        group.example_message is not None and "certificate verify failed" in group.example_message
    )


def test_its_ca_cert_makes_it_trusted(
    https_url: str, tmp_path: Path, certificate: tuple[Path, Path]
) -> None:
    results = run(https_url, tmp_path, TlsOptions(ca_cert=certificate[0]))
    assert results.totals.errors == 0 and results.totals.ok > 3


def test_insecure_sends_without_checking(https_url: str, tmp_path: Path) -> None:
    results = run(https_url, tmp_path, TlsOptions(verify=False))
    assert results.totals.errors == 0 and results.totals.ok > 3


def test_an_unreadable_ca_cert_is_a_config_error(https_url: str, tmp_path: Path) -> None:
    bad = tmp_path / "not-a-cert.pem"
    bad.write_text("hello")
    with pytest.raises(ConfigError, match="--ca-cert"):
        run(https_url, tmp_path, TlsOptions(ca_cert=bad))

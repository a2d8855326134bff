"""https through the Locust path: certificates verified by default, ``--ca-cert`` and
``--insecure`` as the user says, a class's own choice kept; a URL run's method, headers and
body reach the target. Each run is a real Locust (a subprocess) of about a second."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from loadkit.measure.results import LoadResults, read_results
from tests.loadkit.tls_server import tls_server

LOCUSTFILE = """\
from locust import FastHttpUser, HttpUser, constant, task


class FastPlain(FastHttpUser):
    wait_time = constant(0.05)

    @task
    def get(self):
        self.client.get("/fast", name="/fast")


class FastOwnChoice(FastHttpUser):
    insecure = True  # the locustfile's own choice: kept whatever loadkit is told
    wait_time = constant(0.05)

    @task
    def get(self):
        self.client.get("/own", name="/own")


class Requests(HttpUser):
    wait_time = constant(0.05)

    @task
    def get(self):
        self.client.get("/req", name="/req")
"""


def _load(
    folder: Path, *args: str, env: dict[str, str] | None = None
) -> tuple[subprocess.CompletedProcess[str], LoadResults]:
    out = folder / "load.json"
    command = [sys.executable, "-m", "loadkit", "load", *args, "--duration", "1"]
    command += ["--out", str(out), "--quiet"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=90, cwd=folder, env=env)
    results = read_results(out)
    assert isinstance(results, LoadResults), done.stderr
    return done, results


def _load_at_once(
    folder: Path, *runs: Sequence[str]
) -> list[tuple[subprocess.CompletedProcess[str], LoadResults]]:
    """Several ``_load`` runs at the same time (each in a folder of its own), in their order."""
    folders = [folder / f"run{number}" for number in range(len(runs))]
    for run_folder in folders:
        run_folder.mkdir()
    with ThreadPoolExecutor(max_workers=len(runs)) as pool:
        started = [pool.submit(_load, f, *args) for f, args in zip(folders, runs, strict=True)]
        return [future.result() for future in started]


def _kinds(results: LoadResults) -> dict[str, set[str]]:
    kinds: dict[str, set[str]] = {}
    for group in results.errors:
        kinds.setdefault(group.endpoint, set()).add(group.kind)
    return kinds


def _ok(results: LoadResults) -> dict[str, int]:
    return {endpoint.name: endpoint.ok for endpoint in results.endpoints}


def test_certificates_are_verified_by_default_and_a_class_choosing_itself_keeps_its_choice(
    tmp_path: Path,
) -> None:
    (tmp_path / "users.py").write_text(LOCUSTFILE)
    with tls_server(tmp_path) as server:
        common = ["--host", server.url, "--scenario", str(tmp_path / "users.py")]
        # Two separate runs, at once: by default, then with --insecure.
        (done, results), (insecure_done, insecure_results) = _load_at_once(
            tmp_path, [*common, "--concurrency", "3"], [*common, "--concurrency", "3", "--insecure"]
        )
        assert done.returncode == 0, done.stderr
        # Neither client trusts a self-signed certificate: a TLS failure, not a connect error.
        assert _kinds(results) == {"GET /fast": {"tls_error"}, "GET /req": {"tls_error"}}, (
            results.errors
        )
        ok = _ok(results)
        assert ok["GET /fast"] == 0 and ok["GET /req"] == 0 and ok["GET /own"] > 0, ok
        assert results.config["engine"] == "locust"

        assert insecure_done.returncode == 0, insecure_done.stderr
        assert insecure_results.errors == [], insecure_results.errors
        assert all(count > 0 for count in _ok(insecure_results).values()), _ok(insecure_results)


def test_a_url_run_trusts_its_ca_cert_and_sends_the_method_headers_and_body_asked(
    tmp_path: Path,
) -> None:
    (tmp_path / "body.json").write_bytes(b'{"a": 1}')
    with tls_server(tmp_path) as server:
        done, results = _load(
            tmp_path, f"{server.url}/items?x=1", "--engine", "locust", "--rate", "20",
            "--ca-cert", str(server.ca_cert), "--method", "post",
            "--header", "Content-Type: application/json", "--header", "X-Run: tls",
            "--body", "@body.json",
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert results.errors == [], results.errors
        assert results.totals.ok > 0
        method, path, headers, body = server.seen.requests[-1]
    assert (method, path, body) == ("POST", "/items?x=1", b'{"a": 1}')
    assert headers["content-type"] == "application/json" and headers["x-run"] == "tls"
    assert results.config["engine"] == "locust"


def test_by_default_the_system_store_is_trusted_as_on_the_other_engines(tmp_path: Path) -> None:
    # A CA installed in the system's store only (OpenSSL reads SSL_CERT_FILE as that store):
    # Locust's clients trust certifi's bundle by default, smoke and the native engine the
    # system's; under loadkit the Locust path trusts the system's too.
    (tmp_path / "users.py").write_text(LOCUSTFILE)
    with tls_server(tmp_path) as server:
        env = {**os.environ, "SSL_CERT_FILE": str(server.ca_cert)}
        common = ["--host", server.url, "--scenario", str(tmp_path / "users.py")]
        done, results = _load(tmp_path, *common, "--concurrency", "3", env=env)
        assert done.returncode == 0, done.stderr
        assert results.errors == [], results.errors
        assert all(count > 0 for count in _ok(results).values()), _ok(results)

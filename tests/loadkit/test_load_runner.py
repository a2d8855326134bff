"""loadkit load end to end: Locust in its own process with the plugin, a few seconds of load each.

Locust's own count comes from its ``--json-file`` (written after every worker's last report), the
independent figure the results must equal.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from typer.testing import CliRunner

from loadkit.cli import app
from loadkit.config import LoadProfile
from loadkit.engines.locust.process import LocustRun
from loadkit.exceptions import InvalidLoadRunError
from loadkit.measure.results import LoadResults, dump_results, read_results, write_results
from loadkit.measure.validity import has_code
from loadkit.run.bundled_service import BundledService, free_port
from loadkit.run.load import run_load
from tests.loadkit.child_processes import wait_until_connected
from tests.loadkit.crafted import crafted_load
from tests.loadkit.misbehaving_servers import closed_port, hangs, serve
from tests.shared_service import module_service

pytestmark = pytest.mark.slow

HERE = Path(__file__).parent
REPO = HERE.parent.parent
OVERLOADED_LOCUSTFILE = HERE.parent / "scenarios" / "overloaded_locustfile.py"
SATURATING_LOCUSTFILE = HERE.parent / "scenarios" / "saturating_locustfile.py"
CRASHING_LOCUSTFILE = HERE.parent / "scenarios" / "crashing_locustfile.py"
UNLOADABLE_LOCUSTFILES = {
    "syntax error": (
        "from locust import HttpUser\nclass U(HttpUser)\n    pass\n",
        "SyntaxError: expected ':' (broken.py, line 2)",
    ),
    "failed import": (
        "import loadkit_no_such_module\n",
        "ModuleNotFoundError: No module named 'loadkit_no_such_module' (broken.py, line 1)",
    ),
}
"""Each reaches the CLI the same way (Locust refuses, ``locustfile_problem`` says why). A file
with no User class is the same path, and its verdict is test_locustfile_check.py's: here it cost
5-6 s (Locust, then the check, look for pytest-style users in it too)."""


def locust_count(json_prefix: Path) -> int:
    """Requests as Locust itself counted them (its --json-file)."""
    stats = json.loads(json_prefix.with_suffix(".json").read_text())
    return sum(int(entry["num_requests"]) for entry in stats)


def load(
    target: str,
    tmp_path: Path,
    *,
    scenario: str = "login",
    users: int = 4,
    seconds: float = 1.5,
    processes: int = 1,
) -> tuple[LoadResults, int]:
    json_prefix = tmp_path / "locust"
    results = run_load(
        target=target,
        profile=LoadProfile(scenario=scenario, concurrency=users, duration_s=seconds),
        out=tmp_path / "load.json",
        processes=processes,
        quiet=True,
        locust_args=["--json-file", str(json_prefix)],
    )
    assert read_results(tmp_path / "load.json") == results
    return results, locust_count(json_prefix)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BundledService]:
    """One bundled service for the module: every run here registers accounts of its own."""
    yield from module_service(tmp_path_factory)


@pytest.fixture(scope="module")
def static_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A plain static file server (Python's http.server) on loopback, serving hello.txt; it
    only reads files, so the module's tests share it."""
    folder = tmp_path_factory.mktemp("static")
    (folder / "hello.txt").write_text("hello\n")
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        cwd=folder,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_login_load_over_two_processes_merges_to_locusts_own_count(
    service: BundledService, tmp_path: Path
) -> None:
    # One run for both: the login scenario's figures, and two processes' shares merged to
    # Locust's own count (one process's count is test_url_scenario_against_a_static_server's).
    results, locust_requests = load(service.url, tmp_path, users=4, processes=2)
    assert results.valid, results.invalid_reasons
    assert results.totals.requests == locust_requests > 0
    assert results.totals.errors == 0
    assert results.config["processes"] == 2 and results.config["distributed"] is True
    names = {e.name: e for e in results.endpoints}
    assert set(names) == {"POST /api/auth/login", "POST /api/auth/register"}
    assert names["POST /api/auth/register"].requests == 4
    login = names["POST /api/auth/login"].latency_ms
    assert login.p50 is not None and login.max is not None and login.p50 <= login.max
    assert 1.4 < results.duration_s < 2.5
    assert results.config["scenario"] == "login" and results.config["concurrency"] == 4
    assert results.timeline and results.histogram.count == results.totals.requests
    assert sum(p.completions for p in results.timeline) == results.totals.requests


def test_url_scenario_against_a_static_server(static_server: str, tmp_path: Path) -> None:
    results, locust_requests = load(f"{static_server}/hello.txt", tmp_path, scenario="url")
    assert results.valid, results.invalid_reasons
    assert [e.name for e in results.endpoints] == ["GET /hello.txt"]
    assert results.config["url_path"] == "/hello.txt"
    assert results.totals.requests == locust_requests > 0
    assert results.totals.errors == 0


def test_overloaded_generator_exits_4_with_results_written(
    static_server: str, tmp_path: Path
) -> None:
    # The fixture locustfile fires Locust's own cpu_warning event, as a saturated CPU would,
    # and asks for a missing file too: its 404s must show as unexpected_status errors.
    out = tmp_path / "load.json"
    result = CliRunner().invoke(
        app,
        [
            "load",
            "--host",
            static_server,
            "--scenario",
            str(OVERLOADED_LOCUSTFILE),
            "--concurrency",
            "2",
            "--duration",
            "2",
            "--out",
            str(out),
            "--quiet",
        ],
    )
    assert result.exit_code == 4, result.output
    assert "generator_overloaded: a load generator process ran above 90 % CPU" in result.output
    results = read_results(out)
    assert isinstance(results, LoadResults)
    assert results.generator.overloaded and not results.valid
    assert [r.code for r in results.invalid_reasons] == ["generator_overloaded"]
    kinds = {(g.endpoint, g.kind) for g in results.errors}
    assert ("GET /missing.txt", "unexpected_status") in kinds


def test_a_run_too_short_for_locusts_cpu_reading_is_still_judged_and_the_error_carries_it(
    static_server: str, tmp_path: Path
) -> None:
    # Locust reads its CPU every 10 s: a saturated 2 s run fires no cpu_warning at all. The
    # plugin reads the span Locust did not.
    with pytest.raises(InvalidLoadRunError) as raised:
        run_load(
            target=static_server,
            profile=LoadProfile(scenario=str(SATURATING_LOCUSTFILE), concurrency=1, duration_s=2),
            out=tmp_path / "load.json",
            quiet=True,
        )
    generator = raised.value.results.generator
    assert generator.overloaded and generator.cpu_warnings == 1
    assert generator.max_cpu_percent is not None and generator.max_cpu_percent > 90
    # The error carries the results it wrote, and where (the CLI's message names the file).
    assert raised.value.path == tmp_path / "load.json"
    assert read_results(raised.value.path) == raised.value.results


@pytest.mark.parametrize("case", list(UNLOADABLE_LOCUSTFILES))
def test_a_locustfile_locust_cannot_load_is_exit_2_in_one_line(
    static_server: str, tmp_path: Path, case: str
) -> None:
    source, problem = UNLOADABLE_LOCUSTFILES[case]
    locustfile = tmp_path / "broken.py"
    locustfile.write_text(source)
    out = tmp_path / "load.json"
    command = ["load", "--host", static_server, "--scenario", str(locustfile), "--duration", "2"]
    result = CliRunner().invoke(app, [*command, "--out", str(out), "--quiet"])
    assert result.exit_code == 2, result.output
    expected = f"error: scenario {locustfile.resolve()} cannot be loaded: {problem}"
    assert result.output.strip().splitlines() == [expected]
    # The run started and measured nothing: the file at --out says so (never an older run's).
    results = read_results(out)
    assert isinstance(results, LoadResults) and results.totals.requests == 0
    (reason,) = results.invalid_reasons
    assert reason.code == "aborted" and "cannot be loaded" in reason.detail


def test_a_generator_that_dies_mid_run_is_exit_4_with_its_last_lines(
    static_server: str, tmp_path: Path
) -> None:
    # Not "your configuration is wrong" (exit 2): the scenario loaded and ran, then Locust died.
    out = tmp_path / "load.json"
    out.write_bytes(dump_results(passing_earlier_run()))  # what an earlier run left there
    command = ["load", "--host", static_server, "--scenario", str(CRASHING_LOCUSTFILE)]
    command += ["--concurrency", "1", "--duration", "10", "--out", str(out), "--quiet"]
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 4, result.output
    assert (
        "error: the load generator (Locust) exited with code 3 without writing results, though "
        f"the scenario loads ({out} is marked generator_crashed); its last lines:" in result.output
    )
    assert "crashing on purpose after 20 requests" in result.output
    # The earlier passing file is replaced: the gate must not judge it as this run's.
    crashed = read_results(out)
    assert not crashed.valid
    assert [reason.code for reason in crashed.invalid_reasons] == ["generator_crashed"]
    assert "exited with code 3" in crashed.invalid_reasons[0].detail
    gate = CliRunner().invoke(app, ["gate", str(out), "--config", str(REPO / "acceptance.toml")])
    assert gate.exit_code == 4, gate.output


def passing_earlier_run() -> LoadResults:
    """The results of an earlier, healthy run: what a stale --out would hold."""
    return crafted_load(errors=())


@pytest.mark.parametrize("command", [["load", "--worker"], ["ui"]])
def test_a_worker_or_ui_locust_that_dies_is_exit_4_not_its_own_code(
    command: list[str], monkeypatch: pytest.MonkeyPatch, static_server: str
) -> None:
    # Locust's own code would say 1 ("criteria not met") or a signal's negative number.
    killed = LocustRun(returncode=-9, interrupted=False, timed_out=False, log_tail="boom")
    monkeypatch.setattr("loadkit.run.load.run_locust", lambda *a, **k: killed)
    args = [*command, "--scenario", "login", "--master-port", str(free_port())]
    if command == ["ui"]:
        args = ["ui", "--host", static_server, "--scenario", "login"]
        args += ["--web-port", str(free_port())]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 4, result.output
    assert "error: the load generator (Locust) was killed by SIGKILL; its last lines:" in (
        result.output
    )


def test_a_worker_whose_locustfile_cannot_load_is_exit_2(tmp_path: Path) -> None:
    locustfile = tmp_path / "broken.py"
    locustfile.write_text(UNLOADABLE_LOCUSTFILES["syntax error"][0])
    command = ["load", "--worker", "--scenario", str(locustfile), "--master-port", str(free_port())]
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 2, result.output
    assert (
        result.output.strip()
        .splitlines()[-1]
        .endswith("SyntaxError: expected ':' (broken.py, line 2)")
    )


def test_sigint_writes_partial_results_marked_aborted_and_exits_130(
    service: BundledService, tmp_path: Path
) -> None:
    out = tmp_path / "load.json"
    command = [
        sys.executable, "-m", "loadkit", "load", "--host", service.url, "--concurrency", "3",
        "--duration", "30", "--out", str(out), "--quiet",
    ]  # fmt: skip
    # Started with SIGINT ignored, as a shell starts a background job: Locust must still hear it.
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    try:
        # Wait until Locust's users talk to the service, then interrupt as Ctrl-C would.
        wait_until_connected(process.pid, service.port)
        time.sleep(1.0)
        started = time.monotonic()
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, stderr
    assert time.monotonic() - started < 15
    assert "ABORTED" in stdout
    results = read_results(out)
    assert isinstance(results, LoadResults)
    assert results.aborted and not results.valid
    assert results.totals.requests > 0
    assert results.duration_s < 20


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_before_anything_was_measured_replaces_a_stale_out_with_an_aborted_file(
    tmp_path: Path, signum: signal.Signals
) -> None:
    # Issue 13: a Ctrl-C before the first request left the older results file at --out, for
    # the gate to judge as this run's.
    out = tmp_path / "load.json"
    write_results(out, crafted_load())
    with serve(hangs) as url:
        command = [
            sys.executable, "-m", "loadkit", "load", f"{url}/", "--engine", "locust",
            "--concurrency", "1",
            "--duration", "30", "--out", str(out), "--quiet",
        ]  # fmt: skip
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        try:
            # The moment Locust's process exists (it is still importing): nothing measured.
            deadline = time.monotonic() + 30
            while not psutil.Process(process.pid).children() and time.monotonic() < deadline:
                time.sleep(0.01)
            process.send_signal(signum)
            _stdout, stderr = process.communicate(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert process.returncode == 130, stderr
    results = read_results(out)
    assert isinstance(results, LoadResults)
    assert has_code(results.invalid_reasons, "aborted") and not results.valid
    assert results.totals.requests == 0
    assert results.config.get("run_id") != crafted_load().config.get("run_id")


def test_an_unreachable_target_replaces_a_stale_out_with_an_aborted_file(tmp_path: Path) -> None:
    out = tmp_path / "load.json"
    write_results(out, crafted_load())
    result = CliRunner().invoke(app, ["load", "--host", closed_port(), "--out", str(out)])
    assert result.exit_code == 3, result.output
    results = read_results(out)
    assert isinstance(results, LoadResults) and not results.valid
    (reason,) = results.invalid_reasons
    assert reason.code == "aborted" and "cannot connect" in reason.detail


def test_unreachable_target_exits_3(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["load", "--host", f"http://127.0.0.1:{free_port()}", "--out", str(tmp_path / "r")]
    )
    assert result.exit_code == 3, result.output
    assert "cannot connect" in result.output


def test_unknown_scenario_exits_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["load", "--scenario", "nope", "--out", str(tmp_path / "r")])
    assert result.exit_code == 2, result.output
    assert "no scenario named 'nope'" in result.output


def test_unwritable_out_exits_2_before_the_run(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    out = tmp_path / "a-file" / "load.json"
    result = CliRunner().invoke(app, ["load", "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert "cannot create" in result.output


def test_master_and_a_separate_worker(service: BundledService, tmp_path: Path) -> None:
    # `loadkit load --worker` in a process of its own, as it would run on another machine.
    port = free_port()
    worker = subprocess.Popen(
        [sys.executable, "-m", "loadkit", "load", "--worker", "--master-port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        results = run_load(
            target=service.url,
            profile=LoadProfile(scenario="login", concurrency=2, duration_s=1),
            out=tmp_path / "load.json",
            quiet=True,
            master=True,
            expect_workers=1,
            master_bind_port=port,
        )
        assert worker.wait(timeout=30) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    assert results.valid, results.invalid_reasons
    assert results.config["distributed"] is True and results.config["processes"] == 1
    assert results.totals.requests > 0 and results.totals.errors == 0


def test_a_worker_quitting_mid_run_still_ships_its_share_and_the_run_is_invalid(
    service: BundledService, tmp_path: Path
) -> None:
    # The last worker quitting makes Locust's master stop the test: the results must not pass
    # as the run asked for, and the worker's final share must arrive before its "quit".
    port = free_port()
    worker = subprocess.Popen(
        [sys.executable, "-m", "loadkit", "load", "--worker", "--master-port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def interrupt_once_loading() -> None:
        wait_until_connected(worker.pid, service.port)
        time.sleep(1.0)
        worker.send_signal(signal.SIGINT)

    interrupter = threading.Thread(target=interrupt_once_loading)
    interrupter.start()
    try:
        with pytest.raises(InvalidLoadRunError) as raised:
            run_load(
                target=service.url,
                profile=LoadProfile(scenario="login", concurrency=2, duration_s=20),
                out=tmp_path / "load.json",
                quiet=True,
                master=True,
                expect_workers=1,
                master_bind_port=port,
            )
        interrupter.join()
        worker.wait(timeout=30)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    results = raised.value.results
    incomplete = [r for r in results.invalid_reasons if r.code == "incomplete"]
    assert incomplete and incomplete[0].detail.startswith("the test stopped after")
    assert not has_code(results.invalid_reasons, "worker_share_missing"), results.invalid_reasons
    assert results.totals.requests > 0 and results.config["processes"] == 1

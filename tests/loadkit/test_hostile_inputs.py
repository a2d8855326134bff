"""Hostile inputs to every command's files and flags: each is a short error and exit 2, never a
traceback and never exit 1 ("criteria not met"), and nothing is read without bound (issue 13).

The cases are those issue 13 listed and those a small adversarial pass over every command's
inputs found (truncated JSON, wrong types, NaN, huge numbers, deep nesting, non-UTF-8, directories,
paths that never end).
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner, Result

from loadkit.cli import app
from loadkit.logs.scan import MAX_LINE_BYTES
from loadkit.measure.results import dump_results
from tests.loadkit.crafted import crafted_load

runner = CliRunner()

CRITERIA = '[[criteria]]\nmetric = "load.p95_ms"\nop = "<"\nthreshold = 1000\n'
LOG_LINE = (
    b'{"ts": "2026-11-28T12:00:00Z", "event": "request", "level": "error", "method": "GET",'
    b' "endpoint": "GET /api/items", "status_code": 503, "error_kind": "storage_lock_timeout",'
    b' "duration_ms": 12.5, "trace_id": "t1"}\n'
)

Build = Callable[[Path], list[str]]
"""Makes a case's files in a folder and returns the command line."""


def results_with(**fields: object) -> bytes:
    data = orjson.loads(dump_results(crafted_load()))
    data.update(fields)
    return json.dumps(data).encode()  # json: orjson refuses the integers past 64 bits tried here


def files(folder: Path, **contents: bytes | str) -> dict[str, str]:
    """Write each file and return its path by name (``config`` becomes acceptance.toml)."""
    paths = {}
    for name, content in contents.items():
        path = folder / ("acceptance.toml" if name == "config" else f"{name}")
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        paths[name] = str(path)
    return paths


def gate_on(results: bytes) -> Build:
    def build(folder: Path) -> list[str]:
        p = files(folder, config=CRITERIA, results=results)
        return ["gate", p["results"], "--config", p["config"]]

    return build


def compare_on(results: bytes) -> Build:
    def build(folder: Path) -> list[str]:
        p = files(folder, before=results_with(), after=results)
        return ["compare", p["before"], p["after"]]

    return build


def errors_with_results(results: bytes) -> Build:
    def build(folder: Path) -> list[str]:
        p = files(folder, log=LOG_LINE, results=results)
        return ["errors", p["log"], "--results", p["results"]]

    return build


def gate_with_config(config: bytes | str) -> Build:
    def build(folder: Path) -> list[str]:
        p = files(folder, config=config, results=results_with())
        return ["gate", p["results"], "--config", p["config"]]

    return build


def errors_on_log(log: bytes, *flags: str) -> Build:
    def build(folder: Path) -> list[str]:
        return ["errors", files(folder, log=log)["log"], *flags]

    return build


def command(*argv: str) -> Build:
    def build(folder: Path) -> list[str]:
        return [arg.replace("{tmp}", str(folder)) for arg in argv]

    return build


SUPERSCRIPT_TWO = results_with(schema="loadkit.results/²")  # "²".isdigit() is True
FIVE_THOUSAND_DIGITS = results_with(schema="loadkit.results/" + "9" * 5000)  # int() refuses
BAD_HOSTS = ("http://[::1", "http://[::1]]", "http://[::1]:99999", "http://" + "a" * 300)

CASES: dict[str, Build] = {
    # results files
    "gate: schema /²": gate_on(SUPERSCRIPT_TWO),
    "gate: schema of 5,000 digits": gate_on(FIVE_THOUSAND_DIGITS),
    "compare: schema /²": compare_on(SUPERSCRIPT_TWO),
    "compare: schema of 5,000 digits": compare_on(FIVE_THOUSAND_DIGITS),
    "errors --results: schema /²": errors_with_results(SUPERSCRIPT_TWO),
    "errors --results: schema of 5,000 digits": errors_with_results(FIVE_THOUSAND_DIGITS),
    "gate: empty file": gate_on(b""),
    "gate: truncated JSON": gate_on(results_with()[:300]),
    "gate: not UTF-8": gate_on(b'{"schema": "loadkit.results/2", "kind": "\xff"}'),
    "gate: JSON nested 100,000 deep": gate_on(b"[" * 100_000),
    "gate: latency as a list": gate_on(results_with(latency_ms=[1, 2])),
    "gate: NaN as a string": gate_on(results_with(duration_s="NaN")),
    "gate: a count beyond 64 bits": gate_on(results_with(totals={"requests": 10**30})),
    "gate: a date before year 1": gate_on(results_with(started_at="0000-01-01T00:00:00Z")),
    "gate: a stall ending 1e308 s in": gate_on(
        results_with(longest_stall={"start_s": 1.0, "end_s": 1e308, "duration_s": 1e308})
    ),
    "gate: results path is a directory": lambda folder: [
        "gate",
        str(folder),
        "--config",
        files(folder, config=CRITERIA)["config"],
    ],
    # acceptance files
    "gate --config: binary": gate_with_config(bytes(range(256)) * 4),
    "gate --config: UTF-16": gate_with_config(CRITERIA.encode("utf-16")),
    "gate --config: nested 5,000 deep": gate_with_config("x = " + "[" * 5000 + "]" * 5000),
    "gate --config: inline tables 5,000 deep": gate_with_config(
        "x = " + "{a = " * 5000 + "1" + "}" * 5000
    ),
    "gate --config: threshold of 5,000 digits": gate_with_config(
        CRITERIA.replace("1000", "9" * 5000)
    ),
    "gate --config: threshold of 4,000 digits": gate_with_config(
        CRITERIA.replace("1000", "9" * 4000)
    ),
    "gate --config: threshold as a string": gate_with_config(CRITERIA.replace("1000", '"1000"')),
    "gate --config: threshold true": gate_with_config(CRITERIA.replace("1000", "true")),
    "gate --config: rate = inf": gate_with_config("[profiles.default]\nrate = inf\n"),
    "gate --config: concurrency = 10.0": gate_with_config(
        "[profiles.default]\nconcurrency = 10.0\n"
    ),
    "gate --config: expect_status as a string": gate_with_config(
        '[[smoke.checks]]\nname = "a"\npath = "/"\nexpect_status = "200"\n'
    ),
    "gate --config: auth as a string": gate_with_config(
        '[[smoke.checks]]\nname = "a"\npath = "/"\nexpect_status = 200\nauth = "true"\n'
    ),
    "gate --config: a directory": lambda folder: [
        "gate",
        files(folder, results=results_with())["results"],
        "--config",
        str(folder),
    ],
    "smoke --config: binary": command("smoke", "--config", "/bin/sh"),
    "audit-locks --config: nested 5,000 deep": lambda folder: [
        "audit-locks",
        "--config",
        files(folder, config="x = " + "[" * 5000 + "]" * 5000)["config"],
    ],
    # logs and time bounds
    "errors --since 99999999999d": errors_on_log(LOG_LINE, "--since", "99999999999d"),
    "errors --until 400-digit seconds": errors_on_log(LOG_LINE, "--until", "9" * 400 + "s"),
    "errors --since 0001-01-01T00:00:00+14:00": errors_on_log(
        LOG_LINE, "--since", "0001-01-01T00:00:00+14:00"
    ),
    "errors --until 9999-12-31T23:59:59-14:00": errors_on_log(
        LOG_LINE, "--until", "9999-12-31T23:59:59-14:00"
    ),
    "errors: truncated gzip": errors_on_log(gzip.compress(LOG_LINE * 100)[:40]),
    "errors: a directory": command("errors", "{tmp}"),
    # sources of the lock audit
    "audit-locks: 100,000 additions": lambda folder: [
        "audit-locks",
        files(folder, **{"deep.py": "x = 1" + "+1" * 100_000 + "\n"})["deep.py"],
    ],
    "audit-locks: 200,000 unary minus": lambda folder: [
        "audit-locks",
        files(folder, **{"deep.py": "x = " + "-" * 200_000 + "1\n"})["deep.py"],
    ],
    "audit-locks: 2,000 additions (parses, too deep to walk)": lambda folder: [
        "audit-locks",
        files(folder, **{"deep.py": "x = 1" + "+1" * 2_000 + "\n"})["deep.py"],
    ],
    # flags
    "ui --web-port 99999": command("ui", "--web-port", "99999"),
    "load --master-port 0": command("load", "--master-port", "0"),
    "load --expect-workers 0": command("load", "--master", "--expect-workers", "0"),
    "load --master --worker": command("load", "--master", "--worker"),
}
for _host in BAD_HOSTS:
    CASES[f"load --host {_host[:30]}"] = command("load", "--host", _host)
    CASES[f"load URL {_host[:30]}"] = command("load", _host)
    CASES[f"smoke --host {_host[:30]}"] = command("smoke", "--host", _host)
    CASES[f"ui --host {_host[:30]}"] = command("ui", "--host", _host)
    CASES[f"accept --host {_host[:30]}"] = command(
        "accept", "--host", _host, "--out-dir", "{tmp}/reports"
    )


def assert_refused(result: Result) -> None:
    """Exit 2 with a one-line "error:" (a usage error of the flag parser counts), no traceback."""
    crashed = result.exception is not None and not isinstance(result.exception, SystemExit)
    assert not crashed, f"crashed: {result.exception!r}\n{result.output}"
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert lines, "no message at all"
    assert lines[0].startswith("error: ") or "Error: Invalid value" in result.output, lines[0]


@pytest.mark.parametrize("build", CASES.values(), ids=list(CASES))
def test_hostile_input_is_an_error_with_exit_2(tmp_path: Path, build: Build) -> None:
    argv = build(tmp_path)
    result = runner.invoke(app, argv)
    assert_refused(result)
    assert not (tmp_path / "reports").exists(), "accept wrote a report folder for a bad --host"


def test_serve_refuses_a_port_out_of_range_before_it_starts_the_service() -> None:
    # A subprocess: serve replaces its process with the service's, which must not be pytest's.
    done = subprocess.run(
        [sys.executable, "-m", "loadkit", "serve", "--port", "70000"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "Invalid value for '--port'" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_log_line_whose_ts_cannot_be_a_date_is_read_without_its_time(tmp_path: Path) -> None:
    # 0001-01-01T00:00:00+14:00 is valid ISO 8601, but lies before the year 1 in UTC.
    odd = LOG_LINE.replace(b"2026-11-28T12:00:00Z", b"0001-01-01T00:00:00+14:00")
    result = runner.invoke(app, ["errors", files(tmp_path, log=odd + LOG_LINE)["log"]])
    assert result.exit_code == 0, result.output
    assert "2 service log lines" in result.output


def test_a_log_line_longer_than_the_bound_is_skipped_not_held(tmp_path: Path) -> None:
    huge = b'{"event": "request", "pad": "' + b"x" * (MAX_LINE_BYTES * 3) + b'"}\n'
    result = runner.invoke(app, ["errors", files(tmp_path, log=huge + LOG_LINE)["log"]])
    assert result.exit_code == 0, result.output
    assert "skipped 1" in result.output or "1 not JSON" in result.output, result.output


@contextlib.contextmanager
def endless_fifo(path: Path) -> Iterator[Path]:
    """A named pipe a thread keeps writing to until the reader closes it."""
    os.mkfifo(path)

    def feed() -> None:
        with contextlib.suppress(BrokenPipeError, OSError), path.open("wb") as pipe:
            chunk = b"{" * 65536
            while True:
                pipe.write(chunk)

    thread = threading.Thread(target=feed, daemon=True)
    thread.start()
    try:
        yield path
    finally:
        # Unblock a writer still waiting for a reader (the test failed before reading).
        with contextlib.suppress(OSError):
            os.close(os.open(path, os.O_RDONLY | os.O_NONBLOCK))
        thread.join(timeout=10)


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
def test_results_and_config_paths_that_never_end_are_read_to_a_bound(tmp_path: Path) -> None:
    config = files(tmp_path, config=CRITERIA)["config"]
    result = runner.invoke(app, ["gate", "/dev/zero", "--config", config])
    assert_refused(result)
    assert "larger than 64 MiB" in result.output
    results = files(tmp_path, results=results_with())["results"]
    result = runner.invoke(app, ["gate", results, "--config", "/dev/zero"])
    assert_refused(result)
    assert "larger than 1 MiB" in result.output


def test_a_pipe_that_never_ends_is_read_to_a_bound(tmp_path: Path) -> None:
    config = files(tmp_path, config=CRITERIA)["config"]
    with endless_fifo(tmp_path / "fifo") as fifo:
        result = runner.invoke(app, ["gate", str(fifo), "--config", config])
    assert_refused(result)
    assert "larger than 64 MiB" in result.output


def test_smoke_reports_the_unreachable_target_even_when_out_cannot_be_written(
    tmp_path: Path,
) -> None:
    # The error that stopped the run is the one to report (exit 3), not one about --out.
    result = CliRunner().invoke(
        app, ["smoke", "--host", "http://127.0.0.1:1", "--out", str(tmp_path)]
    )
    assert result.exit_code == 3, result.output


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--worker", "--master-host", "http://[::1"], "--master-host 'http://[::1'"),
        (["--worker", "--master-host", "no such host!"], "--master-host 'no such host!'"),
        (["--master", "--master-bind-host", "no such host!"], "--master-bind-host 'no such host!'"),
    ],
)
def test_a_malformed_master_host_is_refused_before_locust_starts(
    args: list[str], named: str
) -> None:
    # Locust took these to its socket layer and died with a traceback (exit 4).
    result = CliRunner().invoke(app, ["load", *args])
    assert result.exit_code == 2, result.output
    assert result.output.startswith(f"error: {named}: "), result.output

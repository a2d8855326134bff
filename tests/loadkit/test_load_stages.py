"""Load stages: in a closed-model run the users follow the stages' ramp (loadkit's own
``LoadTestShape`` in the plugin), in an open one the rate; either way the results and the summary
have a summary per stage, the stages' total is the run's duration, and what cannot be one run
(``--stages`` with ``--duration``, with a locustfile's own ``LoadTestShape``) is exit 2.

The runs last 3 s against a loopback server of this test that answers every request after 50 ms,
so that a user's requests per second are fixed and the per-second completions count its users.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from loadkit.measure.results import LoadResults, read_results
from loadkit.report.load import render_load_table
from tests.loadkit.misbehaving_servers import read_request, serve
from tests.loadkit.scheduled_server import scheduled_server

pytestmark = pytest.mark.slow

SCENARIOS = Path(__file__).parent.parent / "scenarios"
COUNTED = SCENARIOS / "stages_locustfile.py"
SHAPE = SCENARIOS / "shape_locustfile.py"
ANSWER_AFTER_S = 0.05


def answers_after_a_while(conn: socket.socket) -> None:
    """Every request answered 200 after ``ANSWER_AFTER_S``: 20 requests a second per user."""
    while read_request(conn):
        time.sleep(ANSWER_AFTER_S)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n")
        conn.sendall(b"Content-Length: 2\r\n\r\n{}")


def loadkit_load(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "loadkit", "load", "--quiet", *args],
        capture_output=True,
        text=True,
        timeout=90,
    )


def test_closed_model_stages_ramp_the_users_and_end_the_run(tmp_path: Path) -> None:
    out = tmp_path / "load.json"
    with serve(answers_after_a_while) as target:
        done = loadkit_load(
            "--scenario", str(COUNTED), "--host", target, "--stages", "1s:2,1s:4,1s:0",
            "--out", str(out),
        )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    results = read_results(out)
    assert isinstance(results, LoadResults) and results.valid, results.invalid_reasons
    config = results.config
    assert config["model"] == "closed"
    assert config["stages"] == [
        {"duration_s": 1.0, "target": 2.0, "name": None},
        {"duration_s": 1.0, "target": 4.0, "name": None},
        {"duration_s": 1.0, "target": 0.0, "name": None},
    ]
    assert config["duration_s"] == 3 and "shape" not in config
    assert results.duration_s == pytest.approx(3.0, abs=0.5)  # the stages' total, then stopped
    # Each second runs the ramp's mean users for that second: 1 (0→2), 3 (2→4), 2 (4→0).
    assert config["concurrency"] == 3  # the most users asked for at once
    starts = {e.name: e.requests for e in results.endpoints}["GET /start"]
    assert starts == 3  # 1, then 2 more; the ramp down stops users, it starts none
    per_second = [s.completions for s in results.timeline[:3]]
    assert 0 < per_second[0] < per_second[2] < per_second[1], per_second
    # A summary per stage, each request in the stage it was sent in: they follow the users.
    stages = results.stages
    assert stages is not None and [s.target for s in stages] == [2.0, 4.0, 0.0]
    sent = [s.requests for s in stages]
    assert 0 < sent[0] < sent[2] < sent[1], sent
    assert sum(sent) == results.totals.requests
    assert all(s.service_time_ms is None for s in stages)  # closed: one time per request
    table = render_load_table(results)
    assert "target users" in table and "stage 3 " in table


def test_open_model_stages_ramp_the_rate_with_a_summary_per_stage(tmp_path: Path) -> None:
    # 10/s ramped to 20/s over 1 s (15 iterations due), then 20/s for 1 s (20): each iteration
    # counted in the stage it was due in, timed from the timetable's start.
    out = tmp_path / "load.json"
    with scheduled_server() as (url, _):
        done = subprocess.run(
            [sys.executable, "-m", "loadkit", "load", url, "--engine", "locust", "--rate", "10",
             "--stages", "1s:20,1s:20", "--out", str(out)],
            capture_output=True, text=True, timeout=90,
        )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    results = read_results(out)
    assert isinstance(results, LoadResults) and results.valid, results.invalid_reasons
    assert results.config["model"] == "open"
    stages = results.stages
    assert stages is not None
    assert [(s.requests, s.rps, s.not_sent) for s in stages] == [(15, 15.0, 0), (20, 20.0, 0)]
    assert results.totals.requests == 35
    # The summary prints the stage table: rates, requests, response and service time.
    assert "stages (each request in the stage its response time began in):" in done.stdout
    header = next(line for line in done.stdout.splitlines() if line.startswith("stage "))
    assert "target rate /s" in header and "svc P95 ms" in header
    rows = [line.split() for line in done.stdout.splitlines() if line.startswith("stage ")][1:]
    assert [row[:6] for row in rows] == [
        ["stage", "1", "0–1", "20", "15", "15.0"],
        ["stage", "2", "1–2", "20", "20", "20.0"],
    ]


def test_stages_with_a_duration_are_refused() -> None:
    done = loadkit_load("--stages", "1s:2,1s:0", "--duration", "5")
    assert done.returncode == 2, done.stderr
    assert "--stages and --duration cannot go together: the stages' total (2 s)" in done.stderr


def test_stages_or_a_rate_with_a_locustfiles_own_shape_are_refused(tmp_path: Path) -> None:
    # Both at once (each a Locust start-up that refuses: seconds of imports, no load).
    stages_out, rate_out = tmp_path / "stages.json", tmp_path / "rate.json"
    with serve(answers_after_a_while) as target, ThreadPoolExecutor(max_workers=2) as pool:
        by_stages = pool.submit(
            loadkit_load,
            *("--scenario", str(SHAPE), "--host", target, "--stages", "1s:2"),
            *("--out", str(stages_out)),
        )
        by_rate = pool.submit(
            loadkit_load,
            *("--scenario", str(SHAPE), "--host", target, "--rate", "10", "--duration", "2"),
            *("--out", str(rate_out)),
        )
        stages_done, rate_done = by_stages.result(), by_rate.result()
    assert stages_done.returncode == 2, stages_done.stdout + stages_done.stderr
    assert (
        "error: stages cannot drive a locustfile that has a LoadTestShape of its own (TwoSteps)"
        in stages_done.stderr
    )
    assert "Locust refused" not in stages_done.stderr
    assert rate_done.returncode == 2, rate_done.stdout + rate_done.stderr
    assert (
        "error: --loadkit-rate cannot drive a locustfile that has a LoadTestShape of its own "
        "(TwoSteps)" in rate_done.stderr
    )
    for out in (stages_out, rate_out):
        results = read_results(out)  # no stale file of an earlier run for the gate to read
        assert isinstance(results, LoadResults) and not results.valid


def test_fewer_slots_than_workers_are_refused() -> None:
    # One slot over two workers: Locust would give one worker no user, and its half of the
    # timetable would silently never run.
    done = loadkit_load(
        "--rate", "10", "--duration", "2", "--max-in-flight", "1", "--processes", "2"
    )
    assert done.returncode == 2, done.stderr
    assert "--max-in-flight 1 is below --processes 2" in done.stderr


def test_a_bad_stages_flag_is_blamed_on_the_flag_not_the_profile() -> None:
    done = loadkit_load("--stages", "1s:20000")
    assert done.returncode == 2, done.stderr
    assert "error: --stages: a stage's target is 20000 users" in done.stderr

"""A distributed native run's start: from the master's launch to the target's first request.

The master sends each worker its plan; each worker sets its share up (its event loop, pool and
recorder; an open run's users' setup, a declarative scenario's logins) and says so, and once
all have, the master sends the common start ``DISTRIBUTED_START_LEAD_S`` ahead
(``loadkit/run/native.py``; before that handshake the plan itself fixed the start that lead
after it went, and a setup longer than the lead was lag). A worker takes its master's clock on
the plan's arrival (``sent_at``), so the lead only covers the start message's way.

Each round runs, on loopback, one master and two workers (``loadkit load URL --engine native
--master --expect-workers 2 --rate 100 --duration 1`` and ``loadkit load --worker --engine
native``; the workers launched first, the master 3 s later) against a tiny thread server that
notes when the first request arrives (wall clock: one machine, one clock), for five variants
alternated (A B C D E A B C D E ...): the revision ``--base`` (its own lead), this tree, this
tree with the lead forced to 0 (a probe: how late the first request comes when no lead is
left, i.e. what the lead must cover), and the base and this tree running a declarative scenario
whose every user first logs in, each login answered after ``LOGIN_S`` (``--scenario slow``,
five users per worker). Figures per variant (medians, and the worst round):

- launch → first request: what a user waits for, from the master's launch;
- planned start → first request: how late the first request came after the common start in
  the results (``started_at``): the worker's hop (a few ms), plus any preparation the lead did
  not cover;
- the run's scheduler lag P99 and validity (a lead too short shows as lag: the worker begins
  past the start, and its first iterations are late).

    .venv/bin/python bench/bench_distributed_start.py --base main [--rounds 5]

Prints a table and replaces its section of docs/benchmarks.md (``--no-write`` to skip).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from bench_revisions import revision_tree

from benchmarks_page import write_section

ROOT = Path(__file__).resolve().parent.parent
SECTION = "## Distributed native run: the start lead (bench/bench_distributed_start.py)"
LOGIN_S = 0.6
"""The slow variants' login: more than twice the 0.25 s lead the plan alone used to give."""
ACCEPTANCE = """
[[criteria]]
metric = "load.error_rate"
op = "<"
threshold = 0.5

[lock_audit]
paths = ["src"]

[[scenarios.slow.setup]]
method = "POST"
path = "/login"
json = {}
expect_status = 200

[[scenarios.slow.requests]]
path = "/items"
expect_status = 200
"""
WORKERS_FIRST_S = 3.0
"""The workers are launched this long before the master: their imports are not the start's."""
RUN_BOUND_S = 120.0
READ_LEAD = "from loadkit.run.native import DISTRIBUTED_START_LEAD_S as lead; print(lead)"
PATCHED_LEAD = (
    "import sys\n"
    "import loadkit.run.native as native\n"
    "native.DISTRIBUTED_START_LEAD_S = float(sys.argv.pop(1))\n"
    "from loadkit.cli import main\n"
    "sys.argv[0] = 'loadkit'\n"
    "main()\n"
)


class _FirstRequest(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's backlog of 5 drops the SYNs of a burst of users connecting at once, and
    # their retries a second later would be charged to the start.
    request_queue_size = 128
    first: float | None = None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _FirstRequest

    def do_GET(self) -> None:
        if self.server.first is None:
            self.server.first = time.time()
        self._answer()

    def do_POST(self) -> None:
        # A login (the slow variants' setup): not the timetable's first request.
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        time.sleep(LOGIN_S)
        self._answer()

    def _answer(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def first_request_server() -> Iterator[_FirstRequest]:
    """A loopback server noting its first request's wall-clock time."""
    server = _FirstRequest(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def lead_of(tree: Path) -> float:
    """The start lead of ``tree``'s loadkit (read in a process of its own: this one has
    imported the venv's editable install already)."""
    done = subprocess.run(
        [sys.executable, "-c", READ_LEAD],
        cwd=tree,  # ``-c`` puts the working folder first on the path
        env={**os.environ, "PYTHONPATH": str(tree)},
        capture_output=True,
        text=True,
        check=True,
    )
    return float(done.stdout)


def one_run(tree: Path, lead: float | None, *, login: bool = False) -> dict[str, float | bool]:
    """One master and two workers from ``tree`` (``lead``: forced onto the master, else its
    own; ``login``: the slow-login scenario instead of the URL): the start's figures."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    port = str(free_port())
    with (
        first_request_server() as server,
        tempfile.TemporaryDirectory(prefix="bench-dist-") as tmp,
    ):
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        out = Path(tmp) / "load.json"
        worker = [
            sys.executable, "-m", "loadkit", "load", "--worker", "--engine", "native",
            "--master-host", "127.0.0.1", "--master-port", port, "-q",
        ]  # fmt: skip
        launch = [sys.executable, "-m", "loadkit"]
        if lead is not None:
            launch = [sys.executable, "-c", PATCHED_LEAD, str(lead)]
        what = [url]
        if login:
            config = Path(tmp) / "acceptance.toml"
            config.write_text(ACCEPTANCE)
            what = ["--scenario", "slow", "--host", url, "--config", str(config)]
        master = [
            *launch, "load", *what, "--engine", "native", "--master", "--expect-workers", "2",
            "--master-bind-host", "127.0.0.1", "--master-port", port, "--rate", "100",
            "--duration", "1", "--max-in-flight", "10", "--out", str(out), "-q",
        ]  # fmt: skip

        # An empty working folder: no acceptance.toml, locust.conf or pyproject.toml of ours.
        def launch_in_tmp(command: list[str]) -> subprocess.Popen[str]:
            return subprocess.Popen(
                command,
                cwd=tmp,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )

        started = [launch_in_tmp(worker) for _ in range(2)]
        time.sleep(WORKERS_FIRST_S)
        launched = time.time()
        run = launch_in_tmp(master)
        try:
            _, stderr = run.communicate(timeout=RUN_BOUND_S)
            ended = time.time()
            for process in started:
                process.communicate(timeout=RUN_BOUND_S)
        finally:
            for process in [run, *started]:
                if process.poll() is None:
                    process.kill()
                    process.communicate()
        if not out.exists() or server.first is None:
            raise SystemExit(f"the master from {tree} exited {run.returncode}:\n{stderr}")
        results = json.loads(out.read_text())
    planned = datetime.fromisoformat(results["started_at"]).timestamp()
    return {
        "to_first_s": server.first - launched,
        "late_ms": (server.first - planned) * 1000.0,
        "lag_p99_ms": float(results["schedule"]["lag_ms"]["p99"]),
        "valid": not results["invalid_reasons"],
        "exit_s": ended - launched,
    }


def main() -> None:
    """Run the comparison and print (and record) the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="main", help="the git revision to compare with")
    parser.add_argument("--rounds", type=int, default=5, help="rounds, variants alternated")
    parser.add_argument("--no-write", action="store_true", help="do not update the docs")
    args = parser.parse_args()

    base_name = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", args.base],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    runs: dict[str, list[dict[str, float | bool]]] = {}
    with revision_tree(args.base) as base_tree:
        base_lead, lead = lead_of(base_tree), lead_of(ROOT)
        slow = f"logins of {LOGIN_S:g} s"
        variants = [
            (f"base {base_name} (lead {base_lead:g} s)", base_tree, None, False),
            (f"this tree (lead {lead:g} s)", ROOT, None, False),
            ("this tree, lead forced to 0 (probe)", ROOT, 0.0, False),
            (f"base {base_name}, {slow}", base_tree, None, True),
            (f"this tree, {slow}", ROOT, None, True),
        ]
        for round_no in range(1, args.rounds + 1):
            for label, tree, forced, login in variants:
                figures = one_run(tree, forced, login=login)
                runs.setdefault(label, []).append(figures)
                print(
                    f"round {round_no} {label:42} first request {figures['to_first_s']:.3f} s "
                    f"after launch, {figures['late_ms']:7.1f} ms after the planned start, "
                    f"lag P99 {figures['lag_p99_ms']:.1f} ms, valid {figures['valid']}"
                )
    rows = []
    base_first = base_exit = 0.0
    for label, measured in runs.items():

        def column(key: str, measured: list[dict[str, float | bool]] = measured) -> list[float]:
            return [float(f[key]) for f in measured]

        first, to_exit = (
            statistics.median(column("to_first_s")),
            statistics.median(column("exit_s")),
        )
        base_first, base_exit = base_first or first, base_exit or to_exit
        late, lag = column("late_ms"), column("lag_p99_ms")
        rows.append(
            f"| {label} | {first:.3f} | {first / base_first:.2f} | "
            f"{statistics.median(late):.1f} (max {max(late):.1f}) | "
            f"{statistics.median(lag):.1f} (max {max(lag):.1f}) | "
            f"{sum(bool(f['valid']) for f in measured)}/{len(measured)} | "
            f"{to_exit:.2f} | {to_exit / base_exit:.2f} |"
        )
    text = "\n".join(
        [
            SECTION,
            "",
            f"Measured {datetime.now(UTC):%Y-%m-%d} on {os.cpu_count()} cores (shared with other "
            f"work), Python {platform.python_version()}, with `.venv/bin/python "
            f"bench/bench_distributed_start.py --base {args.base} --rounds {args.rounds}` (base "
            f"{base_name}). A native master and two workers on loopback, `--rate 100 --duration "
            f"1 --max-in-flight 10`, the workers launched {WORKERS_FIRST_S:g} s before the master; "
            "the variants alternated each round; the last two run a declarative scenario whose "
            f"every user (five per worker) first logs in, each login answered after {LOGIN_S:g} "
            's. Medians over the rounds (worst in brackets). "After the planned start": the '
            "target's first request (of the timetable, not a login) minus the results' "
            "`started_at` (the common start); the probe, with no lead at all, shows what the "
            "lead has to cover. Ratios are to the base's URL run.",
            "",
            "| variant | master launch → first request (s) | ratio to base | first request "
            "after the planned start (ms) | lag P99 (ms) | valid | master launch → exit (s) | "
            "ratio to base |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
            *rows,
        ]
    )
    print(text)
    if not args.no_write:
        write_section(text)


if __name__ == "__main__":
    main()

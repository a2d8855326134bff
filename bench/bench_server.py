"""Throughput of the bundled service under candidate HTTP servers (wrk on loopback).

Each candidate serves ``service.app:create_app`` (the real app, a fresh SQLite file, bcrypt
rounds 10) on a free loopback port; wrk drives ``GET /version`` (no database), ``GET /health``
(``SELECT 1``) and ``POST /api/auth/login`` (one bcrypt check) for ``--seconds`` each; the
candidates are interleaved A B C D, A B C D, ... so that other work on the machine spreads over
all of them. Prints a Markdown table: req/s per round and median, and the server's CPU time per
request (median), which other work on the machine moves far less than req/s.

    .venv/bin/python bench/bench_server.py --rounds 3 --seconds 10

granian and hypercorn are not project dependencies: install them where ``--extra-path`` points
(``pip install --no-deps --target /tmp/bench-site granian hypercorn priority``).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from loadkit.run.bundled_service import free_port

FACTORY = "service.app:create_app"
LOGIN_LUA = """
wrk.method = "POST"
wrk.body = '{"email": "bench@example.org", "password": "password123"}'
wrk.headers["Content-Type"] = "application/json"
"""


def command(candidate: str, port: int) -> list[str]:
    """The command line serving the app under ``candidate`` on ``port``."""
    py = sys.executable
    bind = ["--host", "127.0.0.1", "--port", str(port)]
    uvi = [py, "-m", "uvicorn", "--factory", FACTORY, *bind, "--no-access-log"]
    uvi += ["--loop", "uvloop", "--log-level", "warning"]
    if candidate == "service":  # python -m service: uvicorn httptools + service.server's limits
        return [py, "-m", "service", *bind]
    if candidate == "uvicorn-httptools":
        return [*uvi, "--http", "httptools"]
    if candidate == "uvicorn-h11":
        return [*uvi, "--http", "h11"]
    if candidate == "granian":
        return [
            py, "-m", "granian", "--interface", "asgi", "--factory", FACTORY,
            *bind, "--workers", "1", "--loop", "uvloop", "--no-ws", "--log-level", "warning",
        ]  # fmt: skip
    if candidate == "hypercorn":
        return [
            py, "-m", "hypercorn", f"{FACTORY}()", "--bind", f"127.0.0.1:{port}",
            "--worker-class", "uvloop", "--log-level", "warning",
        ]  # fmt: skip
    raise ValueError(candidate)


@dataclass(frozen=True)
class Figure:
    """One wrk run: throughput, and the server's CPU per request (steadier under contention)."""

    rps: float
    cpu_us: float


def tree_cpu_s(process: psutil.Process) -> float:
    """User + system CPU seconds of a process and its children."""
    total = 0.0
    for p in (process, *process.children(recursive=True)):
        times = p.cpu_times()
        total += times.user + times.system
    return total


def wrk(url: str, seconds: int, script: Path | None, server: psutil.Process) -> Figure:
    """Requests per second wrk measured (1 thread, 10 connections) and the server's CPU time
    per request (its whole process tree: granian serves from a child process)."""
    args = ["wrk", "-t1", "-c10", f"-d{seconds}s", url]
    if script is not None:
        args[1:1] = ["-s", str(script)]
    cpu_before = tree_cpu_s(server)
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    cpu_s = tree_cpu_s(server) - cpu_before
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if match is None or total is None or non_2xx is not None:
        raise RuntimeError(f"wrk: {out}")
    return Figure(rps=float(match.group(1)), cpu_us=cpu_s / int(total.group(1)) * 1e6)


def serve_and_measure(candidate: str, seconds: int, workdir: Path, script: Path) -> list[Figure]:
    """/version, /health then login req/s for one candidate, on a fresh database."""
    port = free_port()
    db = workdir / f"{candidate}.db"
    db.unlink(missing_ok=True)
    env = {
        **os.environ,
        "ENGINES_DATABASE_URL": f"sqlite+aiosqlite:///{db}",
        "ENGINES_LOG_LEVEL": "warning",
    }
    log = (workdir / f"{candidate}.log").open("ab")
    process = subprocess.Popen(command(candidate, port), env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError(f"{candidate} did not start; see {log.name}")
            time.sleep(0.2)
        body = {"email": "bench@example.org", "password": "password123"}
        httpx.post(f"{url}/api/auth/register", json=body, timeout=10).raise_for_status()
        server = psutil.Process(process.pid)
        return [
            wrk(f"{url}/version", seconds, None, server),
            wrk(f"{url}/health", seconds, None, server),
            wrk(f"{url}/api/auth/login", seconds, script, server),
        ]
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()


def main() -> None:
    """Run the interleaved rounds and print the table."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument(
        "--candidates", default="service,uvicorn-httptools,uvicorn-h11,granian,hypercorn"
    )
    parser.add_argument("--extra-path", default="", help="where granian/hypercorn are installed")
    args = parser.parse_args()
    if args.extra_path:
        os.environ["PYTHONPATH"] = os.pathsep.join(
            p for p in (os.environ.get("PYTHONPATH", ""), args.extra_path) if p
        )
    candidates = args.candidates.split(",")
    figures: dict[str, list[list[Figure]]] = {c: [] for c in candidates}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        script = workdir / "login.lua"
        script.write_text(LOGIN_LUA)
        for round_no in range(args.rounds):
            for candidate in candidates:
                pair = serve_and_measure(candidate, args.seconds, workdir, script)
                figures[candidate].append(pair)
                print(f"round {round_no + 1} {candidate}: {pair}", file=sys.stderr)
    columns = ("/version", "/health", "login")
    print(
        "| server | "
        + " | ".join(f"{c} req/s (rounds) | median | {c} CPU µs/req" for c in columns)
        + " |"
    )
    print("|---|" + "---|---:|---:|" * len(columns))
    for candidate, rounds in figures.items():
        cells = []
        for column in range(len(columns)):
            rps = [r[column].rps for r in rounds]
            cpu = [r[column].cpu_us for r in rounds]
            cells.append(", ".join(f"{x:,.1f}" if x < 100 else f"{x:,.0f}" for x in rps))
            median = statistics.median(rps)
            cells.append(f"{median:,.1f}" if median < 100 else f"{median:,.0f}")
            cells.append(f"{statistics.median(cpu):,.0f}")
        print(f"| {candidate} | {' | '.join(cells)} |")


if __name__ == "__main__":
    main()

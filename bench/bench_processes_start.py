"""A short ``loadkit load --processes 2`` run from start to exit, this tree against a revision.

What a multi-process run pays besides its load is fixed: spawning or forking the processes,
their common start, Locust's waits for its workers and its quits. Every such run pays it (a CI
suite dozens of times), so it is measured as wall time of the whole command: ``loadkit load
URL --concurrency 2 --duration 1 --processes 2`` on each engine (native: a URL; Locust: the
same URL with ``--engine locust``), against nginx on loopback (see bench_load.py), from the
revision ``--base`` (a temporary git worktree) and from this tree, alternated for ``--rounds``
rounds (A B A B ...). Medians, and the time this tree saves per run.

    .venv/bin/python bench/bench_processes_start.py --base main [--rounds 3]

Prints a table and replaces its section of docs/benchmarks.md (``--no-write`` to skip).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench_revisions import revision_tree

from bench_load import STATIC_PATH, nginx
from benchmarks_page import write_section

ROOT = Path(__file__).resolve().parent.parent
SECTION = "## Multi-process run start and end (bench/bench_processes_start.py)"
ENGINES = ("native", "locust")


def run_seconds(tree: Path, url: str, *, engine: str) -> float:
    """Wall time of one 1 s ``loadkit load --processes 2`` run from ``tree``, start to exit."""
    with tempfile.TemporaryDirectory(prefix="bench-start-") as tmp:
        command = [
            sys.executable, "-m", "loadkit", "load", f"{url}{STATIC_PATH}", "--engine", engine,
            "--concurrency", "2", "--duration", "1", "--processes", "2",
            "--out", str(Path(tmp) / "load.json"), "--quiet",
        ]  # fmt: skip
        env = {**os.environ, "PYTHONPATH": str(tree)}
        started = time.perf_counter()
        # An empty working folder: Locust reads locust.conf and pyproject.toml from it.
        done = subprocess.run(command, cwd=tmp, env=env, capture_output=True, text=True)
        took = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"loadkit load from {tree} exited {done.returncode}:\n{done.stderr}")
    return took


def main() -> None:
    """Run the comparison and print (and record) the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="HEAD", help="the git revision to compare with")
    parser.add_argument("--rounds", type=int, default=3, help="base/current pairs, alternated")
    parser.add_argument("--no-write", action="store_true", help="do not update the docs")
    args = parser.parse_args()

    base_name = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", args.base],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    times: dict[tuple[str, str], list[float]] = {}
    with nginx() as url, revision_tree(args.base) as base_tree:
        for round_no in range(1, args.rounds + 1):
            for engine in ENGINES:
                for label, tree in (("base", base_tree), ("current", ROOT)):
                    took = run_seconds(tree, url, engine=engine)
                    times.setdefault((engine, label), []).append(took)
                    print(f"round {round_no} {engine:6} {label:8} {took:5.2f} s")
    rows = []
    for engine in ENGINES:
        base, current = times[engine, "base"], times[engine, "current"]
        saved = statistics.median(base) - statistics.median(current)
        rows.append(
            f"| {engine} | {', '.join(f'{t:.2f}' for t in base)} | "
            f"{', '.join(f'{t:.2f}' for t in current)} | {saved:.2f} s | "
            f"{statistics.median(current) / statistics.median(base):.2f} |"
        )
    text = "\n".join(
        [
            SECTION,
            "",
            f"Measured {datetime.now(UTC):%Y-%m-%d} on {os.cpu_count()} cores (shared with other "
            f"work), Python {platform.python_version()}, with `.venv/bin/python "
            f"bench/bench_processes_start.py --base {args.base} --rounds {args.rounds}` (base "
            f"{base_name}). `loadkit load URL --engine E --concurrency 2 --duration 1 "
            "--processes 2` against nginx on loopback, wall time from start to exit, the base "
            "revision's tree and this one alternated. Everything beyond the 1 s of load is fixed "
            "cost every multi-process run pays.",
            "",
            "| engine | base, each round (s) | this tree, each round (s) | saved per run "
            "(medians) | ratio |",
            "|---|---|---|---:|---:|",
            *rows,
        ]
    )
    print(text)
    if not args.no_write:
        write_section(text)


if __name__ == "__main__":
    main()

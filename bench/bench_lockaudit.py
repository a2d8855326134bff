"""Benchmark: how long ``loadkit audit-locks`` takes on this whole project.

Run from the repository root::

    .venv/bin/python bench/bench_lockaudit.py [--runs 15] [PATHS...]

Audits ``loadkit service scenarios tests bench`` by default (every Python file of the project),
in process, through the same code the CLI runs, and prints the median wall time of several runs
(the first run, which pays for imports and cold file caches, is reported apart). Prints figures
only; it asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from loadkit.config import LockAuditConfig
from loadkit.lockaudit.run import audit_paths, find_python_files, read_source

DEFAULT_PATHS = ("loadkit", "service", "scenarios", "tests", "bench")


def main() -> None:
    """Time the audit and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", default=list(DEFAULT_PATHS))
    parser.add_argument("--runs", type=int, default=15, help="timed runs after the first")
    args = parser.parse_args()
    paths = [Path(p) for p in args.paths if Path(p).exists()]
    config = LockAuditConfig()

    files = find_python_files(paths)
    lines = sum(read_source(f).count("\n") for f in files)

    started = time.perf_counter()
    first = audit_paths(paths, config)
    cold_s = time.perf_counter() - started

    timings = []
    for _ in range(args.runs):
        started = time.perf_counter()
        audit_paths(paths, config)
        timings.append(time.perf_counter() - started)

    median_s = statistics.median(timings)
    print(f"audit-locks on {' '.join(p.as_posix() for p in paths)}")
    print(f"  {len(files)} files, {lines} lines, {first.summary.violations} findings")
    print(f"  first run: {cold_s * 1000:.1f} ms")
    print(
        f"  median of {args.runs} runs: {median_s * 1000:.1f} ms "
        f"(min {min(timings) * 1000:.1f} ms, max {max(timings) * 1000:.1f} ms), "
        f"{lines / median_s / 1000:.0f} k lines/s"
    )


if __name__ == "__main__":
    main()

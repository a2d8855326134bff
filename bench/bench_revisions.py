"""`loadkit load` of this tree against another git revision: CPU per request, side by side.

A change to the measurement core (the recorder, the plugin) must not make the generator cost
more per request. This runs ``loadkit load URL`` flat out against nginx on loopback (see
bench_load.py) from two source trees, the revision ``--base`` (checked out in a temporary git
worktree) and the working tree, alternated for ``--rounds`` rounds (A B A B ...), and reports
the CPU of each run's whole process tree per request it completed, and their ratio. CPU per
request, not requests per second: it is what the generator pays, and other work on a shared
machine moves it far less than it moves throughput.

    .venv/bin/python bench/bench_revisions.py --base e4b52b0 [--rounds 3] [--seconds 10]

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
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import orjson

from bench_load import STATIC_PATH, children_cpu_s, nginx
from benchmarks_page import write_section

ROOT = Path(__file__).resolve().parent.parent
SECTION = "## loadkit load against an earlier revision (bench/bench_revisions.py)"
OK_EXITS = (0, 4)
"""A generator flat out against nginx saturates its core and says so (exit 4): the run still
completed, and its cost per request is what is compared."""


@contextmanager
def revision_tree(revision: str) -> Iterator[Path]:
    """A detached git worktree of ``revision``, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="bench-rev-") as tmp:
        tree = Path(tmp) / "tree"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(tree), revision],
            check=True,
        )
        try:
            yield tree
        finally:
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=False
            )


def cpu_us_per_request(tree: Path, url: str, *, users: int, seconds: int) -> tuple[float, int]:
    """One ``loadkit load`` run from ``tree``: (CPU µs per request, requests)."""
    with tempfile.TemporaryDirectory(prefix="bench-run-") as tmp:
        out = Path(tmp) / "load.json"
        command = [
            sys.executable, "-m", "loadkit", "load", f"{url}{STATIC_PATH}",
            "--concurrency", str(users), "--duration", str(seconds), "--out", str(out), "--quiet",
        ]  # fmt: skip
        if (tree / "loadkit" / "engines" / "choice.py").exists():
            # A URL runs native since the engine choice: this benchmark measures the Locust path.
            command += ["--engine", "locust"]
        env = {**os.environ, "PYTHONPATH": str(tree)}
        before = children_cpu_s()
        # An empty working folder: Locust reads locust.conf and pyproject.toml from it.
        done = subprocess.run(command, cwd=tmp, env=env, capture_output=True, text=True)
        cpu_s = children_cpu_s() - before
        if done.returncode not in OK_EXITS:
            raise SystemExit(f"loadkit load from {tree} exited {done.returncode}:\n{done.stderr}")
        requests = int(orjson.loads(out.read_bytes())["totals"]["requests"])
    return cpu_s / requests * 1e6, requests


def main() -> None:
    """Run the comparison and print (and record) the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="HEAD", help="the git revision to compare with")
    parser.add_argument("--rounds", type=int, default=3, help="base/current pairs, alternated")
    parser.add_argument("--seconds", type=int, default=10, help="length of each run")
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--no-write", action="store_true", help="do not update the docs")
    args = parser.parse_args()

    base_name = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", args.base],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    costs: dict[str, list[float]] = {"base": [], "current": []}
    with nginx() as url, revision_tree(args.base) as base_tree:
        for round_no in range(1, args.rounds + 1):
            for label, tree in (("base", base_tree), ("current", ROOT)):
                cost, requests = cpu_us_per_request(
                    tree, url, users=args.users, seconds=args.seconds
                )
                costs[label].append(cost)
                print(f"round {round_no} {label:8} {cost:7.1f} µs/request ({requests:,} requests)")
    base, current = statistics.median(costs["base"]), statistics.median(costs["current"])
    rows = [
        f"| base {base_name}, CPU per request (each round) | "
        + ", ".join(f"{c:.1f}" for c in costs["base"])
        + " µs |",
        "| this tree, CPU per request (each round) | "
        + ", ".join(f"{c:.1f}" for c in costs["current"])
        + " µs |",
        f"| ratio this tree / base (medians; <= 1.0 means no dearer) | {current / base:.3f} |",
    ]
    text = "\n".join(
        [
            SECTION,
            "",
            f"Measured {datetime.now(UTC):%Y-%m-%d} on {os.cpu_count()} cores (shared with other "
            f"work), Python {platform.python_version()}, with `.venv/bin/python "
            f"bench/bench_revisions.py --base {args.base} --rounds {args.rounds} --seconds "
            f"{args.seconds}`. `loadkit load URL` ({args.users} users, url scenario, on "
            "Locust: `--engine locust` where the tree has the engine choice) flat out "
            "against nginx on loopback, from the base revision's tree and from this one, "
            "alternated; CPU of each run's whole process tree (start-up included) over the "
            "requests it completed.",
            "",
            "| measurement | value |",
            "|---|---:|",
            *rows,
        ]
    )
    print(text)
    if not args.no_write:
        write_section(text)


if __name__ == "__main__":
    main()

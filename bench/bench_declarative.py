"""Benchmark: what a declarative scenario costs the generator beside the bundled ``url`` locustfile.

Needs nginx (``sudo apt-get install -y nginx-light``): bench_load.py's own nginx, serving one
small static file on a free loopback port. Against it, interleaved (A B C, A B C, ...) for
``--rounds`` rounds, each a closed ``loadkit load`` on Locust of ``--users`` users for
``--seconds``:

- A: ``scenarios/url.py`` (one GET, its headers fixed once per user);
- B: ``scenarios/declarative.py`` with one request, ``GET /hello.txt``, nothing to fill;
- C: ``scenarios/declarative.py`` with a weighted mix of three requests to the same file, a
  query and a header filled per request (``{uuid}``, a saved-like ``{email}``).

The figure is Locust's CPU per request (its process's user + system time over the requests the
run recorded, start-up included): immune to what else the machine does, unlike req/s. Flat out,
one generator process saturates its core and loadkit marks the run invalid (overloaded); the
cost per request is still what is compared. Ratios are against A.

    .venv/bin/python bench/bench_declarative.py [--rounds 3] [--seconds 5] [--users 10]

Prints a table and replaces its section of docs/benchmarks.md (``--no-write`` to skip).
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from loadkit.config import DeclarativeScenario, LoadProfile
from loadkit.engines.declarative import describe
from loadkit.exceptions import InvalidLoadRunError
from loadkit.run.load import run_load
from scenarios.declarative_spec import Values, judge, parse_scenario, prepare, weighted

from bench_load import STATIC_PATH, children_cpu_s, nginx, nginx_version
from benchmarks_page import write_section

SECTION = "## Declarative scenario: generator CPU beside url.py (bench/bench_declarative.py)"

ONE_REQUEST = DeclarativeScenario.model_validate(
    {"requests": [{"path": STATIC_PATH, "expect_status": 200}]}
)
MIX = DeclarativeScenario.model_validate(
    {
        "requests": [
            {"path": STATIC_PATH, "expect_status": 200, "weight": 3},
            {
                "name": "search",
                "path": STATIC_PATH,
                "query": {"q": "{uuid}", "limit": 20},
                "expect_status": 200,
                "weight": 2,
            },
            {
                "name": "mine",
                "path": STATIC_PATH,
                "headers": {"X-User": "{email}", "X-Request": "{uuid}"},
                "expect_status": [200, 304],
            },
        ]
    }
)
VARIANTS = {
    "A url.py": None,
    "B declarative, one request": describe("one", ONE_REQUEST, {}),
    "C declarative, mix of 3 with templates": describe("mix", MIX, {}),
}


def one_run(url: str, spec: str | None, *, users: int, seconds: float, folder: Path) -> float:
    """One ``loadkit load`` run; Locust's CPU µs per request."""
    profile = LoadProfile(
        scenario="url" if spec is None else "bench", concurrency=users, duration_s=seconds
    )
    before = children_cpu_s()
    try:
        results = run_load(
            target=f"{url}{STATIC_PATH}" if spec is None else url,
            profile=profile,
            out=folder / "load.json",
            quiet=True,
            declarative=spec,
        )
    except InvalidLoadRunError as invalid:  # flat out: the generator saturates, as expected
        results = invalid.results
    cpu_s = children_cpu_s() - before
    assert results.totals.errors == 0, results.errors
    return cpu_s / results.totals.requests * 1e6


def own_work_us(spec: str, n: int = 20_000, repeats: int = 5) -> float:
    """µs per request of the declarative user's own work, measured alone (no Locust, no
    network): choose a request by weight, fill it in, judge a 200. The best of ``repeats``:
    on a shared machine, anything slower is someone else's work."""
    scenario = parse_scenario(spec, {})
    values = Values({})
    requests, cumulative = weighted(scenario.requests, frozenset(values.saved))
    chooser = random.Random(1)
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(n):
            request = chooser.choices(requests, cum_weights=cumulative)[0]
            prepare(request, values)
            judge(request, 200, b"hello from nginx\n", values)
        best = min(best, (time.perf_counter() - started) / n * 1e6)
    return best


def main() -> None:
    """Run the variants interleaved, print the table, write the docs section."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    figures: dict[str, list[float]] = {name: [] for name in VARIANTS}
    with nginx() as url, tempfile.TemporaryDirectory(prefix="bench-declarative-") as tmp:
        os.chdir(tmp)  # no acceptance.toml or locust.conf of the checkout's
        for _ in range(args.rounds):
            for name, spec in VARIANTS.items():
                cost = one_run(url, spec, users=args.users, seconds=args.seconds, folder=Path(tmp))
                figures[name].append(cost)
                print(f"{name}: {cost:.1f} µs/request", flush=True)
    own = {name: own_work_us(spec) for name, spec in VARIANTS.items() if spec is not None}
    base = statistics.median(figures["A url.py"])
    rows = [
        f"| {name} | {', '.join(f'{v:.1f}' for v in values)} | "
        f"{statistics.median(values):.1f} | {statistics.median(values) / base:.2f} |"
        for name, values in figures.items()
    ]
    command = (
        f".venv/bin/python bench/bench_declarative.py --rounds {args.rounds} "
        f"--seconds {args.seconds:g} --users {args.users}"
    )
    text = "\n".join(
        [
            SECTION,
            "",
            f"Measured {datetime.now(UTC):%Y-%m-%d} on {os.cpu_count()} cores (shared with other "
            f"work), Python {platform.python_version()}, with `{command}`. Target: "
            f"nginx {nginx_version()} on loopback serving a 17-byte file; closed model, "
            f"{args.users} users, {args.seconds:g} s per run, variants interleaved. Locust's CPU "
            "per request, start-up included (runs flat out are marked overloaded: one core "
            "saturated, as expected).",
            "",
            "| variant | µs of CPU per request (each round) | median | ratio to url.py |",
            "|---|---|---:|---:|",
            *rows,
            "",
            "The declarative user's own work per request, measured alone (choose by weight, fill "
            "in, judge; no Locust, no network; best of 5): "
            + ", ".join(f"{name[0]} {us:.1f} µs" for name, us in own.items())
            + ". The rest is on Locust's side of the request: the declarative user sends "
            "each with `catch_response` (to fail a status by the scenario's own list), which "
            "url.py does not.",
            "",
        ]
    )
    print(text)
    if not args.no_write:
        write_section(text)


if __name__ == "__main__":
    main()

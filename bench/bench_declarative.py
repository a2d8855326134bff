"""Benchmark: what a declarative scenario costs the generator, on Locust beside the bundled ``url``
locustfile, and on the native engine beside a native URL run.

Needs nginx (``sudo apt-get install -y nginx-light``): bench_load.py's own nginx, serving one
small static file on a free loopback port. Against it, interleaved (A B C N NB NC, A B C N NB NC,
...) for ``--rounds`` rounds, each a closed ``loadkit load`` of ``--users`` users (connections on
the native engine) for ``--seconds``:

- A: Locust, ``scenarios/url.py`` (one GET, its headers fixed once per user);
- B: Locust, ``scenarios/declarative.py`` with one request, ``GET /hello.txt``, nothing to fill;
- C: Locust, ``scenarios/declarative.py`` with a weighted mix of three requests to the same
  file, a query and a header filled per request (``{uuid}``, a saved-like ``{email}``);
- N: the native engine, the URL run of the same file (``loadkit load URL``);
- NB, NC: the native engine, B's and C's scenarios.

The figure is the generator's CPU per request (its process's user + system time over the requests
the run recorded, start-up included; each run in a process of its own): immune to what else the
machine does, unlike req/s. Flat out, one generator process saturates its core and loadkit marks
the run invalid (overloaded); the cost per request is still what is compared. Ratios: A, B, C
against A; N, NB, NC against N; and each native scenario against its Locust run.

    .venv/bin/python bench/bench_declarative.py [--rounds 3] [--seconds 5] [--users 10]

Prints a table and replaces its section of docs/benchmarks.md (``--no-write`` to skip).
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from loadkit.config import DeclarativeScenario, LoadProfile
from loadkit.engines.declarative import describe
from loadkit.engines.native.request_bytes import TraceIds
from loadkit.engines.native.scenario import ScenarioUser, compile_scenario
from loadkit.engines.native.scenario import judge as native_judge
from loadkit.exceptions import InvalidLoadRunError
from loadkit.measure.results import LoadResults, read_results
from loadkit.run.load import run_load
from scenarios.declarative_spec import Values, judge, parse_scenario, prepare, weighted

from bench_load import STATIC_PATH, children_cpu_s, nginx, nginx_version
from benchmarks_page import write_section

SECTION = (
    "## Declarative scenario: generator CPU on Locust and on the native engine "
    "(bench/bench_declarative.py)"
)
ROOT = Path(__file__).resolve().parents[1]

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
VARIANTS: dict[str, tuple[str, str | None]] = {
    "A Locust url.py": ("locust", None),
    "B Locust declarative, one request": ("locust", describe("one", ONE_REQUEST, {})),
    "C Locust declarative, mix of 3 with templates": ("locust", describe("mix", MIX, {})),
    "N native URL": ("native", None),
    "NB native declarative, one request": ("native", describe("one", ONE_REQUEST, {})),
    "NC native declarative, mix of 3 with templates": ("native", describe("mix", MIX, {})),
}
NATIVE = """
import sys
from pathlib import Path
from loadkit.config import LoadProfile
from loadkit.engines.url_request import request_spec
from loadkit.exceptions import InvalidLoadRunError
from loadkit.run.native import run_native_load
url, out, seconds, users, spec = sys.argv[1:6]
scenario = Path(spec).read_text() if spec else None
profile = LoadProfile(scenario="bench", concurrency=int(users), duration_s=float(seconds))
try:
    run_native_load(request=request_spec(url), profile=profile, out=Path(out), quiet=True,
                    scenario=scenario)
except InvalidLoadRunError:
    pass  # flat out, the generator saturates its core and says so: the figures still stand
"""


def one_run(
    url: str, engine: str, spec: str | None, *, users: int, seconds: float, folder: Path
) -> float:
    """One ``loadkit load`` run, in a process of its own; the generator's CPU µs per request."""
    out = folder / "load.json"
    before = children_cpu_s()
    if engine == "native":
        spec_file = folder / "spec.json"
        spec_file.write_text(spec or "")
        target = url if spec is not None else f"{url}{STATIC_PATH}"
        subprocess.run(
            [sys.executable, "-c", NATIVE, target, str(out), str(seconds), str(users),
             str(spec_file) if spec is not None else ""],
            check=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )  # fmt: skip
        results = read_results(out)
    else:
        profile = LoadProfile(
            scenario="url" if spec is None else "bench", concurrency=users, duration_s=seconds
        )
        try:
            results = run_load(
                target=f"{url}{STATIC_PATH}" if spec is None else url,
                profile=profile,
                out=out,
                quiet=True,
                declarative=spec,
            )
        except InvalidLoadRunError as invalid:  # flat out: the generator saturates, as expected
            results = invalid.results
    cpu_s = children_cpu_s() - before
    assert isinstance(results, LoadResults)
    assert results.totals.errors == 0, results.errors
    assert results.config["engine"] == engine
    return cpu_s / results.totals.requests * 1e6


def own_work_us(spec: str, n: int = 20_000, repeats: int = 5) -> float:
    """µs per request of the Locust path's declarative user's own work, measured alone (no
    Locust, no network): choose a request by weight, fill it in, judge a 200. The best of
    ``repeats``: on a shared machine, anything slower is someone else's work."""
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


def native_own_work_us(
    spec: str, *, encoded_once: bool = True, n: int = 20_000, repeats: int = 5
) -> float:
    """The same on the native engine: choose (``ScenarioUser.first``), render the bytes with
    fresh trace ids, judge a 200. ``encoded_once=False`` renders the constant parts again for
    every request too (what pre-encoding them saves)."""
    scenario = compile_scenario(spec, {}, host="127.0.0.1:8080")
    if not encoded_once:
        for call in scenario.requests:
            call.template._constant = None  # the slow path, for the comparison only
            call.template._fixed_head = None
    user = ScenarioUser(scenario, random.Random(1))
    ids = TraceIds()
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(n):
            call = user.first()
            call.template.render(user.values, ids.next())
            native_judge(call, 200, None, user.values)
            user.after(call, True)
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
            for name, (engine, spec) in VARIANTS.items():
                cost = one_run(
                    url, engine, spec, users=args.users, seconds=args.seconds, folder=Path(tmp)
                )
                figures[name].append(cost)
                print(f"{name}: {cost:.1f} µs/request", flush=True)
    median = {name: statistics.median(values) for name, values in figures.items()}
    bases = {"A": median["A Locust url.py"], "N": median["N native URL"]}
    rows = [
        f"| {name} | {', '.join(f'{v:.1f}' for v in values)} | {median[name]:.1f} | "
        f"{median[name] / bases['N' if name[0] == 'N' else 'A']:.2f} |"
        for name, values in figures.items()
    ]
    locust_of = {"NB": "B", "NC": "C"}
    against = ", ".join(
        f"{ours} / {theirs} **{median[_named(ours)] / median[_named(theirs)]:.3f}**"
        for ours, theirs in locust_of.items()
    )
    specs = {name: spec for name, (_, spec) in VARIANTS.items() if spec is not None}
    own = {name.split()[0]: own_work_us(spec) for name, spec in specs.items() if name[0] != "N"}
    native_own = {
        name.split()[0]: native_own_work_us(spec) for name, spec in specs.items() if name[0] == "N"
    }
    rendered_each_time = native_own_work_us(specs[_named("NB")], encoded_once=False)
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
            f"{args.users} users (connections on the native engine), {args.seconds:g} s per run, "
            "variants interleaved, each run a process of its own. The generator's CPU per "
            "request, start-up included (runs flat out are marked overloaded: one core "
            "saturated, as expected).",
            "",
            "| variant | µs of CPU per request (each round) | median | ratio to url.py (A) or "
            "the native URL run (N) |",
            "|---|---|---:|---:|",
            *rows,
            "",
            f"The native engine against the Locust path for the same scenario: {against}.",
            "",
            "The declarative user's own work per request, measured alone (choose by weight, fill "
            "in, judge; no engine, no network; best of 5): on the Locust path "
            + ", ".join(f"{name} {us:.1f} µs" for name, us in own.items())
            + "; on the native engine (the request's bytes with fresh trace ids) "
            + ", ".join(f"{name} {us:.2f} µs" for name, us in native_own.items())
            + f"; NB's request rendered whole every time instead of encoded once: "
            f"{rendered_each_time:.2f} µs. The rest of B and C is on Locust's side of the "
            "request: the declarative user sends each with `catch_response` (to fail a status "
            "by the scenario's own list), which url.py does not.",
            "",
        ]
    )
    print(text)
    if not args.no_write:
        write_section(text)


def _named(prefix: str) -> str:
    return next(name for name in VARIANTS if name.split()[0] == prefix)


if __name__ == "__main__":
    main()

"""What judging abort-on-fail criteria costs the generator, once a second.

A check builds a light snapshot of the live recorder (``live_results``) and judges the criteria
on it with the gate's ``measure`` (``first_failure``). It runs in the generator's own loop (a
Locust process's gevent hub, the native engine's event loop), so its time is time no response is
read. This measures one check on a recorder of ``--requests`` requests spread over
``--endpoints`` endpoints (lognormal latencies around 7 ms), two criteria (error rate and P95 of
the run), variants interleaved for ``--rounds`` rounds:

- A: the snapshot holds every endpoint (as before ``named_endpoints``);
- B: the snapshot holds only the endpoints the criteria name (none here): what runs now.

    .venv/bin/python bench/bench_abort.py [--requests 200000] [--endpoints 1,10,50] [--rounds 5]
        [--write]

``--write`` replaces its section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time

from loadkit.config import Criterion
from loadkit.gate.abort import first_failure, named_endpoints
from loadkit.measure.load_results import live_results
from loadkit.measure.recorder import LatencyRecorder

from benchmarks_page import write_section

SECTION = "## Abort on fail: one live check (bench/bench_abort.py)"

T0 = 1_000.0
CRITERIA = (
    Criterion.model_validate(
        {"metric": "load.error_rate", "op": "<", "threshold": 0.1, "abort_on_fail": True}
    ),
    Criterion.model_validate(
        {"metric": "load.p95_ms", "op": "<", "threshold": 1000, "abort_on_fail": True}
    ),
)


def recorded(requests: int, endpoints: int) -> LatencyRecorder:
    """A live recorder of ``requests`` over ``endpoints`` endpoints, 20,000 a second."""
    rng = random.Random(1)
    recorder = LatencyRecorder(start=T0)
    for n in range(requests):
        recorder.record(
            endpoint=f"GET /e{n % endpoints}",
            latency_s=rng.lognormvariate(-5, 1),
            end=T0 + n / 20_000,
        )
    return recorder


def check_ms(recorder: LatencyRecorder, *, every_endpoint: bool) -> float:
    """Milliseconds of one check (snapshot and judgement), as the engines run it."""
    began = time.perf_counter()
    named = named_endpoints(CRITERIA)
    endpoints = {f"GET /e{k}" for k in range(10_000)} if every_endpoint else named
    live = live_results(recorder, target="http://127.0.0.1:1", endpoints=endpoints)
    first_failure(CRITERIA, live, elapsed_s=60.0)
    return (time.perf_counter() - began) * 1000


def main() -> int:
    """Run the rounds and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200_000)
    parser.add_argument("--endpoints", default="1,10,50")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args()
    command = (
        f".venv/bin/python bench/bench_abort.py --requests {args.requests} "
        f"--endpoints {args.endpoints} --rounds {args.rounds}"
    )
    lines = [
        SECTION,
        "",
        f"`{command}` (one check of two criteria, error rate and P95, on a live recorder of "
        f"{args.requests:,} requests; medians of {args.rounds} interleaved rounds A B A B):",
        "",
        "| endpoints | A: snapshot of every endpoint | B: only those named (now) | A / B |",
        "|---|---|---|---|",
    ]
    for count in (int(text) for text in args.endpoints.split(",")):
        recorder = recorded(args.requests, count)
        every: list[float] = []
        named: list[float] = []
        for _ in range(args.rounds):
            every.append(check_ms(recorder, every_endpoint=True))
            named.append(check_ms(recorder, every_endpoint=False))
        a, b = statistics.median(every), statistics.median(named)
        lines.append(f"| {count} | {a:.1f} ms | {b:.1f} ms | {a / b:.1f}x |")
    lines += [
        "",
        "Once a second, in the generator's own loop: a check of B's size is under 1 % of a "
        "second; each endpoint a criterion names (`endpoint = ...`) adds its own encoding and "
        "percentile scan.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.write:
        write_section(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What tracing costs the service: the api scenario against the bundled service with tracing off,
10 % of requests traced, and every request traced (the span file, as ``accept`` records spans).

Each run starts a fresh bundled service (SQLite in a temp folder, bcrypt at 4 rounds so that the
api scenario's one registration and login per user do not dominate a short run) and drives it
with ``loadkit load`` (Locust, scenarios/api.py) for ``--seconds``. Variants alternate round by
round (off, 10 %, 100 %, off, ...) on the same machine. Per run: requests per second and P95 as
loadkit measured them, and the service process's CPU time per request (psutil), the figure the
tracing work shows in first (the api scenario's think time bounds the request rate).

10 % is ``OTEL_TRACES_SAMPLER=traceidratio``: loadkit's generator sends ``traceparent`` with the
sampled flag, so a parent-based sampler traces every one of its requests whatever its ratio.

    .venv/bin/python bench/bench_tracing.py [--seconds 10] [--users 50] [--rounds 3]

Prints a table and replaces its section of docs/benchmarks.md (``--no-write`` to skip).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import timeit
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psutil

from loadkit.config import LoadProfile
from loadkit.exceptions import InvalidLoadRunError
from loadkit.measure.results import LoadResults
from loadkit.run.bundled_service import BundledService
from loadkit.run.load import run_load
from service.middleware import request_trace_ids
from service.tracing import child_span

from benchmarks_page import write_section

SECTION = "## Tracing overhead (bench/bench_tracing.py)"
VARIANTS: dict[str, dict[str, str]] = {
    "off": {},
    "10 %": {"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.1"},
    "100 %": {"OTEL_TRACES_SAMPLER": "always_on"},
}


CONCLUSION = (
    "Chosen from these figures: with no `OTEL_TRACES_SAMPLER`, the service samples "
    "`parentbased_traceidratio` at 0.1 (10 % of requests that come without a sampled "
    "`traceparent`: within the noise of off), and follows a caller that sampled (W3C). loadkit's "
    "generator marks its requests sampled, so a load test against a service with an exporter "
    "on is traced whole: the 100 % row. `loadkit accept` records spans with `always_on` (the "
    "100 % row too): the load figures it measures on the bundled service carry that cost."
)


@dataclass(frozen=True)
class Run:
    """One run's figures."""

    requests: int
    rps: float
    p95_ms: float
    cpu_us_per_request: float
    spans: int
    overloaded: bool


def process_cpu_s(pid: int) -> float:
    """CPU seconds of the process and its children so far."""
    process = psutil.Process(pid)
    total = 0.0
    for each in [process, *process.children(recursive=True)]:
        times = each.cpu_times()
        total += times.user + times.system
    return total


def one_run(variant: str, *, users: int, seconds: float, folder: Path) -> Run:
    """The api scenario against a fresh bundled service traced as ``variant`` says."""
    workdir = folder / f"{variant.replace(' %', 'pct')}-{len(list(folder.iterdir()))}"
    span_file = workdir / "spans.jsonl"
    env = {"ENGINES_BCRYPT_ROUNDS": "4", "ENGINES_LOG_LEVEL": "warning", **VARIANTS[variant]}
    if VARIANTS[variant]:
        env["ENGINES_TRACE_FILE"] = str(span_file)
    overloaded = False
    with BundledService(workdir=workdir, env=env) as service:
        pid = service.process.pid
        before = process_cpu_s(pid)
        try:
            results: LoadResults = run_load(
                target=service.url,
                profile=LoadProfile(scenario="api", concurrency=users, duration_s=seconds),
                out=workdir / "load.json",
                quiet=True,
            )
        except InvalidLoadRunError as invalid:
            results, overloaded = invalid.results, True
        cpu_s = process_cpu_s(pid) - before
    # After the stop: the service flushes its spans on SIGTERM.
    spans = span_file.read_text().count('"spanId"') if span_file.exists() else 0
    requests = results.totals.requests
    return Run(
        requests=requests,
        rps=results.totals.rps,
        p95_ms=results.latency_ms.p95 or 0.0,
        cpu_us_per_request=cpu_s / max(requests, 1) * 1e6,
        spans=spans,
        overloaded=overloaded,
    )


def off_path_us() -> tuple[float, float]:
    """What tracing off still runs per request, in µs: finding the trace id (a traceparent
    parsed, the current span asked) and one hand-made span site (a request passes ~5)."""
    scope = {
        "type": "http",
        "headers": [
            (b"host", b"127.0.0.1"),
            (b"traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
        ],
    }

    def span_site() -> None:
        with child_span(None, "storage.lock_wait"):
            pass

    n = 100_000
    ids = min(timeit.repeat(lambda: request_trace_ids(scope), number=n, repeat=3)) / n * 1e6
    site = min(timeit.repeat(span_site, number=n, repeat=3)) / n * 1e6
    return ids, site


def main() -> None:
    """Run the rounds, print the table, write the docs section."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="do not touch docs/benchmarks.md")
    args = parser.parse_args()
    runs: dict[str, list[Run]] = {variant: [] for variant in VARIANTS}
    with tempfile.TemporaryDirectory(prefix="bench-tracing-") as tmp:
        for round_no in range(1, args.rounds + 1):
            for variant in VARIANTS:
                run = one_run(variant, users=args.users, seconds=args.seconds, folder=Path(tmp))
                runs[variant].append(run)
                print(
                    f"round {round_no} {variant:>5}: {run.requests} requests, {run.rps:.1f}/s, "
                    f"P95 {run.p95_ms:.1f} ms, service CPU {run.cpu_us_per_request:.0f} µs/req, "
                    f"{run.spans} spans{' (generator overloaded)' if run.overloaded else ''}",
                    file=sys.stderr,
                )
    base = {
        "rps": statistics.median(r.rps for r in runs["off"]),
        "p95": statistics.median(r.p95_ms for r in runs["off"]),
        "cpu": statistics.median(r.cpu_us_per_request for r in runs["off"]),
    }
    rows = []
    for variant, done in runs.items():
        rps = statistics.median(r.rps for r in done)
        p95 = statistics.median(r.p95_ms for r in done)
        cpu = statistics.median(r.cpu_us_per_request for r in done)
        spans_per_request = statistics.median(r.spans / max(r.requests, 1) for r in done)
        rows.append(
            f"| {variant} | {rps:.1f} | {rps / base['rps']:.3f} | {p95:.1f} | "
            f"{p95 / base['p95']:.2f} | {cpu:.0f} | {cpu / base['cpu']:.2f} | "
            f"{spans_per_request:.2f} |"
        )
    overloaded = sum(r.overloaded for done in runs.values() for r in done)
    ids_us, site_us = off_path_us()
    text = "\n".join(
        [
            SECTION,
            "",
            f"Measured {datetime.now(UTC):%Y-%m-%d} on {platform.machine()}, "
            f"{psutil.cpu_count()} cores (generator and service share them), Python "
            f"{platform.python_version()}: the api scenario (`scenarios/api.py`), "
            f"{args.users} users, {args.seconds:g} s per run, {args.rounds} interleaved rounds "
            "(off, 10 %, 100 %, ...), a fresh bundled service per run (bcrypt 4 rounds). "
            "Medians of the rounds; ratios against off. 10 % is `OTEL_TRACES_SAMPLER=traceidratio` "
            "with `OTEL_TRACES_SAMPLER_ARG=0.1`; 100 % is `always_on`; both write the span file "
            "(`ENGINES_TRACE_FILE`). Service CPU is the service process's CPU time over the "
            "requests of the run."
            + (f" {overloaded} run(s) had the generator marked overloaded." if overloaded else ""),
            "",
            "    .venv/bin/python bench/bench_tracing.py "
            f"--seconds {args.seconds:g} --users {args.users} --rounds {args.rounds}",
            "",
            f"Tracing off, a request still runs the trace id lookup ({ids_us:.1f} µs: the "
            "traceparent parsed, the current span asked) and ~5 span sites that do nothing "
            f"({site_us:.2f} µs each): about {ids_us + 5 * site_us:.0f} µs of the service's "
            f"~{base['cpu']:.0f} µs of CPU per request.",
            "",
            CONCLUSION,
            "",
            "| tracing | req/s | ratio | P95 ms | ratio | service CPU µs/req | ratio | spans/req |",
            "|---|---|---|---|---|---|---|---|",
            *rows,
        ]
    )
    print(text)
    if not args.no_write:
        write_section(text)


if __name__ == "__main__":
    main()

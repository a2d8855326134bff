"""What each second's service times cost an open-model run: memory, CPU, results and report size.

A benchmark, not a test: no assertions. An open run of ``--seconds`` at ``--rate`` requests/s
(every request with a service time of its own, a third of them queued before their send:
lognormal times around 10 ms) is recorded by the recorder of ``--base`` (with that revision's
timeline: no per-second service times) and by this tree's, each in a fresh process, alternated
A B A B for ``--rounds`` rounds. Each process reports its peak RSS, the CPU seconds to record the
run and build its results, and the results file's size. Then, on this tree's results, the
``report --html`` page and ``--csv`` with each second's service times and without them (the same
file with ``timeline[].service_histogram`` removed: what the base revision writes and draws),
alternated as well.

    .venv/bin/python bench/bench_service_timeline.py [--base 37d4374] [--seconds 60]
        [--rate 1000] [--rounds 3] [--write]

``--write`` replaces its section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

from benchmarks_page import write_section

SECTION = "## Open model: each second's service times (bench/bench_service_timeline.py)"
ROOT = Path(__file__).resolve().parent.parent
T0 = 1_000.0
ENDPOINTS = ("POST /api/auth/login", "GET /api/items", "GET /api/items/{item_id}")


def record_run(module: Any, seconds: int, rate: int) -> Any:
    """A finished recorder (of ``module``) of an open run of ``seconds`` × ``rate`` requests."""
    rng = random.Random(11)
    recorder = module.LatencyRecorder(start=T0)
    record = recorder.record
    for index in range(seconds * rate):
        service = rng.lognormvariate(-4.6, 0.7)
        wait = rng.lognormvariate(-5.0, 1.0) if index % 3 == 0 else 0.0
        record(
            endpoint=ENDPOINTS[index % 3],
            latency_s=service + wait,
            service_s=service,
            end=T0 + index / rate + service,
            error_kind="timeout" if index % 50 == 0 else None,
        )
    recorder.finish(end=T0 + seconds + 1)
    return recorder


def child(variant: str, base: str, seconds: int, rate: int, out: Path) -> None:
    """One process's measurement, printed as JSON."""
    from loadkit.measure.results import LoadResults, write_results

    if variant == "base":
        from bench_recorder_ab import recorder_at

        module: Any = recorder_at(base)
    else:
        from loadkit.measure import recorder as module
    started = time.process_time()
    recorder = record_run(module, seconds, rate)
    results = LoadResults(
        target="http://127.0.0.1:1",
        config={"scenario": "url", "model": "open"},
        **recorder.traffic_fields(),
    )
    cpu = time.process_time() - started
    write_results(out, results)
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    del recorder, results
    # Again under tracemalloc (slower, hence apart): what the finished recorder holds.
    tracemalloc.start()
    kept = record_run(module, seconds, rate)
    peak = tracemalloc.get_traced_memory()[1]
    gc.collect()  # what stays: not the cycles awaiting the collector
    held = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert kept.requests == seconds * rate
    print(
        json.dumps(
            {
                "cpu_s": cpu,
                "peak_rss_mb": peak_kb / 1024,
                "bytes": out.stat().st_size,
                "held_mb": held / 1e6,
                "traced_peak_mb": peak / 1e6,
            }
        )
    )


def run_child(variant: str, args: argparse.Namespace, out: Path) -> dict[str, float]:
    done = subprocess.run(
        [
            sys.executable,
            __file__,
            "--child",
            variant,
            "--base",
            args.base,
            "--seconds",
            str(args.seconds),
            "--rate",
            str(args.rate),
            "--out",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    figures: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def main() -> int:
    """Run the rounds and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="37d4374")
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    parser.add_argument("--child", choices=("base", "tree"), help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.base, args.seconds, args.rate, args.out)
        return 0

    from loadkit.measure.results import read_results, write_results
    from loadkit.report.timeline_csv import render_timeline_csv
    from loadkit.report.timeline_figures import second_figures
    from loadkit.run.report import write_html_report

    figures: dict[str, list[dict[str, float]]] = {"base": [], "tree": []}
    page: dict[str, list[float]] = {"bytes without": [], "bytes with": []}
    gen: dict[str, list[float]] = {"without": [], "with": []}
    csv_bytes: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for round_index in range(args.rounds):
            for variant in ("base", "tree"):
                figures[variant].append(run_child(variant, args, folder / f"{variant}.json"))
            print(f"round {round_index + 1}: {figures['base'][-1]} / {figures['tree'][-1]}")
        results = read_results(folder / "tree.json")
        stripped = results.model_copy(
            update={
                "timeline": [
                    p.model_copy(update={"service_histogram": None})
                    for p in results.timeline  # type: ignore[union-attr]
                ]
            }
        )
        write_results(folder / "without.json", stripped)
        for _ in range(args.rounds):
            for variant, source in (("without", "without.json"), ("with", "tree.json")):
                began = time.perf_counter()
                html = write_html_report([folder / source], folder / f"{variant}.html")
                gen[variant].append(time.perf_counter() - began)
                page[f"bytes {variant}"].append(html.stat().st_size)
        for variant, source in (("without", "without.json"), ("with", "tree.json")):
            read = read_results(folder / source)
            csv_bytes[variant] = len(render_timeline_csv(second_figures(read.timeline)))  # type: ignore[union-attr]

    def median(variant: str, key: str) -> float:
        return statistics.median(f[key] for f in figures[variant])

    command = (
        f".venv/bin/python bench/bench_service_timeline.py --base {args.base} "
        f"--seconds {args.seconds} --rate {args.rate} --rounds {args.rounds}"
    )
    base_bytes, tree_bytes = median("base", "bytes"), median("tree", "bytes")
    lines = [
        SECTION,
        "",
        f"`{command}` (an open run of {args.seconds} s at {args.rate} requests/s, every request "
        f"timed from its due time and its send; each variant in a fresh process, A B A B, "
        f"medians of {args.rounds} rounds; 2 shared cores):",
        "",
        f"| measurement | {args.base} (no per-second service times) | this tree | ratio |",
        "|---|---:|---:|---:|",
        f"| peak RSS of the process (record, build results, write) | "
        f"{median('base', 'peak_rss_mb'):.1f} MB | {median('tree', 'peak_rss_mb'):.1f} MB | "
        f"{median('tree', 'peak_rss_mb') / median('base', 'peak_rss_mb'):.3f} |",
        f"| Python allocations at their peak while recording (tracemalloc) | "
        f"{median('base', 'traced_peak_mb'):.2f} MB | {median('tree', 'traced_peak_mb'):.2f} MB | "
        f"{median('tree', 'traced_peak_mb') / median('base', 'traced_peak_mb'):.3f} |",
        f"| held by the finished recorder (tracemalloc, after a collection) | "
        f"{median('base', 'held_mb'):.2f} MB | {median('tree', 'held_mb'):.2f} MB | "
        f"{median('tree', 'held_mb') / median('base', 'held_mb'):.3f} |",
        f"| CPU to record the run and build its results, per request | "
        f"{median('base', 'cpu_s') / (args.seconds * args.rate) * 1e6:.2f} µs | "
        f"{median('tree', 'cpu_s') / (args.seconds * args.rate) * 1e6:.2f} µs | "
        f"{median('tree', 'cpu_s') / median('base', 'cpu_s'):.3f} |",
        f"| results file | {base_bytes / 1e6:.3f} MB | {tree_bytes / 1e6:.3f} MB | "
        f"{tree_bytes / base_bytes:.3f} ({(tree_bytes - base_bytes) / args.seconds / 1e3:.2f} "
        "kB per second of run) |",
        f"| `report --html` page | {statistics.median(page['bytes without']) / 1e6:.3f} MB | "
        f"{statistics.median(page['bytes with']) / 1e6:.3f} MB | "
        f"{statistics.median(page['bytes with']) / statistics.median(page['bytes without']):.3f} |",
        f"| `report --html` generation (warm, in process) | "
        f"{statistics.median(gen['without']):.2f} s | {statistics.median(gen['with']):.2f} s | "
        f"{statistics.median(gen['with']) / statistics.median(gen['without']):.3f} |",
        f"| `--csv` | {csv_bytes['without'] / 1e3:.1f} kB | {csv_bytes['with'] / 1e3:.1f} kB | "
        f"{csv_bytes['with'] / csv_bytes['without']:.3f} |",
        "",
        "The page and CSV columns compare this tree's results file with and without "
        "`timeline[].service_histogram` (without it the chart draws the whole run's service "
        "P50/P95 flat, as before).",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.write:
        write_section(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

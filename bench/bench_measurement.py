"""Benchmark the measurement core and ``loadkit smoke`` (a benchmark, not a test: no assertions).

Prints, and writes to docs/benchmarks.md under its own heading:
- the cost of recording one latency (histogram alone, and the recorder's full path: endpoint,
  timeline, stall tracking);
- the cost of percentiles, encode, decode and add on a full histogram, and of a recorder's share
  (``to_share`` + ``merge_share``) for a 60 s run over 7 endpoints;
- the wall time of ``loadkit smoke`` as a user runs it (a fresh process: start-up included)
  against the bundled service started locally with its default settings.

Run: .venv/bin/python bench/bench_measurement.py [--values 200000] [--smoke-runs 5]
"""

from __future__ import annotations

import argparse
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from loadkit.measure.histogram import LatencyHistogram
from loadkit.measure.recorder import LatencyRecorder
from loadkit.measure.worker_share import WorkerShare
from loadkit.run.bundled_service import BundledService

from benchmarks_page import PAGE, write_section

ROOT = Path(__file__).resolve().parent.parent
SECTION = "## Measurement core and loadkit smoke (bench/bench_measurement.py)"
SMOKE_TARGET_S = 1.0
ENDPOINTS = (
    "POST /api/auth/login",
    "POST /api/auth/register",
    "GET /api/auth/me",
    "GET /api/items",
    "POST /api/items",
    "GET /api/items/{item_id}",
    "DELETE /api/items/{item_id}",
)


def best_of(repeat: int, action: Callable[[], object]) -> float:
    """The fastest of ``repeat`` timings of ``action``, in seconds (least disturbed by noise)."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return min(times)


def latencies(n: int, seed: int = 4) -> list[float]:
    rng = random.Random(seed)
    return [rng.lognormvariate(-4.5, 1.2) for _ in range(n)]  # seconds, median ~11 ms


def full_histogram(values_s: list[float]) -> LatencyHistogram:
    histogram = LatencyHistogram()
    for value in values_s:
        histogram.record_us(value * 1e6)
    return histogram


def measure_core(n: int) -> list[tuple[str, str]]:
    values = latencies(n)
    values_us = [v * 1e6 for v in values]
    rows: list[tuple[str, str]] = []

    def record_histogram() -> None:
        histogram = LatencyHistogram()
        for value in values_us:
            histogram.record_us(value)

    per_value = best_of(3, record_histogram) / n
    rows.append(("LatencyHistogram.record_us, per value", f"{per_value * 1e6:.2f} µs"))

    def record_recorder() -> None:
        # 60 s of completions, spread evenly, 7 endpoints, 5 % errors.
        recorder = LatencyRecorder(start=0.0)
        step = 60.0 / n
        for index, value in enumerate(values):
            recorder.record(
                endpoint=ENDPOINTS[index % len(ENDPOINTS)],
                latency_s=value,
                end=index * step,
                error_kind="storage_lock_timeout" if index % 20 == 0 else None,
                status=503 if index % 20 == 0 else 200,
            )
        recorder.finish(end=60.0)

    per_value = best_of(3, record_recorder) / n
    rows.append(
        (
            "LatencyRecorder.record (endpoint, timeline, stalls), per value",
            f"{per_value * 1e6:.2f} µs",
        )
    )

    histogram = full_histogram(values)
    encoded = histogram.encode()
    rows.append(
        (
            "percentiles (P50..P99.9, one scan)",
            f"{best_of(20, histogram.percentiles_us) * 1e3:.2f} ms",
        )
    )
    rows.append(("encode one histogram", f"{best_of(20, histogram.encode) * 1e3:.2f} ms"))
    rows.append(("encoded size", f"{len(encoded.data) / 1024:.1f} KiB"))
    rows.append(
        (
            "decode one histogram",
            f"{best_of(20, lambda: LatencyHistogram.decode(encoded)) * 1e3:.2f} ms",
        )
    )
    decoded = LatencyHistogram.decode(encoded)
    rows.append(
        (
            "add (merge) one histogram",
            f"{best_of(20, lambda: LatencyHistogram().add(decoded)) * 1e3:.2f} ms",
        )
    )

    recorder = LatencyRecorder(start=0.0, source="worker")
    step = 60.0 / n
    for index, value in enumerate(values):
        recorder.record(
            endpoint=ENDPOINTS[index % len(ENDPOINTS)], latency_s=value, end=index * step
        )
    recorder.finish(end=60.0)
    # Both ends of the boundary: the share as plain data, validated again where it arrives.
    share_time = best_of(5, lambda: recorder.to_share().to_wire())
    wire = recorder.to_share().to_wire()
    merge_time = best_of(
        5,
        lambda: LatencyRecorder(start=0.0, source="master").merge_share(
            WorkerShare.from_wire(wire)
        ),
    )
    rows.append(("to_share + to_wire, 60 s run, 7 endpoints", f"{share_time * 1e3:.1f} ms"))
    rows.append(("from_wire + merge_share of that share", f"{merge_time * 1e3:.1f} ms"))
    return rows


def loadkit_command() -> list[str]:
    script = Path(sys.executable).parent / "loadkit"
    return [str(script)] if script.exists() else [sys.executable, "-m", "loadkit"]


def measure_smoke(runs: int) -> tuple[list[float], float, str]:
    """Wall times of ``loadkit smoke`` runs, of ``loadkit --help``, and the last table."""
    command = loadkit_command()
    with tempfile.TemporaryDirectory() as folder:
        workdir = Path(folder)
        with BundledService(workdir=workdir / "service") as service:
            times = []
            output = ""
            for _ in range(runs):
                started = time.perf_counter()
                done = subprocess.run(
                    [*command, "smoke", "--host", service.url],
                    capture_output=True,
                    text=True,
                    cwd=workdir,  # no ./acceptance.toml: the built-in suite
                    check=False,
                )
                times.append(time.perf_counter() - started)
                output = done.stdout + done.stderr
                if done.returncode != 0:
                    print(output, file=sys.stderr)
                    raise SystemExit(f"loadkit smoke exited {done.returncode}")
        help_times = []
        for _ in range(3):
            started = time.perf_counter()
            subprocess.run([*command, "--help"], capture_output=True, check=True)
            help_times.append(time.perf_counter() - started)
    return times, min(help_times), output


def render(core: list[tuple[str, str]], smoke: list[float], help_s: float, argv: str) -> str:
    lines = [
        SECTION,
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d} on {_cpus()} cores, Python "
        f"{platform.python_version()}, with `{argv}`. Best of several runs for the core figures. "
        "`loadkit smoke` is timed as a user runs it: a fresh process (interpreter start-up and "
        "imports included) running the built-in 10 checks against the bundled service started "
        "locally with its default settings (bcrypt rounds 10: register, login and the bad login "
        f"each hash or check a password). Target: smoke under {SMOKE_TARGET_S:g} s in all. "
        "Min / max show the spread between runs (other work on the machine shows up in max).",
        "",
        "| measurement | value |",
        "|---|---:|",
        *(f"| {name} | {value} |" for name, value in core),
        f"| `loadkit smoke` wall time, median of {len(smoke)} | {statistics.median(smoke):.2f} s |",
        f"| `loadkit smoke` wall time, min / max | {min(smoke):.2f} s / {max(smoke):.2f} s |",
        f"| `loadkit --help` wall time | {help_s:.2f} s |",
    ]
    return "\n".join(lines) + "\n"


def _cpus() -> int:
    import os

    return os.cpu_count() or 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--values", type=int, default=200_000, help="latencies to record")
    parser.add_argument("--smoke-runs", type=int, default=5, help="loadkit smoke runs to time")
    parser.add_argument("--no-write", action="store_true", help="do not update docs/benchmarks.md")
    args = parser.parse_args()

    core = measure_core(args.values)
    for name, value in core:
        print(f"{name:<66} {value:>12}")
    smoke, help_s, output = measure_smoke(args.smoke_runs)
    print(output.rstrip())
    print(f"{'loadkit smoke wall time, median':<66} {statistics.median(smoke):>10.2f} s")
    print(f"{'loadkit smoke wall time, min / max':<66} {min(smoke):.2f} s / {max(smoke):.2f} s")
    print(f"{'loadkit --help wall time':<66} {help_s:>10.2f} s")

    argv = ".venv/bin/python bench/bench_measurement.py" + "".join(f" {a}" for a in sys.argv[1:])
    if not args.no_write:
        write_section(render(core, smoke, help_s, argv))
        print(f"updated {PAGE.relative_to(ROOT)}")


if __name__ == "__main__":
    main()

"""Compare ``LatencyRecorder.record`` per call with the recorder of another git revision.

A benchmark, not a test: no assertions. The other revision's ``loadkit/measure/recorder.py`` is
loaded from ``git show REV:...`` into a module of its own, with that revision's histogram, tally
and timeline (it imports today's results, which its code must still match), then both are timed
on the same requests, alternating A B, B A ... so that a machine shared with other work disturbs
both alike. Prints each round and the ratio of the medians (this tree / the other revision).

Run: .venv/bin/python bench/bench_recorder_ab.py [--base 9b253bc] [--values 200000] [--rounds 9]
     [--model closed|open] [--stalls]

Each timing includes closing the run and building its timeline, as the results file does.
``--stalls`` also prints the longest single ``record()`` call of each (thread CPU time): the
event loop a native run's recorder holds; this tree's per-second closing is then spread as the
native engine spreads it (each piece timed on its own, run between records).
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

from loadkit.measure import recorder as current

ROOT = Path(__file__).resolve().parent.parent
ENDPOINTS = ("POST /api/auth/login", "GET /api/items", "GET /api/items/{item_id}")


def _module_at(
    revision: str, path: str, name: str, replace: tuple[tuple[str, str], ...] = ()
) -> Any:
    source = subprocess.run(
        ["git", "show", f"{revision}:{path}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for old, new in replace:
        source = source.replace(old, new)
    file = Path(tempfile.mkdtemp()) / f"{name}.py"
    file.write_text(source)
    spec = importlib.util.spec_from_file_location(name, file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def recorder_at(revision: str) -> ModuleType:
    """The recorder module as it was at ``revision``, with that revision's histogram, tally and
    timeline (the open second it updates inline, what closing a second costs, and the batches
    its histograms fold values in)."""
    histogram = (
        "from loadkit.measure.histogram import",
        "from histogram_base import",
    )
    _module_at(revision, "loadkit/measure/histogram.py", "histogram_base")
    _module_at(revision, "loadkit/measure/tally.py", "tally_base", (histogram,))
    _module_at(revision, "loadkit/measure/timeline.py", "timeline_base", (histogram,))
    module: ModuleType = _module_at(
        revision,
        "loadkit/measure/recorder.py",
        "recorder_base",
        (
            histogram,
            ("from loadkit.measure.timeline import", "from timeline_base import"),
            ("from loadkit.measure.tally import", "from tally_base import"),
        ),
    )
    return module


Request = tuple[str, float, float, str | None, float | None]


def requests(n: int, *, open_model: bool) -> list[Request]:
    """(endpoint, latency s, end, error kind, service s): 3,000 req/s (a busy Locust process),
    2 % errors, a 1 s freeze every 20 s. ``open_model``: each request has a service time of its
    own, and a third of them waited to be sent (response time = wait + service)."""
    rng = random.Random(5)
    out: list[Request] = []
    for index in range(n):
        end = index / 3000.0 + index // 60_000  # the freeze: no completion for 1 s
        failed = rng.random() < 0.02
        latency = rng.lognormvariate(-4.5, 1.2)
        service = None
        if open_model:
            service = latency
            latency += rng.lognormvariate(-5.0, 1.0) if index % 3 == 0 else 0.0
        out.append((ENDPOINTS[index % 3], latency, end, "timeout" if failed else None, service))
    return out


def per_call_us(module: Any, batch: list[Request]) -> float:
    """CPU microseconds per ``record`` call over ``batch``, in one fresh recorder, and its
    timeline (every second closed, as a run's results take it) per request."""
    gc.collect()  # each side starts without the other's garbage to collect
    recorder = module.LatencyRecorder(start=0.0)
    record = recorder.record
    # CPU time of this process: time spent descheduled on a shared machine is not counted.
    started = time.process_time()
    if batch[0][4] is None:  # the closed model's call, as the engines make it
        for endpoint, latency, end, kind, _ in batch:
            record(endpoint=endpoint, latency_s=latency, end=end, error_kind=kind)
    else:
        for endpoint, latency, end, kind, service in batch:
            record(
                endpoint=endpoint, latency_s=latency, end=end, error_kind=kind, service_s=service
            )
    recorder.finish(end=batch[-1][2] + 1.0)
    recorder.timeline()
    return (time.process_time() - started) / len(batch) * 1e6


def longest_holds(module: Any, batch: list[Request]) -> tuple[float, int, float]:
    """The longest single ``record()`` call over ``batch`` (thread CPU ms), how many took over
    0.3 ms, and the longest piece of a spread second's closing (ms; 0 for a recorder that
    cannot spread it). Thread CPU time: a preemption on a shared machine is not counted."""
    recorder = module.LatencyRecorder(start=0.0)
    pieces: list[Any] = []
    if hasattr(recorder, "spread_second_close"):
        recorder.spread_second_close(pieces.append)
    clock = time.thread_time
    calls: list[float] = []
    steps: list[float] = []
    for endpoint, latency, end, kind, service in batch:
        started = clock()
        recorder.record(
            endpoint=endpoint, latency_s=latency, end=end, error_kind=kind, service_s=service
        )
        calls.append(clock() - started)
        while pieces:  # as the event loop would run them, between requests
            piece = pieces.pop(0)
            started = clock()
            piece()
            steps.append(clock() - started)
    longest = max(calls) * 1e3
    return longest, sum(call > 0.0003 for call in calls), max(steps, default=0.0) * 1e3


def main() -> None:
    """Time both recorders, interleaved, and print the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="9b253bc", help="the git revision to compare with")
    parser.add_argument("--values", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument(
        "--model",
        choices=("closed", "open"),
        default="closed",
        help="open: every request with a service time of its own (the open model's path)",
    )
    parser.add_argument(
        "--stalls",
        action="store_true",
        help="also print the longest single record() and closing piece of each (thread CPU)",
    )
    args = parser.parse_args()
    base = recorder_at(args.base)
    batch = requests(args.values, open_model=args.model == "open")
    per_call_us(base, batch[:10_000])  # warm both up
    per_call_us(current, batch[:10_000])
    a_times, b_times = [], []
    for round_index in range(args.rounds):
        # The order alternates (A B, B A, ...): the second of a pair ran measurably slower
        # (about 5 % with the same code on both sides), whichever it was.
        if round_index % 2:
            b_times.append(per_call_us(current, batch))
            a_times.append(per_call_us(base, batch))
        else:
            a_times.append(per_call_us(base, batch))
            b_times.append(per_call_us(current, batch))
        print(
            f"round {round_index + 1}: {args.base} {a_times[-1]:.3f} µs, "
            f"this tree {b_times[-1]:.3f} µs"
        )
    if args.stalls:
        for name, module in ((args.base, base), ("this tree", current)):
            longest, over, piece = longest_holds(module, batch)
            print(
                f"{name}: longest record() {longest:.3f} ms, {over} over 0.3 ms; "
                f"longest piece of a spread second's closing {piece:.3f} ms"
            )
    a, b = statistics.median(a_times), statistics.median(b_times)
    print(
        f"{args.model} model, median per record(): {args.base} {a:.3f} µs, this tree {b:.3f} µs; "
        f"ratio {b / a:.3f} (min-of-rounds ratio {min(b_times) / min(a_times):.3f})"
    )


if __name__ == "__main__":
    main()

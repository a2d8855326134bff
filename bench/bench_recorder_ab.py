"""Compare ``LatencyRecorder.record`` per call with the recorder of another git revision.

A benchmark, not a test: no assertions. The other revision's ``loadkit/measure/recorder.py`` is
loaded from ``git show REV:...`` into a module of its own (it imports today's histogram and
results, which its code must still match), then both are timed on the same requests, alternating
A B A B ... so that a machine shared with other work disturbs both alike. Prints each round and
the ratio of the medians (this tree / the other revision).

Run: .venv/bin/python bench/bench_recorder_ab.py [--base 9b253bc] [--values 200000] [--rounds 9]
     [--model closed|open]

The other revision's timeline (``loadkit/measure/timeline.py``) is loaded with it; each timing
includes closing the run and building its timeline, as the results file does.
"""

from __future__ import annotations

import argparse
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


def _module_at(revision: str, path: str, name: str, replace: tuple[str, str] | None = None) -> Any:
    source = subprocess.run(
        ["git", "show", f"{revision}:{path}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    if replace is not None:
        source = source.replace(*replace)
    file = Path(tempfile.mkdtemp()) / f"{name}.py"
    file.write_text(source)
    spec = importlib.util.spec_from_file_location(name, file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def recorder_at(revision: str) -> ModuleType:
    """The recorder module as it was at ``revision``, with that revision's timeline (the open
    second it updates inline, and what closing a second costs)."""
    _module_at(revision, "loadkit/measure/timeline.py", "timeline_base")
    module: ModuleType = _module_at(
        revision,
        "loadkit/measure/recorder.py",
        "recorder_base",
        ("from loadkit.measure.timeline import", "from timeline_base import"),
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
    args = parser.parse_args()
    base = recorder_at(args.base)
    batch = requests(args.values, open_model=args.model == "open")
    per_call_us(base, batch[:10_000])  # warm both up
    per_call_us(current, batch[:10_000])
    a_times, b_times = [], []
    for round_index in range(args.rounds):
        a_times.append(per_call_us(base, batch))
        b_times.append(per_call_us(current, batch))
        print(
            f"round {round_index + 1}: {args.base} {a_times[-1]:.3f} µs, "
            f"this tree {b_times[-1]:.3f} µs"
        )
    a, b = statistics.median(a_times), statistics.median(b_times)
    print(
        f"{args.model} model, median per record(): {args.base} {a:.3f} µs, this tree {b:.3f} µs; "
        f"ratio {b / a:.3f} (min-of-rounds ratio {min(b_times) / min(a_times):.3f})"
    )


if __name__ == "__main__":
    main()

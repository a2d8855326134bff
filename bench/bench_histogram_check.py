"""What checking every histogram up front costs ``gate``, ``compare`` and ``errors``.

``read_checked_results`` (loadkit/measure/results_histograms.py) is ``read_results`` plus one
decode of every encoded histogram of the file, so that a damaged one is refused by name. This
times both readers on one results file of a synthetic closed run of ``--seconds`` seconds at
``--rate`` completions per second (bench_windows.py's run: one histogram per second), the two
readers interleaved (A B A B) for ``--rounds`` rounds:

    .venv/bin/python bench/bench_histogram_check.py [--seconds 600] [--rate 1000] [--rounds 5]
        [--write]

``--write`` replaces its section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from loadkit.measure.results import LoadResults, read_results, write_results
from loadkit.measure.results_histograms import read_checked_results

from bench_windows import recorded
from benchmarks_page import write_section

SECTION = "## Results files: every histogram decoded on read (bench/bench_histogram_check.py)"


def timed_s(read: Callable[[Path], object], path: Path) -> float:
    """Seconds ``read`` takes on ``path``."""
    began = time.perf_counter()
    read(path)
    return time.perf_counter() - began


def main() -> int:
    """Run the rounds and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=600)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args()
    recorder = recorded(args.seconds, args.rate)
    results = LoadResults(
        target="http://127.0.0.1:1",
        config={"scenario": "url", "model": "closed", "concurrency": 10},
        **recorder.traffic_fields(),
    )
    histograms = 1 + len(results.endpoints) + sum(p.histogram is not None for p in results.timeline)
    plain_s: list[float] = []
    checked_s: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        path = write_results(Path(tmp) / "load.json", results)
        size = path.stat().st_size
        for _ in range(args.rounds):
            plain_s.append(timed_s(read_results, path))
            checked_s.append(timed_s(read_checked_results, path))
    plain, checked = statistics.median(plain_s), statistics.median(checked_s)
    command = (
        f".venv/bin/python bench/bench_histogram_check.py --seconds {args.seconds} "
        f"--rate {args.rate} --rounds {args.rounds}"
    )
    lines = [
        SECTION,
        "",
        f"`{command}` (a synthetic closed run of {args.seconds} s at {args.rate} completions/s: "
        f"{size / 1e6:.2f} MB, {histograms} histograms; medians of {args.rounds} interleaved "
        "rounds):",
        "",
        f"- `read_results`: {plain * 1000:.0f} ms; `read_checked_results` (what gate, compare, "
        f"errors and report read with): {checked * 1000:.0f} ms ({checked / plain:.2f}x)",
        f"- decoding: {(checked - plain) / histograms * 1e6:.0f} µs per histogram, "
        f"{(checked - plain) / args.seconds * 3600:.2f} s for an hour of run at this rate "
        "(an open run's seconds also carry a service-time histogram: twice that)",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.write:
        write_section(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

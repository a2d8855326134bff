"""What windows cost: per-second histograms in the results file, and judging a window.

The recorder has always encoded each finished second's histogram (that is how seconds of
several processes merge), so a run pays nothing more while it runs; what windows add is writing
those histograms into the results (``timeline[].histogram``) and, at gate time, merging a
window's seconds. This measures both on a synthetic run of ``--seconds`` seconds at ``--rate``
completions per second (lognormal latencies around 3 ms), variants interleaved for ``--rounds``
rounds:

- results file bytes with and without the per-second histograms (their ratio);
- building the results (``traffic_fields``), seconds;
- judging ``load.p95_ms`` over the whole run and over ``window = "steady"``-like ``from 1s``
  (merging every second but the first), milliseconds each, and their ratio;
- on the same run recorded as an open one (each request with a service time of its own, 80 %
  of its response time), judging ``load.service_p95_ms`` beside ``load.p95_ms`` over ``from 1s``
  (the seconds' service histograms decoded and merged as well), interleaved, and their ratio.

    .venv/bin/python bench/bench_windows.py [--seconds 600] [--rate 1000] [--rounds 3] [--write]

``--write`` replaces its section of docs/benchmarks.md. The recorder's memory while the run
goes is unchanged by windows (it kept the encoded seconds already).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from loadkit.config import Criterion
from loadkit.gate.evaluate import evaluate_criteria
from loadkit.measure.recorder import LatencyRecorder
from loadkit.measure.results import LoadResults, write_results

from benchmarks_page import write_section

SECTION = "## Windows: per-second histograms (bench/bench_windows.py)"

T0 = 1_000.0


def recorded(seconds: int, rate: int, *, open_model: bool = False) -> LatencyRecorder:
    """A finished recorder of ``seconds`` × ``rate`` completions (``open_model``: each with a
    service time of 80 % of its response time)."""
    rng = random.Random(7)
    recorder = LatencyRecorder(start=T0)
    for second in range(seconds):
        for n in range(rate):
            latency = rng.lognormvariate(-5.8, 0.6)
            recorder.record(
                endpoint="GET /items",
                latency_s=latency,
                end=T0 + second + (n + 0.5) / rate,
                service_s=latency * 0.8 if open_model else None,
            )
    recorder.finish(end=T0 + seconds)
    return recorder


def judge_ms(results: LoadResults, window: str | None, metric: str = "load.p95_ms") -> float:
    """Milliseconds to judge ``metric`` < 1000 over ``window`` (None: the whole run)."""
    fields: dict[str, object] = {"metric": metric, "op": "<", "threshold": 1000}
    if window is not None:
        fields["window"] = window
    criterion = Criterion.model_validate(fields)
    began = time.perf_counter()
    evaluate_criteria([criterion], [("load.json", results)])
    return (time.perf_counter() - began) * 1000


def main() -> int:
    """Run the rounds and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=600)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args()
    recorder = recorded(args.seconds, args.rate)
    open_results = LoadResults(
        target="http://127.0.0.1:1",
        config={"scenario": "url", "model": "open", "rate": args.rate},
        **recorded(args.seconds, args.rate, open_model=True).traffic_fields(),
    )
    build_s: list[float] = []
    whole_ms: list[float] = []
    window_ms: list[float] = []
    open_response_ms: list[float] = []
    open_service_ms: list[float] = []
    results: LoadResults | None = None
    for _ in range(args.rounds):
        open_response_ms.append(judge_ms(open_results, "from 1s"))
        open_service_ms.append(judge_ms(open_results, "from 1s", "load.service_p95_ms"))
        began = time.perf_counter()
        results = LoadResults(
            target="http://127.0.0.1:1",
            config={"scenario": "url", "model": "closed", "concurrency": 10},
            **recorder.traffic_fields(),
        )
        build_s.append(time.perf_counter() - began)
        whole_ms.append(judge_ms(results, None))
        window_ms.append(judge_ms(results, "from 1s"))
    assert results is not None
    bare = results.model_copy(
        update={"timeline": [p.model_copy(update={"histogram": None}) for p in results.timeline]}
    )
    with tempfile.TemporaryDirectory() as tmp:
        with_path, bare_path = Path(tmp) / "with.json", Path(tmp) / "bare.json"
        write_results(with_path, results)
        write_results(bare_path, bare)
        with_bytes, bare_bytes = with_path.stat().st_size, bare_path.stat().st_size
    whole, window = statistics.median(whole_ms), statistics.median(window_ms)
    response, service = statistics.median(open_response_ms), statistics.median(open_service_ms)
    command = (
        f".venv/bin/python bench/bench_windows.py --seconds {args.seconds} --rate {args.rate} "
        f"--rounds {args.rounds}"
    )
    lines = [
        SECTION,
        "",
        f"`{command}` (a synthetic run of {args.seconds} s at {args.rate} completions/s; medians "
        f"of {args.rounds} interleaved rounds):",
        "",
        f"- results file: {with_bytes / 1e6:.2f} MB with the per-second histograms, "
        f"{bare_bytes / 1e6:.2f} MB without ({with_bytes / bare_bytes:.1f}x; "
        f"{(with_bytes - bare_bytes) / args.seconds / 1e3:.2f} kB per second of run; capped at "
        "16 MiB of histogram data per file)",
        f"- building the results at the run's end: {statistics.median(build_s):.2f} s",
        f"- judging load.p95_ms: whole run {whole:.1f} ms, window `from 1s` {window:.1f} ms "
        f"(every second's histogram decoded and merged)",
        f"- the same seconds recorded as an open run, window `from 1s`: load.p95_ms {response:.1f}"
        f" ms, load.service_p95_ms {service:.1f} ms ({service / response:.2f}x: the seconds' "
        "service histograms decoded and merged besides)",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.write:
        write_section(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The native engine's cost against nginx on loopback, next to wrk (issue #15).

Run: ``PYTHONPATH=. .venv/bin/python bench/bench_native.py [--seconds 10] [--rounds 3]
[--rss-seconds 60] [--base REV]``. Needs nginx (``nginx-light``) and wrk (Debian packages).
Prints figures; the peer comparison (ab, hey, autocannon, Locust) is bench/bench_engines.py's.

0. The engine's Python per request with no network (a fake transport fed canned responses), in
   ``--rounds`` x 2 alternated runs (with ``--base``, the base revision's too).
1. Closed model, 10 connections, ``--seconds`` each, rounds interleaved (native, wrk, native,
   wrk, ...) on the same nginx: requests per second and CPU µs per request of each tool's whole
   process tree (``RUSAGE_CHILDREN`` around the child, start-up included), HDR recording and
   the timeline on (the engine always records), a fresh traceparent on every request. CPU is
   split into user and system time: the system part is mostly the loopback TCP stack, which
   every client pays alike. With ``--base REV`` the native engine of REV's tree (a temporary
   git worktree) runs in each round too, the order alternated, and the ratio of the medians is
   printed.
2. Open model at ``--rate`` (default 50,000/s) for ``--seconds``: achieved rate, scheduler lag
   P50/P99/max, loop delay P90, CPU µs per request. Then the lag table: the same at each of
   ``--lag-rates``, ``--rounds`` runs each (a fresh process per run, the load average beside
   each); with ``--base REV`` REV's engine alternated with this tree's (A B, B A) at each rate,
   and the ratios of the medians (lag P99, loop delay P90, CPU per request).
3. RSS of a native run sampled every second over ``--rss-seconds`` (closed, 10 connections):
   early against late, each minute's mean and the least-squares slope (with ``--base``, a run
   of the base revision first).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_revisions import revision_tree

from bench_load import STATIC_PATH, nginx

ROOT = Path(__file__).resolve().parent.parent

PYTHON_PATH = """
import sys, time
from loadkit.engines.http_request import RequestSpec
from loadkit.engines.native.closed_model import ClosedModel
from loadkit.engines.native.connection import Connection
from loadkit.engines.native.pool import Pool
from loadkit.engines.native.request_bytes import encode_request
from loadkit.measure.recorder import LatencyRecorder, RunClock
RESPONSE = (
    b"HTTP/1.1 200 OK\\r\\nServer: nginx/1.22.1\\r\\nDate: Wed, 02 Dec 2026 05:00:00 GMT\\r\\n"
    b"Content-Type: text/plain\\r\\nContent-Length: 17\\r\\n"
    b"Last-Modified: Wed, 02 Dec 2026 04:00:00 GMT\\r\\nConnection: keep-alive\\r\\n"
    b'ETag: "abc-11"\\r\\nAccept-Ranges: bytes\\r\\n\\r\\nhello from nginx\\n'
)
class Transport:
    def write(self, data): pass
    def is_closing(self): return False
n = int(sys.argv[1])
clock = RunClock()
pool = Pool(
    request=encode_request(RequestSpec(url="http://127.0.0.1:8080/hello.txt")),
    ssl_context=None, recorder=LatencyRecorder(start=clock.now()),
    run_clock_offset=clock.now() - time.perf_counter(),
)
model = ClosedModel(pool=pool, concurrency=1)
connection = Connection(pool)
connection.transport = Transport()
pool.idle.append(connection)
model.start()
feed = connection.data_received
before = time.process_time()
for _ in range(n):
    feed(RESPONSE)
print((time.process_time() - before) / n * 1e6)
"""
"""The engine's Python per request with no network: a connection on a transport that drops what
is written, fed one canned nginx response after another (parse, record, next request's bytes)."""

NATIVE = """
import sys
from pathlib import Path
from loadkit.config import LoadProfile
from loadkit.engines.http_request import RequestSpec
from loadkit.exceptions import InvalidLoadRunError
from loadkit.run.native import run_native_load
url, out, seconds, concurrency, rate = sys.argv[1:6]
profile = (
    LoadProfile(rate=float(rate), duration_s=float(seconds), max_in_flight=int(concurrency))
    if float(rate) else LoadProfile(concurrency=int(concurrency), duration_s=float(seconds))
)
try:
    run_native_load(request=RequestSpec(url=url), profile=profile, out=Path(out), quiet=True)
except InvalidLoadRunError:
    pass  # flat out, the generator saturates its core and says so: the figures still stand
"""


def children_cpu_s() -> float:
    """CPU seconds (user + system) of every child process waited for so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def children_user_s() -> float:
    """User CPU seconds of every child process waited for so far."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_utime


def run_native(
    url: str,
    seconds: float,
    *,
    concurrency: int = 10,
    rate: float = 0.0,
    rss: list[float] | None = None,
    tree: Path = ROOT,
) -> dict[str, object]:
    """One native run in a child process (the engine of ``tree``): its results, CPU seconds
    (user and system) and user CPU seconds."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "load.json"
        command = [
            sys.executable,
            "-c",
            NATIVE,
            url,
            str(out),
            str(seconds),
            str(concurrency),
            str(rate),
        ]
        before, user_before = children_cpu_s(), children_user_s()
        child = subprocess.Popen(command, cwd=tree, env={**os.environ, "PYTHONPATH": str(tree)})
        sampler = None
        if rss is not None:
            sampler = threading.Thread(target=_sample_rss, args=(child, rss), daemon=True)
            sampler.start()
        child.wait()
        cpu, user = children_cpu_s() - before, children_user_s() - user_before
        results = json.loads(out.read_text())
    return {"results": results, "cpu_s": cpu, "user_s": user}


def _sample_rss(child: subprocess.Popen[bytes], samples: list[float]) -> None:
    process = psutil.Process(child.pid)
    while child.poll() is None:
        try:
            samples.append(process.memory_info().rss / 2**20)
        except psutil.Error:
            return
        time.sleep(1.0)


def rss_slope_per_min(samples: list[float]) -> float:
    """Least-squares slope of RSS samples taken once a second, in MiB per minute."""
    if len(samples) < 2:
        return 0.0
    return statistics.linear_regression(range(len(samples)), samples).slope * 60.0


def run_wrk(url: str, seconds: float) -> dict[str, float]:
    """wrk -t1 -c10: requests, requests per second and CPU seconds."""
    before, user_before = children_cpu_s(), children_user_s()
    done = subprocess.run(
        ["wrk", "-t1", "-c10", f"-d{seconds:g}s", url], capture_output=True, text=True, check=True
    )
    cpu, user = children_cpu_s() - before, children_user_s() - user_before
    requests = int(re.search(r"(\d+) requests in", done.stdout).group(1))  # type: ignore[union-attr]
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", done.stdout).group(1))  # type: ignore[union-attr]
    return {"requests": requests, "rps": rps, "cpu_s": cpu, "user_s": user}


def python_us(tree: Path, requests: int = 300_000) -> float:
    """µs of CPU per request of ``tree``'s engine Python alone (``PYTHON_PATH``)."""
    done = subprocess.run(
        [sys.executable, "-c", PYTHON_PATH, str(requests)],
        cwd=tree, env={**os.environ, "PYTHONPATH": str(tree)},
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return float(done.stdout.strip())


def python_rounds(args: argparse.Namespace, base_tree: Path | None) -> None:
    """The engine's Python per request, this tree and (``--base``) the base, alternated."""
    print(f"## the engine's Python per request, no network ({args.rounds * 2} rounds)")
    costs: dict[str, list[float]] = {}
    for round_ in range(args.rounds * 2):
        order = ["this"] + (["base"] if base_tree is not None else [])
        for which in order if round_ % 2 == 0 else order[::-1]:
            tree = base_tree if which == "base" and base_tree is not None else ROOT
            costs.setdefault(which, []).append(python_us(tree))
    for which, values in costs.items():
        label = f"native ({args.base})" if which == "base" else "this tree"
        print(
            f"{label}: median {statistics.median(values):.2f} µs "
            f"({', '.join(f'{v:.2f}' for v in values)})"
        )
    if "base" in costs:
        ratio = statistics.median(costs["this"]) / statistics.median(costs["base"])
        print(f"ratio this / {args.base}: {ratio:.3f}")


def rss_run(url: str, seconds: float, tree: Path, label: str) -> None:
    """RSS of one closed run (10 connections) of ``tree``'s engine, sampled once a second."""
    samples: list[float] = []
    run_native(url, seconds, rss=samples, tree=tree)
    # From the 5th second on: before that the child is still importing.
    settled = samples[5:] or samples
    tenth = max(len(settled) // 10, 1)
    half = settled[len(settled) // 2 :]
    minutes = [statistics.mean(settled[i : i + 60]) for i in range(0, len(settled), 60)]
    print(
        f"## RSS over {seconds:g} s, {label} (closed, 10 connections): at 5 s {settled[0]:.1f} "
        f"MiB, first tenth max {max(settled[:tenth]):.1f} MiB, last tenth max "
        f"{max(settled[-tenth:]):.1f} MiB, peak {max(samples):.1f} MiB ({len(samples)} samples, "
        f"one a second); slope over the second half {rss_slope_per_min(half):+.3f} MiB/min, over "
        f"all from 5 s {rss_slope_per_min(settled):+.3f} MiB/min; each minute's mean "
        + ", ".join(f"{m:.1f}" for m in minutes)
        + " MiB",
        flush=True,
    )


def closed_rounds(url: str, args: argparse.Namespace, base_tree: Path | None) -> None:
    """The closed-model rounds: this tree, wrk and (``--base``) the base revision, alternated."""
    print(f"## closed, 10 connections, {args.seconds:g} s, {args.rounds} rounds (interleaved)")
    costs: dict[str, list[float]] = {}
    for round_ in range(1, args.rounds + 1):
        order = ["this", "wrk"] + (["base"] if base_tree is not None else [])
        if round_ % 2 == 0:
            order.reverse()
        for which in order:
            if which == "wrk":
                wrk = run_wrk(url, args.seconds)
                requests, rps = wrk["requests"], wrk["rps"]
                cpu_s, user_s, tail = wrk["cpu_s"], wrk["user_s"], ""
            else:
                tree = base_tree if which == "base" and base_tree is not None else ROOT
                native = run_native(url, args.seconds, tree=tree)
                results = native["results"]
                assert isinstance(results, dict)
                requests, rps = results["totals"]["requests"], results["totals"]["rps"]
                cpu_s, user_s = float(native["cpu_s"]), float(native["user_s"])  # type: ignore[arg-type]
                tail = (
                    f", errors {results['totals']['errors']}, P99 {results['latency_ms']['p99']} "
                    f"ms, valid {not results['invalid_reasons']}"
                )
            cpu_us = cpu_s / requests * 1e6
            costs.setdefault(which, []).append(cpu_us)
            label = f"native ({args.base})" if which == "base" else which
            print(
                f"round {round_} {label:>14}: {rps:,.0f} req/s, {cpu_us:.2f} µs CPU/request "
                f"(user {user_s / requests * 1e6:.2f}, system "
                f"{(cpu_s - user_s) / requests * 1e6:.2f}), {requests:,} requests{tail}",
                flush=True,
            )
    medians = {which: statistics.median(values) for which, values in costs.items()}
    print(f"median CPU µs/request: {', '.join(f'{k} {v:.2f}' for k, v in medians.items())}")
    print(f"ratio this / wrk: {medians['this'] / medians['wrk']:.2f}")
    if "base" in medians:
        print(f"ratio this / {args.base}: {medians['this'] / medians['base']:.3f}")


def open_figures(native: dict[str, object]) -> dict[str, float | bool]:
    """An open run's scheduler and cost figures, as the lag table shows them."""
    results = native["results"]
    assert isinstance(results, dict)
    schedule = results["schedule"]
    return {
        "achieved": schedule["achieved_rate"],
        "lag_p50": schedule["lag_ms"]["p50"],
        "lag_p99": schedule["lag_ms"]["p99"],
        "lag_max": schedule["lag_ms"]["max"],
        "loop_p90": (schedule.get("loop_delay_ms") or {}).get("p90") or 0.0,
        "cpu_us": float(native["cpu_s"]) / results["totals"]["requests"] * 1e6,  # type: ignore[arg-type]
        "valid": not results["invalid_reasons"],
        "load": os.getloadavg()[0],
    }


def lag_rounds(url: str, args: argparse.Namespace, base_tree: Path | None) -> None:
    """Open runs at each of ``--lag-rates`` (in-flight bound 200), ``--rounds`` each, each run a
    fresh process; with ``--base`` the base revision's engine too, alternated (A B, then B A)
    rate by rate, and the ratios of the medians (this / base) printed."""
    rates = [float(r) for r in args.lag_rates.split(",") if r]
    print(
        f"## scheduler lag by rate ({args.seconds:g} s each, in-flight bound 200, "
        f"{args.rounds} rounds{', interleaved with ' + args.base if base_tree else ''})"
    )
    summary: list[str] = []
    for rate in rates:
        runs: dict[str, list[dict[str, float | bool]]] = {}
        for round_ in range(args.rounds):
            order = ["this"] + (["base"] if base_tree is not None else [])
            for which in order if round_ % 2 == 0 else order[::-1]:
                tree = base_tree if which == "base" and base_tree is not None else ROOT
                figures = open_figures(
                    run_native(url, args.seconds, concurrency=200, rate=rate, tree=tree)
                )
                runs.setdefault(which, []).append(figures)
                label = args.base if which == "base" else "this tree"
                print(
                    f"{rate:>8,.0f}/s {label:>10}: achieved {figures['achieved']:,.0f}/s, lag P50 "
                    f"{figures['lag_p50']} P99 {figures['lag_p99']} max {figures['lag_max']} ms, "
                    f"loop delay P90 {figures['loop_p90']} ms, {figures['cpu_us']:.2f} µs "
                    f"CPU/request, valid {figures['valid']}, load average {figures['load']:.2f}",
                    flush=True,
                )
        medians = {
            which: {key: statistics.median(float(f[key]) for f in values) for key in values[0]}
            for which, values in runs.items()
        }
        for which, m in medians.items():
            label = args.base if which == "base" else "this tree"
            valid = sum(bool(f["valid"]) for f in runs[which])
            summary.append(
                f"| {rate:,.0f}/s | {label} | {m['achieved']:,.0f} | {m['lag_p50']:.3f} / "
                f"{m['lag_p99']:.3f} / {m['lag_max']:.1f} | {m['loop_p90']:.2f} | "
                f"{m['cpu_us']:.1f} | {valid}/{len(runs[which])} | {m['load']:.2f} |"
            )
        if "base" in medians:
            this, base = medians["this"], medians["base"]
            summary.append(
                f"| {rate:,.0f}/s | ratio | | lag P99 {this['lag_p99'] / base['lag_p99']:.2f} | "
                f"{this['loop_p90'] / base['loop_p90']:.2f} | "
                f"{this['cpu_us'] / base['cpu_us']:.3f} | | |"
            )
    print("medians of the rounds:")
    print(
        "| rate | tree | achieved | lag P50 / P99 / max (ms) | loop delay P90 (ms) | "
        "CPU µs/request | valid | load average |"
    )
    print("|---|---|---|---|---|---|---|---|")
    print("\n".join(summary), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rate", type=float, default=50_000.0)
    parser.add_argument(
        "--lag-rates", default="100,1000,5000,20000", help="open runs for the lag table"
    )
    parser.add_argument("--rss-seconds", type=float, default=60.0)
    parser.add_argument("--base", default=None, help="also run the native engine of this revision")
    parser.add_argument(
        "--skip", default="", help="comma list of parts to skip: python,closed,open,lag,startup,rss"
    )
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    with nginx() as base:
        url = base + STATIC_PATH
        if "python" not in skip:
            if args.base:
                with revision_tree(args.base) as base_tree:
                    python_rounds(args, base_tree)
            else:
                python_rounds(args, None)
        if "closed" not in skip:
            if args.base:
                with revision_tree(args.base) as base_tree:
                    closed_rounds(url, args, base_tree)
            else:
                closed_rounds(url, args, None)
        if "open" not in skip:
            print(f"## open, {args.rate:,.0f}/s, {args.seconds:g} s")
            native = run_native(url, args.seconds, concurrency=200, rate=args.rate)
            results = native["results"]
            assert isinstance(results, dict)
            schedule = results["schedule"]
            requests = results["totals"]["requests"]
            print(
                f"achieved {schedule['achieved_rate']:,.0f}/s of {schedule['target_rate']:,.0f}, "
                f"not sent {schedule['not_sent']}, lag P50 {schedule['lag_ms']['p50']} ms "
                f"P99 {schedule['lag_ms']['p99']} ms max {schedule['lag_ms']['max']} ms, "
                f"loop delay P90 {schedule.get('loop_delay_ms', {}).get('p90')} ms, "
                f"{float(native['cpu_s']) / requests * 1e6:.2f} µs CPU/request, "  # type: ignore[arg-type]
                f"response P99 {results['latency_ms']['p99']} ms, "
                f"invalid: {[r['code'] for r in results['invalid_reasons']]}",
                flush=True,
            )
        if "lag" not in skip:
            if args.base:
                with revision_tree(args.base) as base_tree:
                    lag_rounds(url, args, base_tree)
            else:
                lag_rounds(url, args, None)
        if "startup" not in skip:
            native = run_native(url, 0.001)
            print(
                f"## start-up: a run of 1 ms costs {float(native['cpu_s']):.3f} s of CPU "  # type: ignore[arg-type]
                "(interpreter, imports, results file): included in the figures above",
                flush=True,
            )
        if "rss" not in skip:
            if args.base:
                with revision_tree(args.base) as base_tree:
                    rss_run(url, args.rss_seconds, base_tree, f"native ({args.base})")
            rss_run(url, args.rss_seconds, ROOT, "this tree")


if __name__ == "__main__":
    main()

"""Benchmarks of the open model (`loadkit load --rate`): the rate one process holds, CPU, memory.

Against nginx on loopback (bench_load.py starts it: one small static file), scenario ``url``, one
Locust process, up to four measurements:

0. with ``--base REV``: the open model's CPU per request at ``--cpu-rate`` from REV's tree and
   from this one, alternated (a change to the plugin must not make an open run dearer);
1. capacity: the highest rate each model holds, by bisection. Each step runs the closed model
   flat out (``--users`` users), then an open run and a paced closed run (the same users on
   Locust's ``constant_throughput``) at the rates their own searches try next (A B C A B C
   ...). A rate is held when the run is valid by the results' own rules (open: scheduler lag
   P99 under ``LAG_P99_BOUND_MS``, event-loop delay P90 under ``LOOP_DELAY_P90_BOUND_MS``;
   both: CPU under 90 %) and the requests completed per second in its steady seconds reach
   98 % of it. Three readings: the open rate held over the closed flat-out median (the issue's
   target, >= 0.9, though loadkit marks such flat-out runs invalid); over the paced closed
   model's rate held by the same rules; and at equal generator CPU (the closed flat-out CPU
   per request over the open run's at the rate held);
2. CPU per request at the same achieved rate: an open run at ``--cpu-rate`` against a closed
   run paced to the same rate, alternated;
3. memory: Locust's RSS each second over open runs of each ``--memory`` length at
   ``--memory-rate``: early against late, and the slope.

Every run is ``python -m loadkit load`` in a process of its own; a sampler reads the CPU time
and RSS of its Locust process (psutil) every 0.2 s. CPU per request is taken over the run's
steady seconds only (from its 2nd second to its last whole one: no start-up, no drain): the
Locust process's CPU over that span divided by the requests the results' timeline completed in
it.

    .venv/bin/python bench/bench_open.py [--seconds 12] [--steps 6] [--memory 60 240]
        [--base REV] [--skip-capacity]

Prints a table and replaces its section of docs/benchmarks.md (``--no-write`` to skip).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import psutil
from bench_revisions import revision_tree

from loadkit.measure.validity import LAG_P99_BOUND_MS, LOOP_DELAY_P90_BOUND_MS

from bench_load import STATIC_PATH, children_cpu_s, nginx, nginx_version
from benchmarks_page import write_section

ROOT = Path(__file__).resolve().parent.parent
SECTION = "## loadkit load --rate: the open model's capacity, CPU, memory (bench/bench_open.py)"
OK_EXITS = (0, 4)
"""A valid run (0) or one loadkit marked invalid (4: the generator did not keep up), which is
what the search is looking for the edge of."""
HELD_FRACTION = 0.98
"""A rate is held when the steady seconds complete at least this share of it (and it is valid)."""
STEADY_FROM_S = 2
CPU_LIMIT_PERCENT = 90.0
"""Above this a generator process is overloaded (Locust's cpu_warning, the plugin's CpuWatch)."""
"""The steady seconds begin here: the first ones hold start-up (a cold loop, first connections)."""

PACED_LOCUSTFILE = '''\
"""url.py's user, paced: a closed-model run at a fixed total rate (bench_open.py writes this)."""
import sys

sys.path.insert(0, {scenarios!r})
import url as _url  # noqa: E402  (a module, so Locust sees one user class here)
from locust import constant_throughput  # noqa: E402


class PacedUrlUser(_url.UrlUser):
    wait_time = constant_throughput({per_user!r})
'''


class LocustSampler:
    """Samples CPU seconds and RSS of a process's descendants (Locust) until stopped."""

    def __init__(self, pid: int, interval_s: float = 0.2) -> None:
        """Start sampling the children of ``pid`` every ``interval_s``."""
        self.samples: list[tuple[float, float]] = []
        """(wall-clock time, summed CPU seconds of the descendants then)."""
        self.rss: list[tuple[float, int]] = []
        """(wall-clock time, summed RSS of the descendants then, bytes)."""
        self.peak_rss = 0
        self._parent = psutil.Process(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(interval_s,), daemon=True)
        self._thread.start()

    def _run(self, interval_s: float) -> None:
        while not self._stop.is_set():
            cpu = 0.0
            rss = 0
            try:
                children = self._parent.children(recursive=True)
            except psutil.Error:
                children = []
            for child in children:
                try:
                    with child.oneshot():
                        times = child.cpu_times()
                        rss += child.memory_info().rss
                except psutil.Error:
                    continue
                cpu += times.user + times.system
            if children:
                moment = time.time()
                self.samples.append((moment, cpu))
                if rss:  # 0: every child was gone (the run's exit), no reading
                    self.rss.append((moment, rss))
                self.peak_rss = max(self.peak_rss, rss)
            time.sleep(interval_s)

    def stop(self) -> None:
        """Stop sampling."""
        self._stop.set()
        self._thread.join()

    def cpu_between(self, start: float, end: float) -> float | None:
        """CPU seconds used between two wall-clock times (interpolated between samples)."""
        if not self.samples or start < self.samples[0][0] or end > self.samples[-1][0]:
            return None
        return self._cpu_at(end) - self._cpu_at(start)

    def _cpu_at(self, moment: float) -> float:
        before = max((s for s in self.samples if s[0] <= moment), key=lambda s: s[0])
        after = min((s for s in self.samples if s[0] >= moment), key=lambda s: s[0])
        if after[0] == before[0]:
            return before[1]
        share = (moment - before[0]) / (after[0] - before[0])
        return before[1] + share * (after[1] - before[1])


@dataclass
class Run:
    """What one ``loadkit load`` run gave."""

    label: str
    rate: float | None
    """The rate an open run was asked for (None: a closed run)."""
    exit_code: int
    requests: int
    steady_rps: float
    """Requests completed per second over the steady seconds (the results' timeline)."""
    steady_cpu_us: float | None
    """Locust's CPU per request over the same seconds (µs)."""
    tree_cpu_us: float
    """CPU of the whole process tree (loadkit, Locust, start-up included) per request (µs)."""
    peak_rss: int
    max_cpu_percent: float | None
    load_average: float = 0.0
    """The machine's 1-minute load average as the run began (others' work shows there)."""
    lag_p50_ms: float | None = None
    lag_p99_ms: float | None = None
    lag_max_ms: float | None = None
    loop_p90_ms: float | None = None
    """The generator's event-loop delay P90 (an open run's)."""
    not_sent: int = 0
    reasons: list[str] = field(default_factory=list)
    rss_by_second: list[int] = field(default_factory=list)
    """Locust's RSS each second of the run (bytes; second 0 first), from the sampler."""

    @property
    def valid(self) -> bool:
        """No reason not to gate on the run."""
        return not self.reasons

    @property
    def codes(self) -> list[str]:
        """The codes of the reasons it is invalid."""
        return [reason.split(":")[0] for reason in self.reasons]

    def holds(self, rate: float) -> bool:
        """Valid, and its steady seconds completed (nearly) ``rate`` requests per second."""
        return self.valid and self.steady_rps >= HELD_FRACTION * rate


def loadkit_load(
    url: str,
    extra: list[str],
    *,
    seconds: int,
    label: str,
    rate: float | None = None,
    tree: Path | None = None,
) -> Run:
    """One ``python -m loadkit load`` run of ``seconds`` against ``url`` (a base URL) with
    ``extra`` options, from the source ``tree`` (default: this one); its figures."""
    with tempfile.TemporaryDirectory(prefix="bench-open-") as tmp:
        out = Path(tmp) / "load.json"
        command = [
            sys.executable, "-m", "loadkit", "load", "--duration", str(seconds),
            "--out", str(out), "--quiet", *extra,
        ]  # fmt: skip
        if "--scenario" not in extra:
            command.insert(4, f"{url}{STATIC_PATH}")
            if ((tree or ROOT) / "loadkit" / "engines" / "choice.py").exists():
                # A URL runs native since the engine choice: this benchmark measures Locust's.
                command += ["--engine", "locust"]
        load_average = os.getloadavg()[0]
        before = children_cpu_s()
        # An empty working folder: Locust reads locust.conf and pyproject.toml from it.
        env = {**os.environ, "PYTHONPATH": str(tree or ROOT)}
        process = subprocess.Popen(
            command, cwd=tmp, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        sampler = LocustSampler(process.pid)
        _, stderr = process.communicate(timeout=seconds + 120)
        sampler.stop()
        tree_cpu_s = children_cpu_s() - before
        if process.returncode not in OK_EXITS or not out.exists():
            raise SystemExit(f"{' '.join(command)} exited {process.returncode}:\n{stderr}")
        results: dict[str, Any] = orjson.loads(out.read_bytes())
    started = datetime.fromisoformat(results["started_at"].replace("Z", "+00:00")).timestamp()
    last = int(float(results["duration_s"]))  # the last whole second
    steady = [s for s in results["timeline"] if STEADY_FROM_S <= s["t_s"] < last]
    completed = sum(int(s["completions"]) for s in steady)
    span_s = last - STEADY_FROM_S
    cpu_s = sampler.cpu_between(started + STEADY_FROM_S, started + last)
    requests = int(results["totals"]["requests"])
    schedule = results.get("schedule") or {}
    lag = schedule.get("lag_ms") or {}
    return Run(
        label=label,
        rate=rate,
        exit_code=process.returncode,
        requests=requests,
        steady_rps=completed / span_s if span_s > 0 else 0.0,
        steady_cpu_us=cpu_s / completed * 1e6 if cpu_s is not None and completed else None,
        tree_cpu_us=tree_cpu_s / requests * 1e6 if requests else float("nan"),
        peak_rss=sampler.peak_rss,
        max_cpu_percent=results["generator"].get("max_cpu_percent"),
        load_average=load_average,
        lag_p50_ms=lag.get("p50"),
        lag_p99_ms=lag.get("p99"),
        lag_max_ms=lag.get("max"),
        loop_p90_ms=(schedule.get("loop_delay_ms") or {}).get("p90"),
        not_sent=int(schedule.get("not_sent", 0)),
        reasons=[f"{r['code']}: {r['detail']}" for r in results["invalid_reasons"]],
        rss_by_second=rss_by_second(sampler.rss, started),
    )


def rss_by_second(samples: list[tuple[float, int]], started: float) -> list[int]:
    """The last RSS sample of each whole second from ``started`` on (a second without one
    repeats the one before)."""
    by_second: list[int] = []
    for moment, rss in samples:
        second = int(moment - started)
        if second < 0:
            continue
        while len(by_second) <= second:
            by_second.append(by_second[-1] if by_second else rss)
        by_second[second] = rss
    return by_second


@dataclass
class MemoryTrend:
    """Whether RSS stays flat over a run: early against late, and the slope in between."""

    window_s: int
    early_mib: float
    """Median RSS over the first window (after ``MEMORY_SKIP_S`` of start-up)."""
    late_mib: float
    """Median RSS over the run's last window."""
    slope_mib_per_min: float
    """Least-squares slope of RSS over the run past its start-up."""


MEMORY_SKIP_S = 3
"""The first seconds of a memory trace are start-up (imports, users spawned), not the run."""


def memory_trend(run: Run, seconds: int) -> MemoryTrend | None:
    """Early against late RSS of ``run`` (windows of a minute, a quarter of shorter runs)."""
    trace = run.rss_by_second[MEMORY_SKIP_S:seconds]
    if len(trace) < 8:
        return None
    window = max(2, min(60, len(trace) // 4))
    mib = [value / 2**20 for value in trace]
    xs = [i / 60.0 for i in range(len(mib))]
    x_mean, y_mean = statistics.fmean(xs), statistics.fmean(mib)
    denominator = sum((x - x_mean) ** 2 for x in xs)
    slope = sum((x - x_mean) * (y - y_mean) for x, y in zip(xs, mib, strict=True)) / denominator
    return MemoryTrend(
        window_s=window,
        early_mib=statistics.median(mib[:window]),
        late_mib=statistics.median(mib[-window:]),
        slope_mib_per_min=slope,
    )


def open_run(
    url: str,
    rate: float,
    *,
    seconds: int,
    max_in_flight: int,
    tree: Path | None = None,
    label: str = "open",
) -> Run:
    """An open-model run at ``rate`` iterations per second (from ``tree``: another revision)."""
    extra = ["--rate", f"{rate:g}", "--max-in-flight", str(max_in_flight)]
    return loadkit_load(
        url, extra, seconds=seconds, label=f"{label} {rate:,.0f}/s", rate=rate, tree=tree
    )


def closed_run(url: str, *, users: int, seconds: int) -> Run:
    """A closed-model run, ``users`` users flat out."""
    extra = ["--concurrency", str(users)]
    return loadkit_load(url, extra, seconds=seconds, label=f"closed {users} users")


def paced_closed_run(url: str, rate: float, *, users: int, seconds: int, folder: Path) -> Run:
    """A closed-model run of url.py's user paced to ``rate`` requests per second in all (held,
    like an open run, when valid with 98 % of the rate completed)."""
    locustfile = folder / f"paced_{rate:g}_{users}.py"
    locustfile.write_text(
        PACED_LOCUSTFILE.format(scenarios=str(ROOT / "scenarios"), per_user=rate / users)
    )
    extra = [
        "--scenario", str(locustfile), "--host", url, "--concurrency", str(users),
        "--", "--url-path", STATIC_PATH,
    ]  # fmt: skip
    label = f"closed paced {rate:,.0f}/s"
    return loadkit_load(url, extra, seconds=seconds, label=label, rate=rate)


@dataclass
class Bisection:
    """The search for the highest rate a model holds: each rate tried halves the gap between
    the highest held and the lowest not held."""

    rate: float
    """The rate to try next."""
    ceiling: float
    """Above any rate expected to hold (the top of the gap until a rate fails)."""
    held: float = 0.0
    failed: float | None = None
    done: bool = False

    def note(self, run: Run) -> None:
        """``run`` tried ``self.rate``: move on to the next rate (or finish)."""
        if run.holds(self.rate):
            self.held = max(self.held, self.rate)
        else:
            self.failed = self.rate if self.failed is None else min(self.failed, self.rate)
        top = self.failed if self.failed is not None else self.ceiling
        following = step((self.held + top) / 2)
        if following in (step(self.held), step(top)):
            self.done = True  # the steps are as fine as the search goes
        self.rate = following


def step(rate: float) -> float:
    """Rates are tried in steps of 50/s (finer is below the noise of a shared machine)."""
    return max(50.0, round(rate / 50.0) * 50.0)


def describe(run: Run) -> str:
    """One line about a run, for the log."""
    lag = f", lag P50/P99/max {lag_text(run)} ms" if run.lag_p99_ms is not None else ""
    if run.loop_p90_ms is not None:
        lag += f", loop delay P90 {run.loop_p90_ms:.2f} ms"
    peak = f", peak CPU {run.max_cpu_percent:.0f} %" if run.max_cpu_percent else ""
    return (
        f"{run.label}: {run.steady_rps:,.0f} req/s steady, {cpu_text(run)} µs CPU/request{lag}"
        f"{peak}, load average {run.load_average:.1f}: {verdict(run)}"
    )


def cpu_text(run: Run) -> str:
    """Steady CPU per request, µs."""
    return f"{run.steady_cpu_us:.0f}" if run.steady_cpu_us is not None else "?"


def lag_text(run: Run) -> str:
    """Scheduler lag P50 / P99 / max, ms (an open run's)."""
    lags = [lag for lag in (run.lag_p50_ms, run.lag_p99_ms, run.lag_max_ms) if lag is not None]
    return " / ".join(f"{lag:.1f}" for lag in lags) if len(lags) == 3 else "—"


def verdict(run: Run) -> str:
    """Held, or why not: which rule made the run invalid, or how much of the rate it reached."""
    if run.rate is None:
        return "valid" if run.valid else "invalid: " + ", ".join(run.codes)
    if run.holds(run.rate):
        return "held"
    why = []
    if run.lag_p99_ms is not None and run.lag_p99_ms > LAG_P99_BOUND_MS:
        why.append("lag P99 over the bound")
    if run.loop_p90_ms is not None and run.loop_p90_ms > LOOP_DELAY_P90_BOUND_MS:
        why.append("event-loop delay P90 over the bound")
    if run.max_cpu_percent is not None and run.max_cpu_percent > CPU_LIMIT_PERCENT:
        why.append("CPU over 90 %")
    why += [code for code in run.codes if code != "generator_overloaded"]
    if why:
        return "invalid: " + ", ".join(why)
    return f"valid, yet {run.steady_rps / run.rate:.0%} of the rate completed"


@dataclass
class Step:
    """One step of the capacity search: a closed run flat out, then an open run and a paced
    closed run at the rates their searches try next."""

    kind: str
    """"search" or "again" (the rates found, tried again)."""
    closed: Run
    opened: Run | None
    paced: Run | None


def capacity_search(
    args: argparse.Namespace, url: str, folder: Path
) -> tuple[list[Step], float, float]:
    """Both models' bisections in lockstep (A B C A B C ...), each step after a closed run flat
    out, then the rates found tried again: the steps, the open model's highest rate held and
    the paced closed model's."""
    steps: list[Step] = []
    closed = closed_run(url, users=args.users, seconds=args.seconds)
    print(describe(closed))
    first = step(0.9 * closed.steady_rps)  # the target first: does it hold or not?
    ceiling = 1.25 * closed.steady_rps
    searches = {"open": Bisection(first, ceiling), "paced": Bisection(first, ceiling)}
    for n in range(args.steps):
        if n:
            closed = closed_run(url, users=args.users, seconds=args.seconds)
            print(describe(closed))
        tried: dict[str, Run] = {}
        for name, search in searches.items():
            if search.done:
                continue
            tried[name] = try_rate(args, url, name, search.rate, folder)
            print(describe(tried[name]))
            search.note(tried[name])
        steps.append(Step("search", closed, tried.get("open"), tried.get("paced")))
        if all(search.done for search in searches.values()):
            break
    held = searches["open"].held
    paced_held = searches["paced"].held
    for _ in range(args.confirm if held or paced_held else 0):
        closed = closed_run(url, users=args.users, seconds=args.seconds)
        print(describe(closed))
        again = {
            name: try_rate(args, url, name, rate, folder)
            for name, rate in (("open", held), ("paced", paced_held))
            if rate
        }
        for run in again.values():
            print(describe(run))
        steps.append(Step("again", closed, again.get("open"), again.get("paced")))
    return steps, held, paced_held


def try_rate(args: argparse.Namespace, url: str, model: str, rate: float, folder: Path) -> Run:
    """One run of ``model`` ("open" or "paced") at ``rate`` with the search's bound."""
    if model == "open":
        return open_run(url, rate, seconds=args.seconds, max_in_flight=args.max_in_flight)
    return paced_closed_run(url, rate, users=args.users, seconds=args.seconds, folder=folder)


def base_comparison(args: argparse.Namespace, url: str) -> list[tuple[Run, Run]]:
    """Open runs at ``--cpu-rate`` from the ``--base`` revision and from this tree, alternated
    (base first in odd rounds, this tree first in even ones)."""
    pairs: list[tuple[Run, Run]] = []
    with revision_tree(args.base) as base:
        for n in range(args.base_rounds):
            runs: dict[str, Run] = {}
            for which in ("base", "this") if n % 2 == 0 else ("this", "base"):
                runs[which] = open_run(
                    url,
                    args.cpu_rate,
                    seconds=args.seconds,
                    max_in_flight=args.max_in_flight,
                    tree=base if which == "base" else None,
                    label=f"open ({args.base})" if which == "base" else "open (this tree)",
                )
                print(describe(runs[which]))
            pairs.append((runs["base"], runs["this"]))
    return pairs


def main() -> None:
    """Run the measurements, print them, write the docs section."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=12, help="length of each search/CPU run")
    parser.add_argument("--steps", type=int, default=6, help="rates tried in each search")
    parser.add_argument("--confirm", type=int, default=2, help="steps again at the rates found")
    parser.add_argument("--users", type=int, default=20, help="closed users (flat out, paced)")
    parser.add_argument(
        "--max-in-flight",
        type=int,
        default=None,
        help="open runs' bound on iterations at once (default: --users, the closed runs' bound)",
    )
    parser.add_argument("--cpu-rate", type=float, default=2000.0, help="rate of measurement 2")
    parser.add_argument("--cpu-rounds", type=int, default=2, help="paced closed/open pairs")
    parser.add_argument(
        "--base", default=None, help="also compare open runs at --cpu-rate with this revision"
    )
    parser.add_argument("--base-rounds", type=int, default=4, help="base/this pairs")
    parser.add_argument("--memory-rate", type=float, default=1000.0, help="rate of measurement 3")
    parser.add_argument("--memory", type=int, nargs="*", default=[60, 240], help="run lengths")
    parser.add_argument("--skip-capacity", action="store_true", help="no capacity search")
    parser.add_argument("--no-write", action="store_true", help="do not update the docs")
    args = parser.parse_args()
    if args.max_in_flight is None:
        args.max_in_flight = args.users

    with nginx() as url, tempfile.TemporaryDirectory(prefix="bench-open-") as tmp:
        # 0. this tree's open model against another revision's, at one rate.
        versus = base_comparison(args, url) if args.base else []

        # 1. capacity: both models' bisections, then the rates found tried again.
        steps: list[Step] = []
        held = paced_held = 0.0
        if not args.skip_capacity:
            steps, held, paced_held = capacity_search(args, url, Path(tmp))

        # 2. CPU per request at one achieved rate, the two models alternated.
        cpu_pairs: list[tuple[Run, Run]] = []
        for _ in range(args.cpu_rounds):
            paced = paced_closed_run(
                url, args.cpu_rate, users=args.users, seconds=args.seconds, folder=Path(tmp)
            )
            print(describe(paced))
            opened = open_run(
                url, args.cpu_rate, seconds=args.seconds, max_in_flight=args.max_in_flight
            )
            print(describe(opened))
            cpu_pairs.append((paced, opened))

        # 3. memory over run length, RSS each second.
        memory = []
        for seconds in args.memory:
            run = open_run(url, args.memory_rate, seconds=seconds, max_in_flight=args.max_in_flight)
            print(describe(run) + f", {memory_text(run, seconds)}")
            memory.append((seconds, run))

    text = page_text(args, versus, steps, held, paced_held, cpu_pairs, memory)
    print(text)
    if not args.no_write:
        write_section(text)


def memory_text(run: Run, seconds: int) -> str:
    """RSS early and late in a run, and its slope."""
    trend = memory_trend(run, seconds)
    if trend is None:
        return f"peak RSS {run.peak_rss / 2**20:.0f} MiB"
    return (
        f"RSS first / last {trend.window_s} s {trend.early_mib:.1f} / {trend.late_mib:.1f} MiB, "
        f"slope {trend.slope_mib_per_min:+.2f} MiB/min, peak {run.peak_rss / 2**20:.0f} MiB"
    )


def median_or_none(values: list[float | None]) -> float | None:
    """The median of the values known, or None."""
    known = [value for value in values if value is not None]
    return statistics.median(known) if known else None


def page_text(
    args: argparse.Namespace,
    versus: list[tuple[Run, Run]],
    steps: list[Step],
    held: float,
    paced_held: float,
    cpu_pairs: list[tuple[Run, Run]],
    memory: list[tuple[int, Run]],
) -> str:
    """The docs section: how it was measured, every run, the figures and their readings."""
    command = " ".join(["bench/bench_open.py", *sys.argv[1:]])
    rows: list[tuple[str, str]] = []
    if versus:
        base_cpu = median_or_none([b.steady_cpu_us for b, _ in versus])
        this_cpu = median_or_none([t.steady_cpu_us for _, t in versus])
        for n, (b, t) in enumerate(versus, 1):
            rows.append(
                (
                    f"open {args.cpu_rate:,.0f}/s, round {n}: CPU per request {args.base} / this "
                    "tree",
                    f"{cpu_text(b)} / {cpu_text(t)} µs (lag P99 {b.lag_p99_ms or 0:.1f} / "
                    f"{t.lag_p99_ms or 0:.1f} ms; peak CPU {b.max_cpu_percent or 0:.0f} / "
                    f"{t.max_cpu_percent or 0:.0f} %)",
                )
            )
        if base_cpu and this_cpu:
            rows.append(
                (
                    f"open model CPU per request, this tree / {args.base} (medians)",
                    f"**{this_cpu / base_cpu:.2f}**",
                )
            )
    step_rows: list[str] = []
    if steps:
        flat = [s.closed for s in steps]
        closed_rps = statistics.median(run.steady_rps for run in flat)
        closed_valid = sum(run.valid for run in flat)
        closed_cpu = median_or_none([run.steady_cpu_us for run in flat])
        held_runs = [s.opened for s in steps if s.opened is not None and s.opened.rate == held]
        paced_runs = [s.paced for s in steps if s.paced is not None and s.paced.rate == paced_held]
        open_cpu_at_held = median_or_none([run.steady_cpu_us for run in held_runs])
        step_rows = [
            f"| {n} {s.kind} | {s.closed.steady_rps:,.0f} | {s.closed.max_cpu_percent or 0:.0f} % "
            f"| {cpu_text(s.closed)} | {verdict(s.closed)} | {open_cells(s.opened)} "
            f"| {paced_cells(s.paced)} |"
            for n, s in enumerate(steps, 1)
        ]
        rows += [
            (
                "closed model flat out: req/s (median), valid in how many runs",
                f"{closed_rps:,.0f} ({closed_valid} of {len(flat)} valid; CPU µs/req "
                f"{closed_cpu or 0:.0f})",
            ),
            (
                "open model, highest rate held (held in how many runs at that rate)",
                f"{held:,.0f}/s ({sum(r.holds(held) for r in held_runs)} of {len(held_runs)}; "
                f"CPU µs/req {open_cpu_at_held or 0:.0f})",
            ),
            (
                "closed model paced, highest rate held by the same rules",
                f"{paced_held:,.0f}/s ({sum(r.holds(paced_held) for r in paced_runs)} of "
                f"{len(paced_runs)})",
            ),
            ("ratio open held / closed flat out (the issue's reading; target >= 0.9)",
             f"**{held / closed_rps:.2f}**"),
            ("ratio open held / closed paced held (both valid by the same rules)",
             f"**{held / paced_held:.2f}**" if paced_held else "?"),
            (
                "ratio at equal generator CPU: closed flat-out CPU per request / open's at the "
                "rate held",
                f"**{closed_cpu / open_cpu_at_held:.2f}**" if closed_cpu and open_cpu_at_held
                else "?",
            ),
        ]  # fmt: skip
    paced_cpu = [p.steady_cpu_us for p, _ in cpu_pairs if p.steady_cpu_us is not None]
    open_cpu = [o.steady_cpu_us for _, o in cpu_pairs if o.steady_cpu_us is not None]
    rows += [
        *(
            (
                f"CPU per request at {args.cpu_rate:,.0f}/s, round {n}: closed paced / open",
                f"{cpu_text(p)} / {cpu_text(o)} µs ({p.steady_rps:,.0f} / {o.steady_rps:,.0f} "
                f"req/s; open lag P50/P99/max {lag_text(o)} ms, {verdict(o)})",
            )
            for n, (p, o) in enumerate(cpu_pairs, 1)
        ),
        (
            "CPU per request, open / closed paced (medians)",
            f"{statistics.median(open_cpu) / statistics.median(paced_cpu):.2f}"
            if paced_cpu and open_cpu
            else "?",
        ),
        *(
            (
                f"RSS of Locust, open {args.memory_rate:,.0f}/s for {seconds} s "
                f"({run.requests:,} requests)",
                f"{memory_text(run, seconds)} (lag P50/P99/max {lag_text(run)} ms, {verdict(run)})",
            )
            for seconds, run in memory
        ),
    ]
    lines = [
        SECTION,
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d} on {os.cpu_count()} cores (shared with other "
        f"work), Python {platform.python_version()}, with `.venv/bin/python {command}`. "
        f"Target: nginx {nginx_version()} on loopback serving a 17-byte file; scenario "
        f"`url.py`, one Locust process; open runs `--max-in-flight {args.max_in_flight}`, "
        f"closed runs {args.users} users (the same bound on requests at once), flat out or "
        f"paced (url.py's user on Locust's `constant_throughput`), {args.seconds} s per run "
        "but the memory runs. Each step of the capacity search runs the closed model flat "
        "out, then the open model and the paced closed model at the rates their own "
        "bisections try next (A B C A B C ...); a rate is held when the run is valid by the "
        "results' own rules (open: scheduler lag P99 under "
        f"{LAG_P99_BOUND_MS:g} ms, event-loop delay P90 under {LOOP_DELAY_P90_BOUND_MS:g} ms; "
        "both: CPU under 90 %) and "
        f"its steady seconds complete {HELD_FRACTION:.0%} of it; the rates found are tried "
        "again (`again`). Req/s and CPU per request are over each run's steady seconds (from "
        f"second {STEADY_FROM_S} to the last whole one): Locust's CPU time (psutil) over the "
        "requests the results' timeline completed then. RSS is Locust's, sampled every "
        f"second; early and late are the medians of the first window (after {MEMORY_SKIP_S} s "
        "of start-up) and the last, the slope a least-squares fit past start-up.",
        "",
    ]
    if step_rows:
        lines += [
            "| step | closed flat req/s | peak CPU | CPU µs/req | closed run | open rate "
            "| open req/s | lag P99 ms | loop P90 ms | peak CPU | CPU µs/req | open run "
            "| paced rate | paced req/s | peak CPU | CPU µs/req | paced run |",
            "|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---|",
            *step_rows,
            "",
        ]
    lines += [
        "| measurement | value |",
        "|---|---:|",
        *(f"| {name} | {value} |" for name, value in rows),
        "",
    ]
    return "\n".join(lines)


def open_cells(run: Run | None) -> str:
    """An open run's cells of the capacity table."""
    if run is None:
        return "| | | | | | "
    return (
        f"{run.rate or 0:,.0f} | {run.steady_rps:,.0f} | {run.lag_p99_ms or 0:.1f} "
        f"| {run.loop_p90_ms or 0:.1f} | {run.max_cpu_percent or 0:.0f} % | {cpu_text(run)} "
        f"| {verdict(run)}"
    )


def paced_cells(run: Run | None) -> str:
    """A paced closed run's cells of the capacity table."""
    if run is None:
        return "| | | |"
    return (
        f"{run.rate or 0:,.0f} | {run.steady_rps:,.0f} | {run.max_cpu_percent or 0:.0f} % "
        f"| {cpu_text(run)} | {verdict(run)}"
    )


if __name__ == "__main__":
    main()

"""Benchmarks of the open model (`loadkit load --rate`): the rate one process holds, CPU, memory.

Against nginx on loopback (bench_load.py starts it: one small static file), scenario ``url``, one
Locust process, three measurements:

1. capacity: the highest rate the open model holds, found by steps (bisection), each step an
   open run interleaved with a closed run flat out (A B A B ...) on the same target. A rate is
   held when the run is valid (scheduler lag P99 under the bound of
   ``loadkit.measure.validity.LAG_P99_BOUND_MS``, CPU under 90 %, nothing else wrong) and the
   requests completed per second in the run's steady seconds reach 98 % of it. The figure is
   that rate over the median of the closed runs' requests per second (target >= 0.9);
2. CPU per request at the same achieved rate: an open run at ``--cpu-rate`` against a closed
   run paced to the same rate (its users on Locust's ``constant_throughput``), alternated;
3. memory: peak RSS of Locust over open runs of each ``--memory`` length at ``--memory-rate``
   (closed runs measured 64 / 74 / 67 MiB for 15 / 60 / 240 s, FACTS.md).

Every run is ``python -m loadkit load`` in a process of its own; a sampler reads the CPU time
and RSS of its Locust process (psutil) every 0.2 s. CPU per request is taken over the run's
steady seconds only (from its 2nd second to its last whole one: no start-up, no drain): the
Locust process's CPU over that span divided by the requests the results' timeline completed in
it.

    .venv/bin/python bench/bench_open.py [--seconds 12] [--steps 6] [--memory 60 240]

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

from loadkit.measure.validity import LAG_P99_BOUND_MS

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
                self.samples.append((time.time(), cpu))
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
    not_sent: int = 0
    reasons: list[str] = field(default_factory=list)

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
    url: str, extra: list[str], *, seconds: int, label: str, rate: float | None = None
) -> Run:
    """One ``python -m loadkit load`` run of ``seconds`` against ``url`` (a base URL) with
    ``extra`` options; its figures."""
    with tempfile.TemporaryDirectory(prefix="bench-open-") as tmp:
        out = Path(tmp) / "load.json"
        command = [
            sys.executable, "-m", "loadkit", "load", "--duration", str(seconds),
            "--out", str(out), "--quiet", *extra,
        ]  # fmt: skip
        if "--scenario" not in extra:
            command.insert(4, f"{url}{STATIC_PATH}")
        load_average = os.getloadavg()[0]
        before = children_cpu_s()
        # An empty working folder: Locust reads locust.conf and pyproject.toml from it.
        process = subprocess.Popen(
            command, cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
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
        not_sent=int(schedule.get("not_sent", 0)),
        reasons=[f"{r['code']}: {r['detail']}" for r in results["invalid_reasons"]],
    )


def open_run(url: str, rate: float, *, seconds: int, max_in_flight: int) -> Run:
    """An open-model run at ``rate`` iterations per second."""
    extra = ["--rate", f"{rate:g}", "--max-in-flight", str(max_in_flight)]
    return loadkit_load(url, extra, seconds=seconds, label=f"open {rate:,.0f}/s", rate=rate)


def closed_run(url: str, *, users: int, seconds: int) -> Run:
    """A closed-model run, ``users`` users flat out."""
    extra = ["--concurrency", str(users)]
    return loadkit_load(url, extra, seconds=seconds, label=f"closed {users} users")


def paced_closed_run(url: str, rate: float, *, users: int, seconds: int, folder: Path) -> Run:
    """A closed-model run of url.py's user paced to ``rate`` requests per second in all."""
    locustfile = folder / f"paced_{rate:g}.py"
    locustfile.write_text(
        PACED_LOCUSTFILE.format(scenarios=str(ROOT / "scenarios"), per_user=rate / users)
    )
    extra = [
        "--scenario", str(locustfile), "--host", url, "--concurrency", str(users),
        "--", "--url-path", STATIC_PATH,
    ]  # fmt: skip
    return loadkit_load(url, extra, seconds=seconds, label=f"closed paced {rate:,.0f}/s")


def step(rate: float) -> float:
    """Rates are tried in steps of 50/s (finer is below the noise of a shared machine)."""
    return max(50.0, round(rate / 50.0) * 50.0)


def describe(run: Run) -> str:
    """One line about a run, for the log."""
    lag = f", lag P50/P99/max {lag_text(run)} ms" if run.lag_p99_ms is not None else ""
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
    if run.max_cpu_percent is not None and run.max_cpu_percent > CPU_LIMIT_PERCENT:
        why.append("CPU over 90 %")
    why += [code for code in run.codes if code != "generator_overloaded"]
    if why:
        return "invalid: " + ", ".join(why)
    return f"valid, yet {run.steady_rps / run.rate:.0%} of the rate completed"


def capacity_search(args: argparse.Namespace, url: str) -> tuple[list[tuple[Run, Run]], float]:
    """Bisection on the open rate, each try after a closed run: (closed, open) pairs, and the
    highest rate held (0 when none was)."""
    pairs: list[tuple[Run, Run]] = []
    closed = closed_run(url, users=args.users, seconds=args.seconds)
    print(describe(closed))
    held, failed = 0.0, None
    rate = step(0.9 * closed.steady_rps)  # the target first: does it hold or not?
    for _ in range(args.steps):
        tried = open_run(url, rate, seconds=args.seconds, max_in_flight=args.max_in_flight)
        print(describe(tried))
        pairs.append((closed, tried))
        if tried.holds(rate):
            held = max(held, rate)
        else:
            failed = rate if failed is None else min(failed, rate)
        top = failed if failed is not None else 1.25 * closed.steady_rps
        following = step((held + top) / 2)
        if following in (step(held), step(top)):
            break  # the steps are as fine as the search goes
        rate = following
        closed = closed_run(url, users=args.users, seconds=args.seconds)
        print(describe(closed))
    return pairs, held


def main() -> None:
    """Run the three measurements, print them, write the docs section."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=12, help="length of each search/CPU run")
    parser.add_argument("--steps", type=int, default=6, help="open rates tried in the search")
    parser.add_argument(
        "--confirm", type=int, default=2, help="closed/open pairs again at the rate found"
    )
    parser.add_argument("--users", type=int, default=20, help="closed users flat out")
    parser.add_argument(
        "--max-in-flight",
        type=int,
        default=None,
        help="open runs' bound on iterations at once (default: --users, the closed runs' bound)",
    )
    parser.add_argument("--cpu-rate", type=float, default=2000.0, help="rate of measurement 2")
    parser.add_argument("--cpu-rounds", type=int, default=2, help="paced closed/open pairs")
    parser.add_argument("--memory-rate", type=float, default=1000.0, help="rate of measurement 3")
    parser.add_argument("--memory", type=int, nargs="*", default=[60, 240], help="run lengths")
    parser.add_argument("--no-write", action="store_true", help="do not update the docs")
    args = parser.parse_args()
    if args.max_in_flight is None:
        args.max_in_flight = args.users

    with nginx() as url, tempfile.TemporaryDirectory(prefix="bench-open-") as tmp:
        # 1. capacity: bisection, then the rate found tried again (the machine is shared).
        search, held = capacity_search(args, url)
        confirm: list[tuple[Run, Run]] = []
        for _ in range(args.confirm if held else 0):
            closed = closed_run(url, users=args.users, seconds=args.seconds)
            print(describe(closed))
            again = open_run(url, held, seconds=args.seconds, max_in_flight=args.max_in_flight)
            print(describe(again))
            confirm.append((closed, again))

        # 2. CPU per request at one achieved rate, the two models alternated.
        cpu_pairs: list[tuple[Run, Run]] = []
        for _ in range(args.cpu_rounds):
            paced = paced_closed_run(
                url, args.cpu_rate, users=10, seconds=args.seconds, folder=Path(tmp)
            )
            print(describe(paced))
            opened = open_run(
                url, args.cpu_rate, seconds=args.seconds, max_in_flight=args.max_in_flight
            )
            print(describe(opened))
            cpu_pairs.append((paced, opened))

        # 3. memory over run length.
        memory = []
        for seconds in args.memory:
            run = open_run(url, args.memory_rate, seconds=seconds, max_in_flight=args.max_in_flight)
            print(describe(run) + f", peak RSS {run.peak_rss / 2**20:.0f} MiB")
            memory.append((seconds, run))

    text = page_text(args, search, confirm, held, cpu_pairs, memory)
    print(text)
    if not args.no_write:
        write_section(text)


def page_text(
    args: argparse.Namespace,
    search: list[tuple[Run, Run]],
    confirm: list[tuple[Run, Run]],
    held: float,
    cpu_pairs: list[tuple[Run, Run]],
    memory: list[tuple[int, Run]],
) -> str:
    """The docs section: how it was measured, every run of the search, the three figures."""
    command = " ".join(["bench/bench_open.py", *sys.argv[1:]])
    pairs = [*(("search", pair) for pair in search), *(("again", pair) for pair in confirm)]
    closed_rps = statistics.median(closed.steady_rps for _, (closed, _) in pairs)
    held_runs = [run for _, (_, run) in pairs if run.rate == held]
    times_held = sum(run.holds(held) for run in held_runs)
    run_rows = [
        f"| {n} {kind} | {closed.steady_rps:,.0f} | {cpu_text(closed)} | {opened.rate or 0:,.0f} "
        f"| {opened.steady_rps:,.0f} | {lag_text(opened)} | {opened.max_cpu_percent or 0:.0f} % "
        f"| {cpu_text(opened)} | {opened.load_average:.1f} | {verdict(opened)} |"
        for n, (kind, (closed, opened)) in enumerate(pairs, 1)
    ]
    paced_cpu = [p.steady_cpu_us for p, _ in cpu_pairs if p.steady_cpu_us is not None]
    open_cpu = [o.steady_cpu_us for _, o in cpu_pairs if o.steady_cpu_us is not None]
    cpu_ratio = (
        f"{statistics.median(open_cpu) / statistics.median(paced_cpu):.2f}"
        if paced_cpu and open_cpu
        else "?"
    )
    rows = [
        ("closed model, req/s flat out (median of the closed runs above)", f"{closed_rps:,.0f}"),
        (
            "open model, highest rate held (held in how many runs at that rate)",
            f"{held:,.0f}/s ({times_held} of {len(held_runs)})",
        ),
        ("ratio open / closed (target >= 0.9)", f"{held / closed_rps:.2f}"),
        *(
            (
                f"CPU per request at {args.cpu_rate:,.0f}/s, round {n}: closed paced / open",
                f"{cpu_text(p)} / {cpu_text(o)} µs ({p.steady_rps:,.0f} / {o.steady_rps:,.0f} "
                f"req/s; open lag P50/P99/max {lag_text(o)} ms, {verdict(o)})",
            )
            for n, (p, o) in enumerate(cpu_pairs, 1)
        ),
        ("CPU per request, open / closed paced (medians)", cpu_ratio),
        *(
            (
                f"peak RSS of Locust, open {args.memory_rate:,.0f}/s for {seconds} s "
                f"({run.requests:,} requests)",
                f"{run.peak_rss / 2**20:.0f} MiB (lag P50/P99/max {lag_text(run)} ms, "
                f"{verdict(run)})",
            )
            for seconds, run in memory
        ),
    ]
    return "\n".join(
        [
            SECTION,
            "",
            f"Measured {datetime.now(UTC):%Y-%m-%d} on {os.cpu_count()} cores (shared with other "
            f"work), Python {platform.python_version()}, with `.venv/bin/python {command}`. "
            f"Target: nginx {nginx_version()} on loopback serving a 17-byte file; scenario "
            f"`url.py`, one Locust process; open runs `--max-in-flight {args.max_in_flight}`, "
            f"closed runs {args.users} users flat out (the same bound on requests at once), "
            f"{args.seconds} s per run but the memory runs. Each open rate tried follows a "
            "closed run (A B A B ...); a rate is held when "
            "the run is valid (scheduler lag P99 under the results' bound of "
            f"{LAG_P99_BOUND_MS:g} ms, CPU under 90 %) and its steady seconds complete "
            f"{HELD_FRACTION:.0%} of it; the next rate halves the gap between the highest "
            "held and the lowest not held, and the rate found is tried again (`again`). Req/s "
            "and CPU per request are over each run's steady seconds (from second "
            f"{STEADY_FROM_S} to the last whole one): Locust's CPU time (psutil) over the "
            "requests the results' timeline completed then. The closed runs of the CPU "
            "comparison are url.py's user paced with Locust's `constant_throughput` (10 users) "
            "to the open runs' rate. Load average: the machine's, as each open run began.",
            "",
            "| run | closed req/s | closed CPU µs/req | open rate | open req/s "
            "| lag P50 / P99 / max ms | open peak CPU | open CPU µs/req | load avg | open run |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
            *run_rows,
            "",
            "| measurement | value |",
            "|---|---:|",
            *(f"| {name} | {value} |" for name, value in rows),
            "",
        ]
    )


if __name__ == "__main__":
    main()

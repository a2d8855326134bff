"""Benchmarks of `loadkit load`: plugin overhead, memory over run length, distribution.

Needs nginx from Debian's packages (``sudo apt-get install -y nginx-light``). The script starts
its own nginx on a free loopback port (config and files in a temp folder), serving one small
static file, and stops it at the end. Against it, in turn:

1. overhead: plain ``locust --headless -f scenarios/url.py`` against ``loadkit load`` (same
   scenario, users, duration), alternated for ``--rounds`` rounds; requests per second from
   Locust's own JSON stats for both, ratio loadkit/plain (target >= 0.95);
2. memory: peak RSS of the Locust process of a ``loadkit load`` run of each ``--memory`` length
   (the recorder should keep it flat as runs grow);
3. distribution: ``--processes 2`` against ``--processes 1``.

    .venv/bin/python bench/bench_load.py [--seconds 15] [--users 10] [--memory 10 60]

Prints a table and replaces its section of docs/benchmarks.md (``--no-write`` to skip).
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import psutil

from loadkit.config import LoadProfile
from loadkit.exceptions import InvalidLoadRunError
from loadkit.measure.results import LoadResults
from loadkit.run.bundled_service import free_port
from loadkit.run.load import run_load

from benchmarks_page import write_section

ROOT = Path(__file__).resolve().parent.parent
SECTION = "## loadkit load: plugin overhead, memory, distribution (bench/bench_load.py)"
URL_SCENARIO = ROOT / "scenarios" / "url.py"
STATIC_PATH = "/hello.txt"
OVERLOADED: list[str] = []
"""loadkit runs marked invalid for an overloaded generator (expected at full speed)."""

NGINX_CONF = """\
user root;
worker_processes 1;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    server {{
        listen 127.0.0.1:{port};
        root {prefix}/www;
        location / {{ }}
    }}
}}
"""


@contextmanager
def nginx() -> Iterator[str]:
    """nginx serving hello.txt on a free loopback port; yields its base URL."""
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(binary).exists():
        raise SystemExit("nginx is not installed: sudo apt-get install -y nginx-light")
    with tempfile.TemporaryDirectory(prefix="bench-nginx-") as tmp:
        prefix = Path(tmp)
        (prefix / "www").mkdir()
        (prefix / "www" / STATIC_PATH.lstrip("/")).write_text("hello from nginx\n")
        port = free_port()
        conf = prefix / "nginx.conf"
        conf.write_text(NGINX_CONF.format(prefix=prefix, port=port))
        process = subprocess.Popen([binary, "-c", str(conf), "-p", str(prefix)])
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                    break
                except OSError:
                    if time.monotonic() > deadline or process.poll() is not None:
                        raise SystemExit("nginx did not start; see its error.log") from None
                    time.sleep(0.05)
            yield f"http://127.0.0.1:{port}"
        finally:
            process.terminate()
            process.wait(timeout=10)


def rps_from_locust_json(path: Path) -> tuple[int, float]:
    """(requests, requests per second) from Locust's own JSON stats, for either kind of run."""
    stats = json.loads(path.read_text())
    requests = sum(int(s["num_requests"]) for s in stats)
    start = min(float(s["start_time"]) for s in stats)
    end = max(float(s["last_request_timestamp"]) for s in stats)
    return requests, requests / (end - start)


def children_cpu_s() -> float:
    """CPU seconds (user + system) of every child process waited for so far.

    Exact for a Locust run (its workers are waited for by Locust), and immune to other work on
    a shared machine, unlike requests per second: the cost per request is the robust figure.
    """
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def plain_locust(url: str, *, users: int, seconds: int, folder: Path) -> tuple[int, float, float]:
    """One plain Locust run, no loadkit anywhere: (requests, req/s, CPU µs per request)."""
    prefix = folder / f"plain-{time.monotonic_ns()}"
    command = [
        sys.executable, "-m", "locust", "-f", str(URL_SCENARIO), "--headless",
        "--users", str(users), "--spawn-rate", str(users), "--run-time", f"{seconds}s",
        "--host", url, "--url-path", STATIC_PATH, "--only-summary", "--json-file", str(prefix),
    ]  # fmt: skip
    before = children_cpu_s()
    subprocess.run(command, check=True, capture_output=True, timeout=seconds + 60)
    cpu = children_cpu_s() - before
    requests, rps = rps_from_locust_json(prefix.with_suffix(".json"))
    return requests, rps, cpu / requests * 1e6


class PeakRss:
    """Samples the summed RSS of this process's children (Locust and its workers)."""

    def __init__(self, interval_s: float = 0.2) -> None:
        """Start sampling every ``interval_s``."""
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(interval_s,), daemon=True)
        self._thread.start()

    def _run(self, interval_s: float) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            total = 0
            for child in me.children(recursive=True):
                try:
                    total += child.memory_info().rss
                except psutil.Error:
                    continue
            self.peak = max(self.peak, total)
            time.sleep(interval_s)

    def stop(self) -> int:
        """Stop sampling; the peak in bytes."""
        self._stop.set()
        self._thread.join()
        return self.peak


def loadkit_run(
    url: str, *, users: int, seconds: float, folder: Path, processes: int = 1
) -> tuple[int, float, int, float]:
    """One ``loadkit load`` run: (requests, req/s from Locust's JSON, peak RSS of Locust,
    Locust's CPU µs per request)."""
    prefix = folder / f"loadkit-{time.monotonic_ns()}"
    before = children_cpu_s()
    sampler = PeakRss()
    try:
        results: LoadResults = run_load(
            target=f"{url}{STATIC_PATH}",
            profile=LoadProfile(scenario="url", concurrency=users, duration_s=seconds),
            out=folder / "load.json",
            processes=processes,
            quiet=True,
            locust_args=["--json-file", str(prefix)],
        )
    except InvalidLoadRunError as invalid:
        # Flat out against nginx, one generator process saturates its core: loadkit says so
        # (Locust's cpu_warning). The throughput is still what this benchmark compares.
        results = invalid.results
        OVERLOADED.append(f"{processes} process(es), {seconds} s")
    finally:
        peak = sampler.stop()
    cpu = children_cpu_s() - before
    requests, rps = rps_from_locust_json(prefix.with_suffix(".json"))
    assert requests == results.totals.requests, (requests, results.totals.requests)
    return requests, rps, peak, cpu / requests * 1e6


HOT_PATH_SNIPPET = """
import time
from loadkit.engines.locust.loadkit_plugin import LoadkitPlugin
from loadkit.engines.locust.plugin.recording import Recording
from loadkit.measure.recorder import LatencyRecorder, RunClock
plugin = LoadkitPlugin.__new__(LoadkitPlugin)
plugin.clock = RunClock()
plugin.recording = Recording(LatencyRecorder(start=plugin.clock.now()), plugin.clock)
plugin._endpoints = {}
n = 200_000
t = time.perf_counter()
for _ in range(n):
    plugin.on_request(request_type="GET", name="/hello.txt", response_time=1.234,
                      response_length=17, response=None, exception=None)
plugin.recording.flush()  # the last partial batch
per_request = (time.perf_counter() - t) / n
recorder = LatencyRecorder(start=plugin.clock.now())
t = time.perf_counter()
for _ in range(n):
    recorder.record(endpoint="GET /hello.txt", latency_s=0.001234, end=plugin.clock.now())
print(per_request * 1e6, (time.perf_counter() - t) / n * 1e6)
"""


def hot_path_us() -> tuple[float, float]:
    """(µs per request in the plugin's request listener, µs of that in LatencyRecorder.record).

    In a child process: the plugin imports Locust, which would monkey-patch this one.
    """
    done = subprocess.run(
        [sys.executable, "-c", HOT_PATH_SNIPPET], capture_output=True, text=True, check=True
    )
    listener, record = done.stdout.split()
    return float(listener), float(record)


def main() -> None:
    """Run the three measurements, print them, write the docs section."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=15, help="length of each throughput run")
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2, help="plain/loadkit pairs, alternated")
    parser.add_argument("--memory", type=int, nargs="*", default=[10, 60], help="run lengths")
    parser.add_argument("--no-write", action="store_true", help="do not update the docs")
    args = parser.parse_args()

    listener_us, record_us = hot_path_us()
    rows: list[tuple[str, str]] = [
        (
            "plugin request listener, per request (of which LatencyRecorder.record)",
            f"{listener_us:.2f} µs ({record_us:.2f} µs)",
        ),
    ]
    with nginx() as url, tempfile.TemporaryDirectory(prefix="bench-load-") as tmp:
        folder = Path(tmp)
        plain: list[float] = []
        kit: list[float] = []
        plain_cpu: list[float] = []
        kit_cpu: list[float] = []
        for _ in range(args.rounds):
            _, rps, cpu = plain_locust(url, users=args.users, seconds=args.seconds, folder=folder)
            plain.append(rps)
            plain_cpu.append(cpu)
            _, rps, _, cpu = loadkit_run(url, users=args.users, seconds=args.seconds, folder=folder)
            kit.append(rps)
            kit_cpu.append(cpu)
        # Medians: other work on a shared machine knocks single rounds far off.
        mean_plain = statistics.median(plain)
        mean_kit = statistics.median(kit)
        cpu_plain = statistics.median(plain_cpu)
        cpu_kit = statistics.median(kit_cpu)
        rows += [
            ("plain locust req/s (each round)", ", ".join(f"{v:,.0f}" for v in plain)),
            ("loadkit load req/s (each round)", ", ".join(f"{v:,.0f}" for v in kit)),
            ("ratio loadkit / plain (medians; target >= 0.95)", f"{mean_kit / mean_plain:.3f}"),
            (
                "Locust CPU per request incl. start-up, plain / loadkit (medians)",
                f"{cpu_plain:.1f} / {cpu_kit:.1f} µs",
            ),
            (
                "CPU-cost ratio plain / loadkit (req/s ratio when CPU-bound)",
                f"{cpu_plain / cpu_kit:.3f}",
            ),
        ]
        for seconds in args.memory:
            requests, _, peak, _ = loadkit_run(
                url, users=args.users, seconds=seconds, folder=folder
            )
            rows.append(
                (
                    f"peak RSS of Locust, {seconds} s run ({requests:,} requests)",
                    f"{peak / 2**20:.0f} MiB",
                )
            )
        one = loadkit_run(url, users=args.users, seconds=args.seconds, folder=folder)
        two = loadkit_run(url, users=args.users, seconds=args.seconds, folder=folder, processes=2)
        rows += [
            ("--processes 1 req/s", f"{one[1]:,.0f}"),
            ("--processes 2 req/s", f"{two[1]:,.0f} ({two[1] / one[1]:.2f}×)"),
            ("peak RSS, --processes 1 / 2", f"{one[2] / 2**20:.0f} / {two[2] / 2**20:.0f} MiB"),
        ]

    command = " ".join(["bench/bench_load.py", *sys.argv[1:]])
    text = "\n".join(
        [
            SECTION,
            "",
            f"Measured {datetime.now(UTC):%Y-%m-%d} on {psutil.cpu_count()} cores (shared with "
            f"other work), Python {platform.python_version()}, with `.venv/bin/python {command}`. "
            f"Target: nginx {nginx_version()} on loopback serving a 17-byte file; scenario "
            f"`url.py`, {args.users} users, {args.seconds} s per throughput run. Req/s for both "
            "kinds of run come from Locust's own JSON stats (requests over first-to-last "
            "request), so they are measured the same way. The listener figure is what the "
            "plugin adds to each request (measured alone, in a loop); the CPU figures also "
            "include start-up (loadkit's Locust imports pydantic and the results model, about "
            "0.15 s of CPU) and whatever else the machine was doing.",
            "",
            "Runs loadkit marked invalid for an overloaded generator (one core saturated, as "
            "expected flat out against nginx): " + (", ".join(OVERLOADED) or "none") + ".",
            "",
            "| measurement | value |",
            "|---|---:|",
            *(f"| {name} | {value} |" for name, value in rows),
            "",
        ]
    )
    print(text)
    if not args.no_write:
        write_section(text)


def nginx_version() -> str:
    """nginx's version, as it reports it."""
    done = subprocess.run(["nginx", "-v"], capture_output=True, text=True, check=False)
    match = re.search(r"nginx/([\d.]+)", done.stderr)
    return match.group(1) if match else "?"


if __name__ == "__main__":
    main()

"""A distributed run across hosts, as a team runs one: the target, the master and two workers
each in a network namespace of its own (tests/e2e/netns.py), talking over their own addresses,
never loopback; `loadkit load --master --master-bind-host ADDR` and `loadkit load --worker
--master-host ADDR` (tests/e2e/distributed_commands.py, the deployment files' commands too), on
both engines, closed and open model.

Skipped, with the reason in the summary, where namespaces cannot be made (not root, no `ip`).
"""

from __future__ import annotations

import json
import queue
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from loadkit.cli import EXIT_INVALID_RUN
from loadkit.measure.results import LoadResults, read_results
from tests.e2e.distributed_commands import master_command, worker_command
from tests.e2e.netns import Network, network

WORKERS = ("worker1", "worker2")
TARGET_PORT = 8080
HOLD_MS = 10
RUN_BOUND_S = 60.0
LATE_S = 1.0
"""Long past the prompt worker's connection (milliseconds): the master is seen waiting."""
NATIVE_SUMMARY = r"(worker-\d) of 2: (\d+) requests, (\d+) errors"


def python(command: Sequence[str]) -> list[str]:
    """A loadkit command as this test's interpreter runs it (the worktree's code)."""
    assert command[0] == "loadkit"
    return [sys.executable, "-m", "loadkit", *command[1:]]


class Target:
    """The target server on its host, and what it says (tests/e2e/netns_target.py)."""

    def __init__(self, net: Network) -> None:
        host = net["target"]
        self.url = f"http://{host.address}:{TARGET_PORT}/"
        serve = (host.address, str(TARGET_PORT), str(HOLD_MS))
        self.process = net.start("target", [sys.executable, "-m", "tests.e2e.netns_target", *serve])
        self.lines: queue.Queue[dict[str, object]] = queue.Queue()
        self.seen: set[object] = set()
        threading.Thread(target=self._read, daemon=True).start()
        assert "listening" in self.next_line(10.0)

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(json.loads(line))

    def next_line(self, timeout: float) -> dict[str, object]:
        return self.lines.get(timeout=timeout)

    def wait_first(self, address: str) -> None:
        """Until the generator at ``address`` has had its first answer: it is running."""
        deadline = time.monotonic() + RUN_BOUND_S
        while address not in self.seen:
            self.seen.add(self.next_line(deadline - time.monotonic()).get("first"))

    def served(self) -> dict[str, int]:
        """Stop the target; the requests it answered, by the generator's address."""
        self.process.terminate()
        while True:
            line = self.next_line(10.0)
            if "served" in line:
                served = line["served"]
                assert isinstance(served, dict)
                return {str(k): int(v) for k, v in served.items()}


@dataclass
class Run:
    """What a distributed run left: the master's code and output, the results, the workers'."""

    code: int
    output: str
    results: LoadResults
    served: dict[str, int]
    workers: dict[str, subprocess.Popen[str]]
    worker_output: dict[str, str] = field(default_factory=dict)


@contextmanager
def hosts(workers: Sequence[str] = WORKERS) -> Iterator[Network]:
    with network(("target", "master", *workers)) as net:
        yield net


def run(
    net: Network,
    tmp_path: Path,
    *,
    engine: str,
    load: Sequence[str],
    during: Callable[[Network, Target, dict[str, subprocess.Popen[str]]], None] | None = None,
    worker_prefix: dict[str, list[str]] | None = None,
    late: str | None = None,
    workers: Sequence[str] = WORKERS,
) -> Run:
    """One distributed run: the target, the master, both workers (each started under its
    ``worker_prefix``, if any; ``late`` one LATE_S after the others); ``during`` acts mid-run."""
    target = Target(net)
    out = tmp_path / "load.json"
    master = net.start(
        "master",
        python(
            master_command(
                target=target.url,
                engine=engine,
                bind_host=net["master"].address,
                workers=len(workers),
                load=[*load, "-q"],
                out=str(out),
            )
        ),
    )

    def start(name: str) -> subprocess.Popen[str]:
        command = worker_command(engine=engine, master_host=net["master"].address)
        return net.start(name, [*(worker_prefix or {}).get(name, []), *python(command)])

    started = {name: start(name) for name in workers if name != late}
    if late is not None:
        time.sleep(LATE_S)
        # The master waits for --expect-workers: still there, and nothing sent yet.
        assert master.poll() is None and target.lines.empty()
        started[late] = start(late)
    if during is not None:
        during(net, target, started)
    stdout, stderr = master.communicate(timeout=RUN_BOUND_S)
    served = target.served()
    results = read_results(out)
    assert isinstance(results, LoadResults), stderr
    return Run(master.returncode, stdout + stderr, results, served, started)


def finished_workers(done: Run) -> dict[str, int]:
    """Each native worker's request count from its own summary line (all must end well)."""
    counts = {}
    for name, worker in done.workers.items():
        stdout, stderr = worker.communicate(timeout=RUN_BOUND_S)
        assert worker.returncode == 0, (name, stderr[-2000:])
        found = re.search(NATIVE_SUMMARY, stdout)
        assert found, stdout
        counts[name] = int(found.group(2))
    return counts


def results_requests(done: Run) -> int:
    return done.results.totals.requests


def assert_merged_exactly(results: LoadResults) -> None:
    """One count everywhere the merge put the shares: totals, histogram, endpoints, seconds."""
    requests = results.totals.requests
    assert requests > 0
    assert results.latency_ms.count == requests
    assert sum(e.requests for e in results.endpoints) == requests
    assert sum(point.completions for point in results.timeline) == requests


def test_locust_closed_run_across_hosts_merges_every_share(tmp_path: Path) -> None:
    with hosts() as net:
        done = run(net, tmp_path, engine="locust", load=["--concurrency", "4", "--duration", "2"])
    assert done.code == 0, done.output
    results = done.results
    assert results.valid, results.invalid_reasons
    assert results.config["distributed"] is True and results.config["engine"] == "locust"
    assert_merged_exactly(results)
    # Each worker reached the target over its own address; the master sent nothing itself.
    assert set(done.served) == {net["worker1"].address, net["worker2"].address}
    # What the target answered is what was merged, but for requests in flight at the stop
    # (a Locust user stopped mid-request: served, never recorded): at most one per user.
    assert 0 <= sum(done.served.values()) - results.totals.requests <= 4


def test_native_open_run_across_hosts_waits_for_a_late_worker_and_merges_exactly(
    tmp_path: Path,
) -> None:
    with hosts() as net:
        done = run(
            net,
            tmp_path,
            engine="native",
            load=["--rate", "100", "--duration", "2"],
            late="worker2",
        )
        counts = finished_workers(done)
    assert done.code == 0, done.output
    results = done.results
    assert results.valid, results.invalid_reasons
    assert results.config["distributed"] is True and results.config["engine"] == "native"
    assert_merged_exactly(results)
    schedule = results.schedule
    assert schedule is not None and abs(schedule.iterations_due - 200) <= 2
    # Exact: every due iteration was sent and answered, each worker's share is in the merge
    # once, and the target answered each worker exactly what that worker recorded.
    assert results.totals.requests == schedule.iterations_dispatched == sum(counts.values())
    assert done.served == {net[name].address: counts[name] for name in WORKERS}


def lose(killed: Sequence[str], cut: Sequence[str]) -> Callable[..., None]:
    """Once each is sending: the hosts ``killed`` die (every process killed, no goodbye sent),
    the links of ``cut`` drop (their processes live on, unheard)."""

    def during(net: Network, target: Target, workers: dict[str, subprocess.Popen[str]]) -> None:
        for name in [*killed, *cut]:
            target.wait_first(net[name].address)
        time.sleep(0.5)
        for name in killed:
            net.kill_host(name)
        for name in cut:
            net.cut(name)

    return during


@pytest.mark.parametrize(
    ("engine", "workers", "killed", "cut"),
    [
        ("locust", ("worker1", "worker2", "worker3"), ["worker2"], ["worker3"]),
        ("native", WORKERS, [], ["worker2"]),
    ],
    ids=["locust-killed-and-cut", "native-cut"],
)
def test_workers_lost_mid_run_make_the_run_invalid_naming_them(
    engine: str, workers: tuple[str, ...], killed: list[str], cut: list[str], tmp_path: Path
) -> None:
    load = ["--concurrency", "4", "--duration", "3"]
    with hosts(workers) as net:
        done = run(
            net, tmp_path, engine=engine, load=load, during=lose(killed, cut), workers=workers
        )
    assert done.code == EXIT_INVALID_RUN, done.output
    reasons = done.results.invalid_reasons
    assert [reason.code for reason in reasons] == ["worker_share_missing"], reasons
    # Each named by Locust's id for it, which begins with its host's name; worker1 is not.
    assert re.findall(r"(worker\d)_[0-9a-f]{32}", reasons[0].detail) == [*killed, *cut]
    assert done.results.totals.requests > 0  # worker1's share is in


SKEW_S = 20


def skewed(seconds: int) -> list[str]:
    """A command prefix: the wall clock of what runs under it (children too) is ``seconds``
    off, as on a host whose clock was set wrong. (Its monotonic clock moves by as much, which
    nothing compares across hosts; libfaketime's --exclude-monotonic makes sleeps fail here.)"""
    if shutil.which("faketime") is None:
        pytest.skip("`faketime` (Debian package faketime, libfaketime) is not installed")
    return ["faketime", "-m", "-f", f"{seconds:+d}s"]


@pytest.mark.parametrize(
    ("engine", "load"),
    [
        ("locust", ["--rate", "100", "--duration", "2", "--max-in-flight", "20"]),
        ("native", ["--concurrency", "4", "--duration", "2"]),
    ],
    ids=["locust-open", "native-closed"],
)
def test_workers_with_skewed_clocks_keep_the_timeline_and_the_stalls_true(
    engine: str, load: list[str], tmp_path: Path
) -> None:
    # One worker's wall clock runs behind the master's, the other's ahead.
    prefix = {"worker1": skewed(-SKEW_S), "worker2": skewed(SKEW_S)}
    with hosts() as net:
        done = run(net, tmp_path, engine=engine, load=load, worker_prefix=prefix)
        if engine == "native":
            # Each worker's own count is in the merge; the target answered it that many, and
            # perhaps the requests on its two connections when the run ended.
            counts = finished_workers(done)
            assert results_requests(done) == sum(counts.values())
            for name in WORKERS:
                assert 0 <= done.served[net[name].address] - counts[name] <= 2
    results = done.results
    # What is judged here is the alignment: a busy machine may still mark an open run's
    # generator overloaded (its event loop late), never anything else.
    reasons = [reason.code for reason in results.invalid_reasons]
    assert set(reasons) <= {"generator_overloaded"}, results.invalid_reasons
    assert done.code == (EXIT_INVALID_RUN if reasons else 0), done.output
    assert_merged_exactly(results)
    assert set(done.served) == {net["worker1"].address, net["worker2"].address}
    # Aligned on the master's clock: every completion within the run's two seconds (and the
    # second a request in flight at the end closes in), none in a hole; no stall from a
    # worker's seconds landing 20 s away from the others'.
    seconds = [point.t_s for point in results.timeline if point.completions]
    assert seconds == list(range(len(seconds))) and len(seconds) <= 3, seconds
    assert results.longest_stall is None or results.longest_stall.duration_s < 1.0
    assert results.duration_s < 4.0


@pytest.mark.parametrize("engine", ["locust", "native"])
def test_a_master_whose_workers_do_not_all_come_gives_up_with_exit_4(
    engine: str, tmp_path: Path
) -> None:
    out = tmp_path / "load.json"
    out.write_text("an earlier run's results")
    with hosts() as net:
        target = Target(net)
        master = net.start(
            "master",
            python(
                master_command(
                    target=target.url,
                    engine=engine,
                    bind_host=net["master"].address,
                    workers=2,
                    load=[
                        "--concurrency",
                        "2",
                        "--duration",
                        "2",
                        "--expect-workers-max-wait",
                        "1",
                    ],
                    out=str(out),
                )
            ),
        )
        # Only one of the two comes.
        net.start(
            "worker1", python(worker_command(engine=engine, master_host=net["master"].address))
        )
        _, stderr = master.communicate(timeout=RUN_BOUND_S)
        served = target.served()
    assert master.returncode == EXIT_INVALID_RUN, stderr
    address = f"{net['master'].address}:5557"
    assert "--expect-workers 2: " in stderr and f"workers connected to {address} within" in stderr
    assert "--expect-workers-max-wait 1 s" in stderr
    assert served == {}  # nothing was sent
    # The earlier file is replaced by one no gate passes.
    results = read_results(out)
    assert isinstance(results, LoadResults)
    assert [reason.code for reason in results.invalid_reasons] == ["aborted"]
    assert "could not start" in results.invalid_reasons[0].detail

"""Drives the plugin's role classes with stand-ins for Locust's runner, in a process of its own.

Run by path from test_plugin_roles.py, never imported by the test process: the role classes
import gevent and Locust (which would monkey-patch it). Prints one JSON object of findings.
"""

from __future__ import annotations

import sys
import time
from argparse import Namespace
from pathlib import Path
from typing import Any

import orjson

from loadkit.engines.locust.plugin.options import PluginOptions
from loadkit.engines.locust.plugin.roles import LocalTest, MasterTest, WorkerTest
from loadkit.measure.recorder import RunClock
from loadkit.measure.results import LoadResults, read_results


class FakeGroup:
    """A runner's own greenlets."""

    def kill(self, *, block: bool = True) -> None:
        pass


class FakeRunner:
    """What the role classes use of a runner (see plugin/locust_api.py)."""

    def __init__(self) -> None:
        self.greenlet = FakeGroup()
        self.state = "stopped"
        self.user_count = 0
        self.target_user_count: int | None = 2
        self.user_greenlets: list[Any] = []
        self.client_id = "worker-a"
        self.clients: dict[str, Any] = {}
        self.worker_cpu_warning_emitted = False
        self.sent: list[tuple[str, Any]] = []

    def stop(self) -> None:
        self.state = "stopped"

    def quit(self) -> None:
        pass

    def send_message(self, msg_type: str, data: Any = None, client_id: str | None = None) -> None:
        self.sent.append((msg_type, data))

    def register_message(self, msg_type: str, listener: Any) -> None:
        pass


def environment() -> Any:
    return Namespace(
        host="http://target",
        locustfile="scenario.py",
        user_classes=[],
        reset_stats=False,
        process_exit_code=None,
        parsed_options=None,
        shape_class=None,
    )


def options(out: Path) -> PluginOptions:
    return PluginOptions(
        headless=True,
        out=out,
        ui_dir=out.parent,
        status_path=None,
        duration_s=None,
        run_id=None,
        parent_pid=None,
        scenario="probe",
        url_path=None,
        num_users=2,
        spawn_rate=None,
        locust_version="test",
    )


def main(folder: Path) -> None:
    """Findings: a worker's reports through a master; a reset; a refused share."""
    clock = RunClock()
    findings: dict[str, Any] = {}

    worker_runner = FakeRunner()
    worker = WorkerTest(
        environment=environment(),
        runner=worker_runner,
        options=options(folder / "unused.json"),
        clock=clock,
        source="worker-a",
    )
    master_runner = FakeRunner()
    master = MasterTest(
        environment=environment(),
        runner=master_runner,
        options=options(folder / "master.json"),
        clock=clock,
    )
    before_reset = worker.recording
    worker.recording.recorder.record(endpoint="GET /x", latency_s=0.01, end=clock.now())
    worker.restart_recording()  # forgotten, as Locust forgets its stats
    findings["reset_is_a_new_recording"] = worker.recording is not before_reset
    for _ in range(3):
        worker.recording.requests += 1
        worker.recording.batch.append(("GET /x", 0.005, None, clock.now()))
    master.worker_reported("worker-a", worker.report().to_wire(), final=False)
    # An open run's worker: its last second's P95s reach the master's live line.
    live = worker.report().model_copy(update={"p95_ms": 812.0, "service_p95_ms": 3.0})
    master.worker_reported("worker-a", live.to_wire(), final=False)
    findings["master_live"] = list(master.live_counts(time.monotonic()))
    worker.recording.requests += 1
    worker.recording.errors += 1
    worker.recording.record_failure(
        endpoint="GET /x",
        latency_s=0.02,
        service_s=None,
        end=clock.now(),
        response=None,
        exception=TimeoutError("slow"),
    )
    worker.stopping()
    worker.stopped()
    (message, final) = worker_runner.sent[-1]
    findings["final_message"] = message
    # Another worker runs another loadkit: its share is refused, the run incomplete.
    stranger = {**final, "share": {**final["share"], "version": 999, "source": "worker-b"}}
    master.worker_reported("worker-b", stranger, final=True)
    master.worker_reported("worker-a", final, final=True)
    master.stopping()
    master.stopped()
    findings["written_before_quit"] = master.finalized
    master.quit()
    results = read_results(folder / "master.json")
    assert isinstance(results, LoadResults)
    findings["requests"] = results.totals.requests
    findings["errors"] = results.totals.errors
    findings["invalid_reasons"] = [str(reason) for reason in results.invalid_reasons]
    findings["processes"] = results.config["processes"]

    # A worker whose periodic report is refused, then whose final share merges: what the
    # refused report carried is lost, so the run is still not complete.
    late = MasterTest(
        environment=environment(),
        runner=FakeRunner(),
        options=options(folder / "late.json"),
        clock=clock,
    )
    garbled = {**final, "share": {**final["share"], "version": 999}}
    late.worker_reported("worker-c", garbled, final=False)
    # Each report carries the worker's running count of CPU warnings: 1, then still 1.
    late.worker_reported("worker-c", {**final, "cpu_warnings": 1}, final=False)
    late.worker_reported("worker-c", {**final, "share": None, "cpu_warnings": 1}, final=True)
    late.stopping()
    late.stopped()
    late_results = read_results(folder / "late.json")
    assert isinstance(late_results, LoadResults)
    findings["late_reasons"] = [reason.code for reason in late_results.invalid_reasons]
    findings["late_cpu_warnings"] = late_results.generator.cpu_warnings

    local = LocalTest(
        environment=environment(),
        runner=FakeRunner(),
        options=options(folder / "local.json"),
        clock=clock,
    )
    local.recording.batch.append(("GET /y", 0.003, None, clock.now()))
    local.recording.requests += 1
    local.quit()  # Locust quit before the test stopped on its own
    local_results = read_results(folder / "local.json")
    assert isinstance(local_results, LoadResults)
    findings["local_requests"] = local_results.totals.requests
    sys.stdout.write(orjson.dumps(findings).decode())


if __name__ == "__main__":
    main(Path(sys.argv[1]))

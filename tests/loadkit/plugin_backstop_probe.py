"""Drives a headless ``LocalTest`` whose stop never gets through (as a stop from a greenlet it
kills did), with stand-ins for Locust's runner, in a process of its own.

Run by path from test_plugin_backstop.py, never imported by the test process: the plugin's
modules import gevent and Locust. Prints one JSON object of findings.
"""

from __future__ import annotations

import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import gevent
import orjson

from loadkit.engines.locust.plugin import load_test
from loadkit.engines.locust.plugin.roles import LocalTest
from loadkit.measure.recorder import RunClock
from loadkit.measure.results import LoadResults, read_results
from tests.loadkit.plugin_roles_probe import FakeRunner, environment, options

GRACE_S = 0.2
DURATION_S = 0.3


class StuckRunner(FakeRunner):
    """A runner whose stop() begins (test_stopping fires) and never completes."""

    def __init__(self, state_after_stop: str) -> None:
        super().__init__()
        self.state = "running"
        self.state_after_stop = state_after_stop
        self.test: LocalTest | None = None
        self.calls: list[str] = []
        self.killed = False
        self.greenlet = self  # type: ignore[assignment]  # the group: kill() below

    def stop(self) -> None:
        self.calls.append("stop")
        if self.test is not None:
            self.test.stopping()
        self.state = self.state_after_stop

    def quit(self) -> None:
        self.calls.append("quit")
        self.stop()

    def kill(self, *, block: bool = True) -> None:
        self.killed = True


def run(folder: Path, name: str, *, state_after_stop: str, locustfile_stop: bool) -> Any:
    runner = StuckRunner(state_after_stop)
    out = folder / f"{name}.json"
    test = LocalTest(
        environment=environment(),
        runner=runner,
        options=replace(options(out), duration_s=DURATION_S),
        clock=RunClock(),
    )
    runner.test = test
    test.recording.batch.append(("GET /y", 0.003, None, test.clock.now()))
    test.recording.requests += 1
    test.start()
    if locustfile_stop:
        gevent.sleep(0.1)
        test.stop_requested("locustfile", quit=True)
        runner.stop()  # a task's quit(): its greenlet is killed part-way, Locust goes on
    # Done once Locust's greenlets are killed (under load, later than planned); a stop in its
    # hooks is left alone for twice the grace, and more.
    give_up = time.monotonic() + (DURATION_S + 3 * GRACE_S if state_after_stop == "stopped" else 30)
    while not runner.killed and time.monotonic() < give_up:
        gevent.sleep(0.05)
    finding: dict[str, Any] = {"calls": runner.calls, "killed": runner.killed}
    if out.exists():
        results = read_results(out)
        assert isinstance(results, LoadResults)
        finding["valid"] = results.valid
        finding["stopped_by"] = results.stopped.by if results.stopped else None
    return finding


def main(folder: Path) -> None:
    """Findings: the timer's stop cut short; a locustfile's; a stop in its test_stop hooks."""
    load_test.STOP_GRACE_S = GRACE_S
    findings = {
        "timer": run(folder, "timer", state_after_stop="cleanup", locustfile_stop=False),
        "locustfile": run(folder, "locustfile", state_after_stop="cleanup", locustfile_stop=True),
        "in_hooks": run(folder, "hooks", state_after_stop="stopped", locustfile_stop=False),
    }
    sys.stdout.write(orjson.dumps(findings).decode())


if __name__ == "__main__":
    main(Path(sys.argv[1]))

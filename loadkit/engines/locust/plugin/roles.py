"""What a test does in each of Locust's roles: one local process, a worker, a master.

- **local**: records every request; when the test stops, writes the results file.
- **worker**: records the same way and ships its share with each of Locust's reports; when its
  users stop, sends what is left in a final message (before Locust's own ``client_stopped``).
- **master**: merges its workers' shares exactly and writes the results once every worker's
  final share has arrived (or, at the latest, when Locust quits; a missing share then makes the
  run invalid).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import gevent

from loadkit.engines.locust.plugin.load_test import LiveCounts, LoadTest, RunnerT, round_percent
from loadkit.engines.locust.plugin.locust_api import (
    Environment,
    MasterRunner,
    Runner,
    WorkerRunner,
)
from loadkit.engines.locust.plugin.open_run import WorkerRates, workers_live_figures
from loadkit.engines.locust.plugin.options import OpenRun, PluginOptions
from loadkit.engines.locust.plugin.worker_report import FINAL_MESSAGE, WorkerReport, WorkerStop
from loadkit.exceptions import InputError
from loadkit.measure.recorder import RunClock
from loadkit.measure.results import GeneratorHealth
from loadkit.measure.validity import (
    InvalidReason,
    add_reason,
    stopped_in_test_start_reason,
    worker_share_missing_reason,
)

logger = logging.getLogger("loadkit")

WORKER_LIVE_STALE_S = 7.0
"""A worker's last-second P95 older than this (no report since) is left out of the live line."""
USER_RUNNING = "running"
"""``User._state`` while a user runs a task (as opposed to "waiting" between tasks)."""


def requests_in_flight(runner: Runner) -> int:
    """Users in the middle of a task (not between tasks): a closed-loop proxy for requests
    still waiting for an answer, which Locust does not count."""
    count = 0
    for user_greenlet in list(runner.user_greenlets):
        user = user_greenlet.args[0] if user_greenlet.args else None
        if getattr(user, "_state", None) == USER_RUNNING:
            count += 1
    return count


class _UsersHere(LoadTest[RunnerT]):
    """A test whose users run in this process (local or worker)."""

    def _note_pending(self) -> None:
        self.in_flight = requests_in_flight(self.runner)


class LocalTest(_UsersHere[Runner]):
    """A test run by this process alone (headless or web UI)."""

    def stopped(self) -> None:
        """Users are stopped: write the results."""
        recorder = self._close_measurement()
        recorder.finish(end=self.stop_time or self.clock.now(), in_flight=self.in_flight)
        self.write_results()

    def quit(self) -> None:
        """Locust quit before the test stopped on its own: write what was recorded."""
        self.stopped()


class WorkerTest(_UsersHere[WorkerRunner]):
    """A worker's part of a distributed test."""

    stops_on_timer = False

    def report(self, *, final: bool = False) -> WorkerReport:
        """What the master gets next: the share recorded since the last report, live figures
        (the final one: whether this worker's locustfile stopped the test)."""
        recording = self.recording
        recorder = recording.flush()
        last = recorder.last_second  # before the drain closes the open second
        return WorkerReport(
            share=recorder.drain_share(),
            requests=recording.requests,
            errors=recording.errors,
            p95_ms=last.p95_ms if last is not None else None,
            service_p95_ms=last.service_p95_ms if last is not None else None,
            cpu_warnings=self.cpu.warnings,
            max_cpu=self.cpu.max_percent,
            exceptions=self.exceptions.drain(),
            stop=self._stop() if final else None,
        )

    def _stop(self) -> WorkerStop | None:
        if self.stop_origin != "locustfile":
            return None
        at = self.stop_time if self.stop_time is not None else self.clock.now()
        return WorkerStop(at=at, exit_code=self.environment.process_exit_code)

    def stopped(self) -> None:
        """Users are stopped: send the rest of the share, ahead of Locust's "stopped"."""
        recorder = self._close_measurement()
        recorder.finish(end=self.stop_time or self.clock.now(), in_flight=self.in_flight)
        self.runner.send_message(FINAL_MESSAGE, self.report(final=True).to_wire())
        self._mark_finalized()

    def interrupt(self) -> None:
        """A worker quitting on its own (Ctrl-C, SIGTERM): stop now, so that its final share
        goes out ahead of the "quit" Locust's next listener sends."""
        # Sent after it (from Locust's runner.quit()), it reached a master that had stopped the
        # test at the "quit" of its last worker and already written the results without it.
        self.runner.stop()

    def quit(self) -> None:
        """Nothing to write: the master writes the results."""


class MasterTest(LoadTest[MasterRunner]):
    """A master's view of a distributed test: its workers' shares, merged."""

    runs_users = False

    def __init__(
        self,
        *,
        environment: Environment,
        runner: MasterRunner,
        options: PluginOptions,
        clock: RunClock,
        open_run: OpenRun | None = None,
    ) -> None:
        """See ``LoadTest``; no worker has reported yet."""
        super().__init__(
            environment=environment, runner=runner, options=options, clock=clock, open_run=open_run
        )
        self.expected_workers: set[str] = set()
        """Workers that took part (sent a share, or were connected as the test stopped)."""
        self.final_workers: set[str] = set()
        """Workers whose final share arrived."""
        self.worker_live: dict[str, tuple[float, float | None, float | None]] = {}
        """By worker: when it last reported (monotonic) and its last second's P95 and service
        P95."""
        self.worker_cpu_warnings: dict[str, int] = {}
        """By worker: its CPU warnings so far (each report carries the worker's running count)."""
        self.worker_rates = WorkerRates()
        """Open model: how fast each worker starts iterations, from its shares."""
        self.refused_workers: dict[str, str] = {}
        """Workers a report was refused from (another loadkit, malformed), and why: some of
        their requests are not in the merge, so the run cannot be complete."""

    def _note_pending(self) -> None:
        # Added to those that sent shares: a worker that quit mid-run (no longer a client)
        # still owes its final share, which comes after its "quit".
        self.expected_workers |= set(self.runner.clients.keys())

    def worker_reported(self, client_id: str, data: object, *, final: bool) -> None:
        """A worker's report arrived (periodic, or its final one)."""
        if self.finalized:
            return
        try:
            report = WorkerReport.from_wire(data)
        except InputError as exc:
            # Not merged: the run is marked worker_share_missing, naming the worker, even if
            # its later reports merge (this one's requests are lost either way).
            logger.error("loadkit: worker %s: %s", client_id, exc)
            self.expected_workers.add(client_id)
            self.refused_workers.setdefault(client_id, str(exc))
            if final:
                self.final_workers.add(client_id)
                self._finalize_when_complete()
            return
        if report.share is not None:
            self._merge(client_id, report)
        self.exceptions.merge(report.exceptions)
        if report.stop is not None:
            self._worker_stopped(client_id, report.stop)
        if final:
            self.final_workers.add(client_id)
            self._finalize_when_complete()

    def _merge(self, client_id: str, report: WorkerReport) -> None:
        assert report.share is not None
        self.recording.recorder.merge_share(report.share)
        self.expected_workers.add(client_id)
        self.recording.worker_totals[client_id] = (report.requests, report.errors)
        self.worker_live[client_id] = (time.monotonic(), report.p95_ms, report.service_p95_ms)
        self.worker_cpu_warnings[client_id] = report.cpu_warnings
        for source, schedule in report.share.schedules.items():
            self.worker_rates.note(
                source, dispatched=schedule.iterations_dispatched, duration_s=schedule.duration_s
            )
        if report.max_cpu is not None:
            self.cpu.note(report.max_cpu)

    def _worker_stopped(self, client_id: str, stop: WorkerStop) -> None:
        """A worker's locustfile stopped the test: the run ends there, everywhere, as in one
        process (plain Locust would quit that worker alone and give its users to the others)."""
        if stop.in_test_start is not None:
            reason = stopped_in_test_start_reason(stop.in_test_start)
            self.noted_reasons = add_reason(self.noted_reasons, reason)
        if self.stop_origin is not None or self.stop_time is not None:
            return  # ending already (another worker's stop, the timer)
        logger.info("loadkit: the locustfile stopped the test on worker %s; stopping", client_id)
        self.stop_origin = "locustfile"
        self.stop_at = max(stop.at, self.recording.recorder.start)
        if stop.exit_code is not None and self.environment.process_exit_code is None:
            # Its exit code is the run's, as in one process (a later one of the master's own
            # locustfile, set in its quitting listener, still wins).
            self.environment.process_exit_code = stop.exit_code
        # Not from this greenlet (Locust's message loop: the master's stop() waits for its
        # workers' messages). Yield once so that the stop has begun before the worker's "quit"
        # is read: Locust would hand that worker's users to the others.
        gevent.spawn(self.runner.stop)
        gevent.sleep(0)

    def stopped(self) -> None:
        """The master's users (its workers') are stopped: write once every share is in."""
        self._close_measurement()
        self._finalize_when_complete()

    def _finalize_when_complete(self) -> None:
        if self.finalized or self.stop_time is None:
            return
        if self.expected_workers <= self.final_workers:
            self._finalize()

    def quit(self) -> None:
        """Locust has quit: write the results now, with the shares that arrived."""
        self._finalize()

    def _finalize(self) -> None:
        """Write the results with what arrived; a missing final share makes them invalid."""
        recorder = self.recording.recorder
        recorder.finish(end=self.stop_time or self.clock.now())
        reason = self._missing_shares_reason()
        self.write_results([reason] if reason is not None else [])

    def _missing_shares_reason(self) -> InvalidReason | None:
        """Why a run whose workers did not all send their final share is invalid."""
        missing = sorted(self.expected_workers - self.final_workers)
        if not missing and not self.refused_workers:
            return None
        return worker_share_missing_reason(missing, refused=self.refused_workers)

    def _generator_health(self) -> GeneratorHealth:
        warnings = self.cpu.warnings + sum(self.worker_cpu_warnings.values())
        overloaded = warnings > 0 or bool(self.runner.worker_cpu_warning_emitted)
        if overloaded and warnings == 0:
            warnings = 1  # seen in a worker's heartbeat: Locust sets the flag, fires no event
        return GeneratorHealth(
            overloaded=overloaded,
            cpu_warnings=warnings,
            max_cpu_percent=round_percent(self.cpu.max_percent),
            notes=[f"distributed: {len(self.expected_workers)} worker(s), shares merged"],
        )

    def _config(self) -> dict[str, Any]:
        return {
            **super()._config(),
            "processes": len(self.expected_workers),
            "distributed": True,
        }

    def _open_live_figures(self, now: float) -> dict[str, Any]:
        if self.open_run is None:
            return {}
        return workers_live_figures(
            self.open_run,
            started=self.timetable_start,
            rates=self.worker_rates,
            clock=self.clock,
        )

    def live_counts(self, now: float) -> LiveCounts:
        """Requests and errors as the workers last reported; the highest fresh P95s."""
        totals = self.recording.worker_totals.values()
        requests = sum(r for r, _ in totals)
        errors = sum(e for _, e in totals)
        fresh = [live for live in self.worker_live.values() if now - live[0] < WORKER_LIVE_STALE_S]
        p95s = [p for _, p, _ in fresh if p is not None]
        service_p95s = [s for _, _, s in fresh if s is not None]
        cpu = [c.cpu_usage for c in self.runner.clients.values()]
        if cpu:
            self.cpu.note(max(cpu))
        return LiveCounts(
            requests,
            errors,
            max(p95s) if p95s else None,
            max(service_p95s) if service_p95s else None,
        )

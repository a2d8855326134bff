"""One test in a Locust process, from its start to its results: the state every role shares.

A test starts (headless start, the web UI's start button, a worker's first spawn) and a new
``LoadTest`` is made for it; nothing of an earlier test survives. A reset of Locust's stats makes
a new ``Recording`` within the test. The roles (``roles.py``) add what a local process, a worker
or a master does at the test's stop and in between.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Generic, NamedTuple, TypeVar

import gevent
from locust.runners import STATE_RUNNING, STATE_SPAWNING, STATE_STOPPED

from loadkit.engines.locust.plugin.closed_stages import measured_stages, stages_of
from loadkit.engines.locust.plugin.cpu import CpuWatch
from loadkit.engines.locust.plugin.locust_api import Environment, Runner
from loadkit.engines.locust.plugin.open_model import OpenModel
from loadkit.engines.locust.plugin.open_run import (
    allow_drain,
    finish_open_model,
    open_live_figures,
    open_run_config,
    start_open_model,
)
from loadkit.engines.locust.plugin.options import OpenRun, PluginOptions
from loadkit.engines.locust.plugin.recording import RateWindow, Recording
from loadkit.engines.locust.plugin.stops import StopOrigin
from loadkit.measure.error_reader import ErrorReader
from loadkit.measure.live_status import LiveStatus, RunState, write_status
from loadkit.measure.load_results import build_load_results
from loadkit.measure.recorder import LatencyRecorder, RunClock
from loadkit.measure.results import GeneratorHealth, LoadResults, Stopped, write_results
from loadkit.measure.user_exceptions import ExceptionTally
from loadkit.measure.validity import InvalidReason, incomplete_reason, shape_unfinished_reason

logger = logging.getLogger("loadkit")

STOP_GRACE_S = 5.0
"""How long a headless test's users may take to stop, beyond Locust's ``--stop-timeout``,
before the plugin ends the test itself (then, as long again, before it writes what it has and
lets Locust shut down): never a wait for the launcher's time bound."""

RunnerT = TypeVar("RunnerT", bound=Runner)
TIMETABLE_POLL_S = 0.005
"""How often the duration's timer looks whether a local open run's timetable has started."""
ABORT_CHECK_S = 1.0
"""How often abort-on-fail criteria are judged on the live figures."""


class LoadTest(Generic[RunnerT]):
    """The measurement and the life of one test in this process (any role)."""

    stops_on_timer = True
    """Whether this role ends a headless test after ``--loadkit-duration`` (a worker does not:
    its master does)."""
    runs_users = True
    """Whether this role's users run here (an open run's timetable runs where they do)."""

    def __init__(
        self,
        *,
        environment: Environment,
        runner: RunnerT,
        options: PluginOptions,
        clock: RunClock,
        source: str = "local",
        open_run: OpenRun | None = None,
    ) -> None:
        """A test that starts now; ``source`` names this process's share of it; ``open_run``
        its open-model settings here (None: the closed model)."""
        self.environment = environment
        self.runner = runner
        self.options = options
        self.clock = clock
        self.open_run = open_run
        self.measured_stages = (
            open_run.stages if open_run is not None else measured_stages(environment, runner)
        )
        """The run's stages, unsplit (rates in an open run, users in a closed one): every
        recorder of the test counts each request in its stage, so that the results have a
        summary per stage in either model."""
        self.open_model: OpenModel | None = None
        """The open run's timetable in this process, once started."""
        self.timetable_start: float | None = None
        """An open run: when its timetable started (run clock). Its stages and its planned
        duration count from there, not from the test's start (see ``timetable_started``)."""
        target = options.target
        self.reader = None if target.is_bundled else ErrorReader(target)
        """How failures' kinds are read (the target profile's; None: the bundled envelope)."""
        self.recording = Recording(self._new_recorder(source), clock, self.reader)
        self.started_perf = time.perf_counter()
        self.cpu = CpuWatch()
        self.exceptions = ExceptionTally()
        """What user code raised during the test (a stats reset does not forget them: a broken
        task in the ramp-up is still broken)."""
        self.stop_time: float | None = None
        """When the users were told to stop (run clock): the end of the measured span."""
        self.ran_full_duration = False
        self.stages = stages_of(environment)
        """Closed-model stages driving the users (loadkit's own shape: closed_stages.py)."""
        shape = environment.shape_class
        own_shape = shape is not None and not self.stages
        self.shape: str | None = type(shape).__name__ if own_shape else None
        """The locustfile's LoadTestShape (its class name): it drives users and length, and a
        headless run's duration is only its cap."""
        self.shape_cut = False
        """The shape was still running at the cap and was cut there."""
        self.stop_origin: StopOrigin | None = None
        """Who first asked the runner to stop (``stops.py``); None while nobody has."""
        self.stop_at: float | None = None
        """When the locustfile stopped the test, if not when this process's users were told to
        (run clock): a master learns it from the worker whose locustfile stopped."""
        self.noted_reasons: list[InvalidReason] = []
        """Why the results are invalid, known before they are written (the locustfile stopped
        the test in its ``test_start`` hook)."""
        self.quit_requested = False
        self.peak_users = int(runner.target_user_count or 0)
        """The most users asked for during the test (a shape's stages, the web UI's edits)."""
        self.in_flight = 0
        self.aborted = False
        self.finalized = False
        self.when_finalized: list[Callable[[], object]] = []
        """Called once the test's measurement is final (its results written or shipped)."""
        self.results_path: Path | None = None
        self.results: LoadResults | None = None
        """The results written (the web UI's tabs then show them)."""
        self.iteration_rates = RateWindow()
        self.abort_stop: Stopped | None = None
        """The abort-on-fail criterion that stopped the test, when one did."""

    # --- its life ---------------------------------------------------------------------------

    def start(self) -> None:
        """Begin: a headless test with a planned duration is stopped on time, by the plugin."""
        duration = self.options.duration_s
        if duration and self.options.headless and self.stops_on_timer:
            gevent.spawn(self._stop_after, float(duration))
        # Where the run is decided (one process, or a master: its recorder merges its workers'
        # shares, which then come every second): its recorder holds the whole run so far.
        if self.options.abort and self.options.headless and self.stops_on_timer:
            gevent.spawn(self._watch_abort)
        if self.open_run is not None and self.runs_users:
            self.open_model = model = start_open_model(
                self.open_run,
                environment=self.environment,
                runner=self.runner,
                clock=self.clock,
                duration_s=duration if self.options.headless else None,
            )
            model.on_start = self.timetable_started
            self.recording.recorder.set_schedule(model.schedule)

    def _new_recorder(self, source: str) -> LatencyRecorder:
        """A recorder for this test's requests from now on, with the run's stages on the test's
        stage clock."""
        recorder = LatencyRecorder(
            start=self.clock.now(), source=source, stages=self.measured_stages
        )
        if self.timetable_start is not None:
            recorder.start_stages_at(self.timetable_start)
            recorder.count_span_from(self.timetable_start)
        if self.open_model is not None:
            recorder.set_schedule(self.open_model.schedule)
        return recorder

    def timetable_started(self, t0: float) -> None:
        """The open run's timetable started (or, on a master, starts) at ``t0``: its stages
        count from there, in every process of the run alike (a worker's ``t0`` is the master's
        common start), not from when this process's test began (before its users were
        spawned)."""
        self.timetable_start = t0
        self.recording.recorder.start_stages_at(t0)
        self.recording.recorder.count_span_from(t0)

    def _stop_after(self, duration_s: float) -> None:
        # gevent.spawn_later ends early on a stale loop clock: wait on perf_counter instead.
        deadline = self._timer_start_perf() + duration_s
        while (remaining := deadline - time.perf_counter()) > 0:
            if self.stop_time is not None or self.finalized:
                break  # ended already (a shape that finished, the locustfile, Locust)
            gevent.sleep(min(remaining, 0.1))
        if self.stop_time is not None or self.finalized:
            self._see_it_end()
            return
        gevent.spawn(self._see_it_end)
        if self.shape is not None:
            # A shape runs as Locust runs it; the duration is only its cap.
            logger.warning(
                "loadkit: the shape %s had not finished after %.3g s; cutting it there",
                self.shape,
                duration_s,
            )
            self.shape_cut = True
        else:
            logger.info("loadkit: %.3g s run time reached, stopping the test", duration_s)
            self.ran_full_duration = True
        # stop() before quit(): a master's stop() waits until every worker has stopped, and
        # each worker's final share travels ahead of its "stopped" message.
        self.runner.stop()
        self.runner.quit()

    def _watch_abort(self) -> None:
        """Abort on fail: once a second, judge the abort criteria on the live figures (exactly
        as the gate reads them); the first that fails stops the test as the timer would, and
        the results say so (``stopped: {by: "criterion"}``)."""
        from loadkit.gate.abort import first_failure, named_endpoints
        from loadkit.measure.load_results import live_results

        endpoints = named_endpoints(self.options.abort)

        start = time.perf_counter()
        ticks = 0
        while self.stop_time is None and not self.finalized:
            ticks += 1
            gevent.sleep(max(start + ticks * ABORT_CHECK_S - time.perf_counter(), 0.0))
            if self.stop_time is not None or self.finalized:
                return
            recorder = self.recording.flush()
            elapsed = self.clock.now() - recorder.start
            target = str(self.environment.host or "")
            live = live_results(recorder, target=target, endpoints=endpoints)
            stop = first_failure(self.options.abort, live, elapsed_s=elapsed)
            if stop is not None:
                break
        else:
            return
        self.abort_stop = stop
        logger.warning("loadkit: %s failed at %.1f s; stopping the test", stop.criterion, elapsed)
        gevent.spawn(self._see_it_end)
        self.runner.stop()
        self.runner.quit()

    def _see_it_end(self) -> None:
        """Backstop: a headless test whose users were told to stop is finalized, and Locust
        quits, a short grace later, whatever cut the stop short on its way (a stop from a
        greenlet it kills, a worker that never answers)."""
        grace = STOP_GRACE_S + float(getattr(self.environment, "stop_timeout", 0.0) or 0.0)
        if self._ends_within(grace):
            return
        logger.warning(
            "loadkit: the test had not ended %.3g s after its users were told to stop; "
            "quitting Locust",
            grace,
        )
        gevent.spawn(self._quit_locust)
        if self._ends_within(grace):
            return
        logger.error("loadkit: Locust did not stop the test; writing what was recorded, quitting")
        self.quit()
        self.runner.greenlet.kill(block=False)  # what quit() ends with: Locust's main goes on

    def _ends_within(self, seconds: float) -> bool:
        """Whether the test is finalized within ``seconds``, or its stop got as far as Locust's
        ``test_stop`` (whose hooks take as long as they take, as in plain Locust)."""
        give_up = time.perf_counter() + seconds
        while not self.finalized and time.perf_counter() < give_up:
            gevent.sleep(0.1)
        return self.finalized or self.runner.state == STATE_STOPPED

    def _timer_start_perf(self) -> float:
        """When the planned duration starts counting (``perf_counter``): the test's start, or
        an open run's timetable start (a master's: its workers' common start, a fixed lead after
        the test's; a local one's: once its users are spawned, which for a couple of thousand
        users takes a noticeable part of a short run). Waits for the latter."""
        while self.open_run is not None and self.timetable_start is None:
            if self.stop_time is not None or self.finalized:
                break
            gevent.sleep(TIMETABLE_POLL_S)
        if self.timetable_start is not None:
            return time.perf_counter() + (self.timetable_start - self.clock.now())
        return self.started_perf

    def stop_requested(self, origin: StopOrigin, *, quit: bool) -> None:
        """Someone called the runner's ``stop()`` (or ``quit()``): the first caller of a running
        test is who stopped it."""
        if quit:
            self.quit_requested = True
        if self.stop_origin is None and self.stop_time is None and not self.finalized:
            self.stop_origin = origin

    def users_asked(self, count: int) -> None:
        """The runner was asked for ``count`` users (a shape's stage, the web UI)."""
        self.peak_users = max(self.peak_users, count)

    def restart_recording(self) -> None:
        """Locust reset its stats: what was recorded so far is forgotten, as Locust forgets it."""
        if self.finalized:
            return
        source = self.recording.recorder.source
        self.recording = Recording(self._new_recorder(source), self.clock, self.reader)

    def stopping(self) -> None:
        """Users are about to be stopped: the measured span ends now."""
        if self.stop_time is not None:
            return
        self.stop_time = self.clock.now()
        if self.open_model is not None:
            self.open_model.stop()
            allow_drain(self.open_model, self.environment)
        self.cpu.check_own()
        self._note_pending()

    def _note_pending(self) -> None:
        """What is still pending as users stop (requests in flight; a master: its workers)."""

    def stopped(self) -> None:
        """Users are stopped (Locust's ``test_stop``)."""
        raise NotImplementedError

    def interrupt(self) -> None:
        """Locust is quitting (first of its quitting listeners): a running test was interrupted;
        stop it and keep its data."""
        if self.runner.state in (STATE_RUNNING, STATE_SPAWNING):
            self.aborted = True
            logger.warning("loadkit: interrupted while the test was running; results are partial")
            self.runner.stop()

    def quit(self) -> None:
        """Locust has quit (after its own quitting listeners): write what was not written."""
        raise NotImplementedError

    def _close_measurement(self) -> LatencyRecorder:
        """The end of the test is known: judge the CPU's last span, flush the batch."""
        if self.stop_time is None:
            self.stop_time = self.clock.now()
        self.cpu.check_own()
        recorder = self.recording.flush()
        if self.open_model is not None:
            finish_open_model(
                self.open_model, recorder, environment=self.environment, end=self.stop_time
            )
        return recorder

    def _mark_finalized(self) -> None:
        self.finalized = True
        self.cpu.closed = True
        for callback in self.when_finalized:
            callback()

    # --- results ----------------------------------------------------------------------------

    def _generator_health(self) -> GeneratorHealth:
        return GeneratorHealth(
            overloaded=self.cpu.warnings > 0,
            cpu_warnings=self.cpu.warnings,
            max_cpu_percent=round_percent(self.cpu.max_percent),
        )

    def _config(self) -> dict[str, Any]:
        options = self.options
        config: dict[str, Any] = {
            "scenario": options.scenario or self.environment.locustfile,
            "user_classes": sorted(c.__name__ for c in self.environment.user_classes),
            "concurrency": self.runner.target_user_count or options.num_users,
            "spawn_rate": options.spawn_rate,
            "duration_s": options.duration_s,
            "processes": 1,
            "distributed": False,
            "model": "closed",
            "ui": not options.headless,
            "run_id": options.run_id,
            "locust_version": options.locust_version,
            "engine": "locust",
        }
        if self.open_run is not None:
            config.update(open_run_config(self.open_run, self.environment))
        if options.url_path is not None:  # the url scenario: the target's path
            config["url_path"] = options.url_path
        if self.shape is not None:
            # The shape decided users and rates: concurrency is the most it asked for, and
            # duration_s (headless) the cap it was given.
            config["shape"] = {"class": self.shape, "completed": self.stop_origin == "shape"}
            config["concurrency"] = self.peak_users
            config["spawn_rate"] = None
        if self.stages:
            # The stages drove the users: concurrency is the most they asked for.
            config["stages"] = [asdict(stage) for stage in self.stages]
            config["concurrency"] = self.peak_users
            config["spawn_rate"] = None
        if options.http2:  # absent for HTTP/1.1: such runs' files stay as they were
            config["http2"] = True
        config.update(options.launch)  # locust_args, locust_config (from `loadkit load`)
        return config

    def _output_path(self) -> Path:
        if self.options.headless:
            return self.options.out
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        return self.options.ui_dir / f"ui-{stamp}.json"

    def _stopped_early_reason(self) -> InvalidReason | None:
        """Why a headless run that ended before its planned duration (or, with a shape, before
        the shape finished) is invalid."""
        planned = self.options.duration_s
        if not planned or not self.options.headless or self.aborted:
            return None
        if self.abort_stop is not None:
            return None  # stopped on purpose by a criterion (``stopped``)
        ran_s = self.recording.recorder.duration_s()
        if self.shape is not None and self.shape_cut:
            return shape_unfinished_reason(shape=self.shape, ran_s=ran_s, cap_s=float(planned))
        if self.ran_full_duration or self.stop_origin in ("shape", "locustfile"):
            return None  # run as asked, or stopped on purpose (``stopped``)
        # Not stopped by our timer, nor interrupted, nor on purpose: Locust ended the test by
        # itself (its last worker quit, its --run-time backstop). Not the run asked for.
        if self.shape is not None:
            return shape_unfinished_reason(shape=self.shape, ran_s=ran_s, cap_s=None)
        return incomplete_reason(ran_s=ran_s, planned_s=float(planned))

    def _stopped(self) -> Stopped | None:
        """How a test stopped on purpose ended: by an abort-on-fail criterion, or by its
        locustfile (None for any other end)."""
        if self.abort_stop is not None and not self.aborted:
            return self.abort_stop
        if self.stop_origin != "locustfile" or self.aborted:
            return None
        recorder = self.recording.recorder
        at = self.stop_at if self.stop_at is not None else self.stop_time
        at_s = (at if at is not None else self.clock.now()) - recorder.start
        return Stopped(by="locustfile", at_s=round(max(at_s, 0.0), 3))

    def write_results(self, invalid_reasons: list[InvalidReason] | None = None) -> None:
        """Write the results file of the finished test (``recorder.finish`` already called)."""
        self._mark_finalized()
        invalid_reasons = [*self.noted_reasons, *(invalid_reasons or [])]
        stopped_early = self._stopped_early_reason()
        if stopped_early is not None:
            invalid_reasons.append(stopped_early)
        generator = self._generator_health()
        results = build_load_results(
            self.recording.recorder,
            target=str(self.environment.host or ""),
            config=self._config(),
            generator=generator,
            aborted=self.aborted,
            invalid_reasons=invalid_reasons,
            stopped=self._stopped(),
            exceptions=self.exceptions.results(start=self.recording.recorder.start),
        )
        path = self._output_path()
        write_results(path, results)
        self.results, self.results_path = results, path
        if self.options.headless and self.stop_origin == "locustfile" and not self.quit_requested:
            # runner.stop() alone leaves a headless Locust running until its --run-time: the
            # test is over and its results are out, so end Locust as loadkit's timer would.
            gevent.spawn(self._quit_locust)
        invalid = any(reason.code != "aborted" for reason in results.invalid_reasons)
        if invalid and not self.options.keep_exit_code:
            # A run nobody should gate on must not look like a pass to plain-Locust CI either
            # (an interrupted one keeps the exit code of its interruption). `loadkit load`
            # judges validity itself and wants Locust's own verdict instead.
            self.environment.process_exit_code = 4
        logger.info(
            "loadkit: %d requests, %d errors; results written to %s%s",
            results.totals.requests,
            results.totals.errors,
            path,
            ""
            if results.valid
            else " (INVALID: " + "; ".join(map(str, results.invalid_reasons)) + ")",
        )
        self.write_status("done")

    def _quit_locust(self) -> None:
        self.runner.quit()

    # --- live status ------------------------------------------------------------------------

    def state(self) -> RunState:
        """Where the test is: running, stopping (users told to stop) or done (results out)."""
        if self.finalized:
            return "done"
        if self.stop_time is not None:
            return "stopping"
        return "running"

    def live_counts(self, now: float) -> LiveCounts:
        """Requests, errors and the last second's P95s for the live line."""
        recording = self.recording
        recorder = recording.flush()
        last = recorder.last_second
        if last is None:
            return LiveCounts(recording.requests, recording.errors, None, None)
        current = int(self.clock.now() - recorder.start)
        # The last closed second is stale when nothing completed since: show no P95 then.
        fresh = last.t >= current - 2
        return LiveCounts(
            recording.requests,
            recording.errors,
            last.p95_ms if fresh else None,
            last.service_p95_ms if fresh else None,
        )

    def live_status(self, state: RunState | None = None) -> LiveStatus:
        """The test as the live line shows it."""
        now = time.monotonic()
        counts = self.live_counts(now)
        rps, error_rate = self.recording.rates.rates(now, counts.requests, counts.errors)
        return LiveStatus(
            state=state or self.state(),
            elapsed_s=round(time.perf_counter() - self.started_perf, 3),
            users=int(self.runner.user_count),
            requests=counts.requests,
            rps=round(rps, 1),
            error_rate=round(error_rate, 4),
            p95_ms=counts.p95_ms,
            results_path=str(self.results_path) if self.results_path else None,
            service_p95_ms=counts.service_p95_ms,
            **self._open_live_figures(now),
        )

    def _open_live_figures(self, now: float) -> dict[str, Any]:
        """An open run's live figures (``LiveStatus``'s target and achieved rate, queue)."""
        if self.open_model is None:
            return {}
        return open_live_figures(self.open_model, self.iteration_rates, now)

    def write_status(self, state: RunState | None = None) -> None:
        """Replace the status file (if one was asked for) with the test's live status."""
        if self.options.status_path is not None:
            write_status(self.options.status_path, self.live_status(state))


class LiveCounts(NamedTuple):
    """What the live line counts: requests and errors so far, the last second's P95s."""

    requests: int
    errors: int
    p95_ms: float | None
    service_p95_ms: float | None
    """Open model: its service times' P95 (None in a closed run, or when stale)."""


def starting_status(runner: Runner) -> LiveStatus:
    """The live status before the first test starts."""
    return LiveStatus(
        state="starting",
        elapsed_s=0.0,
        users=int(runner.user_count),
        requests=0,
        rps=0.0,
        error_rate=0.0,
        p95_ms=None,
    )


def round_percent(percent: float | None) -> float | None:
    """A CPU percentage as the results show it (one decimal), or None."""
    return round(percent, 1) if percent is not None else None

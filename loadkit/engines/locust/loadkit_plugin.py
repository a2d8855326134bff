"""loadkit's Locust plugin: exact measurement inside Locust, loaded next to any scenario.

    locust -f scenarios/login.py,loadkit/engines/locust/loadkit_plugin.py --headless -u 10 -t 60s \\
        --host http://127.0.0.1:8000 --loadkit-out results/load.json

``loadkit load`` and ``loadkit ui`` load it this way; plain Locust users can too. It imports Locust
(which monkey-patches the process with gevent), so nothing else in loadkit imports it or its
``plugin`` package: they run only in Locust's own process, never next to asyncio.

This file is the wiring: Locust's options and events, routed to the test under way. The state
lives in ``plugin/``: a fresh ``LoadTest`` per test (``load_test.py``), one role class per Locust
role (``roles.py``). What it does, in every role Locust has:

- **local** (one process, headless or web UI): every request event goes, unrounded, into a
  ``LatencyRecorder``, seen before any listener of the locustfile's can skip it
  (``plugin/first_look.py``); exceptions raised by user code (``user_error``) are counted by
  type and where; when a test stops, the results file is written (one file per test in
  the web UI, ``<loadkit-dir>/ui-<time>.json``).
- **worker**: records the same way and ships a ``WorkerReport`` (``recorder.drain_share()`` and
  its live figures, as plain data) with each of Locust's reports to the master, under the
  ``loadkit`` key; when its users stop, it sends what is left in a
  ``loadkit_final`` message (before Locust's own ``client_stopped``, on the same ordered channel).
- **master**: merges the shares exactly and writes the results once every worker's final share
  has arrived (or, at the latest, when Locust quits; a missing share then makes the run invalid).

A test that is still running when Locust quits (Ctrl-C, SIGTERM) is stopped by the plugin, and its
partial results are written marked aborted. Locust's ``cpu_warning`` (or a master's
``worker_cpu_warning_emitted``), or the plugin's own reading of the span Locust's 10 s readings
left out, marks the run invalid: a saturated generator measures itself. A headless test that
Locust ended before the planned duration (its last worker quit) is marked incomplete.
"""

from __future__ import annotations

import json
import logging
import os
import signal
from argparse import Namespace
from pathlib import Path
from types import TracebackType
from typing import Any, cast

import gevent
import locust
from locust import events
from locust import runners as locust_runners
from locust.exception import StopTest

from loadkit.defaults import DEFAULT_LOAD_OUT as DEFAULT_OUT
from loadkit.defaults import DEFAULT_UI_DIR
from loadkit.engines.locust.plugin.first_look import look_first, note_raised
from loadkit.engines.locust.plugin.load_test import LoadTest, starting_status
from loadkit.engines.locust.plugin.locust_api import (
    Environment,
    MasterRunner,
    Message,
    WorkerRunner,
)
from loadkit.engines.locust.plugin.options import PluginOptions
from loadkit.engines.locust.plugin.recording import BATCH_SIZE, Recording
from loadkit.engines.locust.plugin.roles import LocalTest, MasterTest, WorkerTest
from loadkit.engines.locust.plugin.stops import StopOrigin, observe_runner
from loadkit.engines.locust.plugin.user_code import format_traceback, type_name, where_raised
from loadkit.engines.locust.plugin.worker_report import (
    FINAL_MESSAGE,
    SHARE_KEY,
    WorkerReport,
    WorkerStop,
)
from loadkit.measure.live_status import write_status
from loadkit.measure.recorder import LatencyRecorder, RunClock
from loadkit.measure.validity import add_reason, stopped_in_test_start_reason
from loadkit.report.load_webui import install_web_tabs, web_tab_rows

logger = logging.getLogger("loadkit")

STATUS_INTERVAL_S = 1.0
PARENT_CHECK_S = 1.0
HOOK_STOP_GRACE_S = 1.0
"""How long Locust has to quit by itself after a ``test_start`` hook raised ``StopTest``."""
LAUNCH_KEYS = ("locust_args", "locust_config")


def _add_arguments(parser: Any, **_kwargs: Any) -> None:
    # On the parser itself: only its add_argument knows include_in_web_ui (groups do not).
    group = parser
    group.add_argument(
        "--loadkit-out",
        default=None,
        help=f"Headless runs: write the results file here (default {DEFAULT_OUT}).",
        include_in_web_ui=False,
    )
    group.add_argument(
        "--loadkit-dir",
        default=None,
        help=f"Web UI runs: one results file per test in this folder (default {DEFAULT_UI_DIR}).",
        include_in_web_ui=False,
    )
    group.add_argument(
        "--loadkit-status",
        default=None,
        help="Replace this JSON file every second with the live status (for a progress bar).",
        include_in_web_ui=False,
    )
    group.add_argument(
        "--loadkit-duration",
        type=float,
        default=None,
        help="Headless runs: stop the test after this many seconds (fractions allowed), "
        "measured on a monotonic clock from the test's start.",
        include_in_web_ui=False,
    )
    group.add_argument(
        "--loadkit-run-id", default=None, help="Carried into the results.", include_in_web_ui=False
    )
    group.add_argument(
        "--loadkit-parent-pid",
        type=int,
        default=None,
        help="Shut down (as on SIGTERM) when this process, the launcher, is gone.",
        include_in_web_ui=False,
    )
    group.add_argument(
        "--loadkit-scenario",
        default=None,
        help="The scenario's name, for the results.",
        include_in_web_ui=False,
    )
    group.add_argument(
        "--loadkit-launch",
        default=None,
        help="JSON object of what loadkit passed to Locust (its arguments after `--`, Locust's "
        "configuration read), added to the results' config.",
        include_in_web_ui=False,
    )


def plugin_options(options: Namespace | None) -> PluginOptions:
    """The plugin's settings from Locust's parsed options (None: Locust run as a library)."""

    def option(name: str) -> Any:
        return getattr(options, name, None) if options is not None else None

    status = option("loadkit_status")
    duration = option("loadkit_duration")
    parent = option("loadkit_parent_pid")
    launch = option("loadkit_launch")
    return PluginOptions(
        headless=bool(option("headless")),
        out=Path(option("loadkit_out") or DEFAULT_OUT),
        ui_dir=Path(option("loadkit_dir") or DEFAULT_UI_DIR),
        status_path=Path(status) if status else None,
        duration_s=float(duration) if duration else None,
        run_id=option("loadkit_run_id"),
        parent_pid=int(parent) if parent else None,
        scenario=option("loadkit_scenario"),
        url_path=option("url_path"),
        num_users=option("num_users"),
        spawn_rate=option("spawn_rate"),
        locust_version=locust.__version__,
        launch=_launch_record(launch),
    )


def _launch_record(text: str | None) -> dict[str, Any]:
    """``--loadkit-launch``'s JSON object (empty when absent or not an object)."""
    if not text:
        return {}
    try:
        record = json.loads(text)
    except ValueError:
        logger.warning("loadkit: --loadkit-launch is not JSON; not recorded")
        return {}
    if not isinstance(record, dict):
        return {}
    # Only these keys: the launch record never overrides what the plugin itself knows.
    return {key: record[key] for key in LAUNCH_KEYS if key in record}


class LoadkitPlugin:
    """Locust's events in one process (local, master or worker), routed to the test under way.

    Holds no state of a test: ``test`` is a new ``LoadTest`` of this process's role for each
    test (None before the first), and ``recording`` its current recording, which the request
    listener reaches directly (it runs once per request).
    """

    def __init__(self, environment: Environment) -> None:
        """Attach to ``environment`` (its runner must exist: call from Locust's ``init``)."""
        runner = environment.runner
        assert runner is not None, "the plugin attaches in Locust's init, once the runner exists"
        self.environment = environment
        self.runner = runner
        self.options = plugin_options(environment.parsed_options)
        # The role, once: a master's or a worker's runner (both None: a local process).
        self.master: MasterRunner | None = None
        self.worker: WorkerRunner | None = None
        if isinstance(runner, locust_runners.MasterRunner):
            self.master = cast(MasterRunner, runner)
        elif isinstance(runner, locust_runners.WorkerRunner):
            self.worker = cast(WorkerRunner, runner)
        self.clock = RunClock()
        self.test: LoadTest[Any] | None = None
        self.recording: Recording | None = None
        # Locust's (request type, name) -> our endpoint name: made once per endpoint, not per
        # request.
        self._endpoints: dict[tuple[str, str], str] = {}
        self.stopped_in_test_start: str | None = None
        """The message of a ``StopTest`` a ``test_start`` hook raised before the plugin's own
        listener ran (no test was made): the results still say so."""
        self._test_before_start: LoadTest[Any] | None = None

        ev = environment.events
        ev.test_start.add_listener(self.on_test_start)
        # A StopTest from a test_start hook registered before ours skips our listener: seen
        # as it leaves the firing instead (our listener stays last: --duration counts after
        # the hooks).
        look_first(ev.test_start, self.on_test_start_firing)
        note_raised(ev.test_start, (StopTest,), self.on_test_start_raised)
        ev.test_stopping.add_listener(self.on_test_stopping)
        ev.test_stop.add_listener(self.on_test_stop)
        ev.cpu_warning.add_listener(self.on_cpu_warning)
        ev.usage_monitor.add_listener(self.on_usage_monitor)
        ev.reset_stats.add_listener(self.on_reset_stats)
        ev.spawning_complete.add_listener(self.on_spawning_complete)
        # Added after the runner was built, so with quitting's reverse order this runs before the
        # master's own quitting listener (which would stop the workers without waiting).
        ev.quitting.add_listener(self.on_quitting_first)
        if self.master is not None:
            ev.worker_report.add_listener(self.on_worker_report)
            self.master.register_message(FINAL_MESSAGE, self.on_final_message)
        elif self.worker is not None:
            ev.report_to_master.add_listener(self.on_report_to_master)
        if self.master is None:
            # Seen before any listener, not as one: a locustfile's listener that raises
            # RescheduleTask on a failure would hide it from ours (plugin/first_look.py).
            look_first(ev.request, self.on_request)
            look_first(ev.user_error, self.on_user_error)
        # Who stops a test decides what its end means (stops.py); a stop from inside the test
        # completes. A worker ships its locustfile's stop to the master, which ends the run.
        observe_runner(runner, on_stop=self.on_stop_requested, on_start=self.on_users_asked)
        if self.worker is None:
            # --processes workers are the master's children: only the master watches these.
            if self.options.status_path is not None:
                gevent.spawn(self._status_loop, self.options.status_path)
            if self.options.parent_pid:
                gevent.spawn(self._watch_parent, self.options.parent_pid)

    def _watch_parent(self, parent_pid: int) -> None:
        # The launcher gave Locust a session of its own (so Ctrl-C goes through it); if the
        # launcher is killed outright, nothing else would ever stop a web UI Locust.
        while os.getppid() == parent_pid:
            gevent.sleep(PARENT_CHECK_S)
        logger.warning("loadkit: the launcher (pid %d) is gone; shutting down", parent_pid)
        os.kill(os.getpid(), signal.SIGTERM)

    # --- a test's life ----------------------------------------------------------------------

    def on_test_start(self, **_kwargs: Any) -> None:
        """A test starts (headless start, the UI's start button, a worker's first spawn)."""
        env, options, clock = self.environment, self.options, self.clock
        test: LoadTest[Any]
        if self.master is not None:
            test = MasterTest(environment=env, runner=self.master, options=options, clock=clock)
        elif self.worker is not None:
            source = str(self.worker.client_id)
            test = WorkerTest(
                environment=env, runner=self.worker, options=options, clock=clock, source=source
            )
        else:
            test = LocalTest(environment=env, runner=self.runner, options=options, clock=clock)
        self.test = test
        self.recording = test.recording
        self.stopped_in_test_start = None
        test.start()
        if self.options.headless and test.shape is not None and self.worker is None:
            self._handle_sigterm_during_shape(test)

    def _handle_sigterm_during_shape(self, test: LoadTest[Any]) -> None:
        # Locust installs its SIGTERM handler only once a headless shape has finished (its
        # main joins the shape first): until then SIGTERM (what `loadkit load` forwards for a
        # Ctrl-C) would kill Locust with no results. Handled here as Locust's own handler would
        # be: the test stops, partial results are written marked aborted, and Locust's main
        # then ends the shape run and quits. Released once the results are out, before Locust's
        # own handler goes in, so that the two never both act on one signal.
        def on_sigterm() -> None:
            logger.info("loadkit: SIGTERM during the shape run")
            if not test.finalized and test.stop_time is None:
                test.interrupt()

        watcher = gevent.signal_handler(signal.SIGTERM, on_sigterm)
        test.when_finalized.append(watcher.cancel)

    def on_test_start_firing(self, **_kwargs: Any) -> None:
        """``test_start`` is about to fire: the test before it, to tell whether ours ran."""
        self._test_before_start = self.test

    def on_test_start_raised(self, exception: BaseException) -> None:
        """A ``test_start`` hook raised ``StopTest``: Locust stops (quits, headless) the test
        before any user starts; the results say the locustfile stopped it there."""
        message = str(exception)
        test = self.test
        if test is not None and test is not self._test_before_start:
            # Ours ran before the hook that raised: the test exists and stops as any other.
            test.noted_reasons = add_reason(
                test.noted_reasons, stopped_in_test_start_reason(message)
            )
            return
        self.stopped_in_test_start = message
        if self.options.headless and self.worker is None:
            gevent.spawn(self._end_start_stopped_by_hook)

    def _end_start_stopped_by_hook(self) -> None:
        # Locust's StopTest handler quits a local runner; a master's headless start dies with
        # the StopTest and Locust would idle until loadkit's time bound: end it as Locust
        # ends a local one.
        gevent.sleep(HOOK_STOP_GRACE_S)
        if self.test is None and self.stopped_in_test_start is not None:
            self._test_stopped_in_test_start()
            self.runner.quit()

    def _test_stopped_in_test_start(self) -> None:
        """Results (a worker: its final report) of a test a ``test_start`` hook stopped
        before the plugin's listener made it."""
        message = self.stopped_in_test_start
        if message is None:
            return
        self.stopped_in_test_start = None
        if self.worker is not None:
            stop = WorkerStop(
                at=self.clock.now(),
                exit_code=self.environment.process_exit_code,
                in_test_start=message,
            )
            self.worker.send_message(FINAL_MESSAGE, WorkerReport(stop=stop).to_wire())
            return
        env, options, clock = self.environment, self.options, self.clock
        test: LoadTest[Any]
        if self.master is not None:
            test = MasterTest(environment=env, runner=self.master, options=options, clock=clock)
        else:
            test = LocalTest(environment=env, runner=self.runner, options=options, clock=clock)
        self.test = test
        self.recording = test.recording
        test.stop_origin = "locustfile"
        test.quit_requested = True  # Locust quits by itself (headless) or stays (web UI)
        test.noted_reasons = [stopped_in_test_start_reason(message)]
        test.quit()

    def on_stop_requested(self, origin: StopOrigin, quit: bool) -> None:
        """The runner was asked to stop or quit (``stops.py`` says by whom)."""
        test = self.test
        if test is None:
            return
        first = test.stop_origin is None and test.stop_time is None and not test.finalized
        test.stop_requested(origin, quit=quit)
        if first and quit and origin == "locustfile" and self.master is not None:
            # A master's quit() tells its workers to quit and stops listening 0.5 s later,
            # without waiting for them: a final share could come too late. stop() first waits
            # for every worker to stop, each final share ahead of its "stopped" (as our timer
            # does before its quit()).
            self.master.stop()

    def on_users_asked(self, count: int) -> None:
        """The runner was asked for ``count`` users (a shape's stage, the web UI)."""
        if self.test is not None:
            self.test.users_asked(count)

    def on_reset_stats(self, **_kwargs: Any) -> None:
        """The UI's "reset stats": Locust forgets what it counted, so do we (the test goes on)."""
        self._restart_recording()

    def on_spawning_complete(self, **_kwargs: Any) -> None:
        """With ``--reset-stats`` Locust forgets the ramp-up once all users run; so do we."""
        if self.environment.reset_stats:
            self._restart_recording()

    def _restart_recording(self) -> None:
        if self.test is not None:
            self.test.restart_recording()
            self.recording = self.test.recording

    def on_test_stopping(self, **_kwargs: Any) -> None:
        """Users are about to be stopped: the run ends now; count requests still in flight."""
        if self.test is not None:
            self.test.stopping()

    def on_test_stop(self, **_kwargs: Any) -> None:
        """Users are stopped: write the results (local), ship the rest (worker)."""
        if self.test is None:
            if self.stopped_in_test_start is not None:
                self._test_stopped_in_test_start()
            elif self.worker is not None:
                # A worker that never started still answers, or the master would wait for it.
                self.worker.send_message(FINAL_MESSAGE, WorkerReport().to_wire())
            return
        if not self.test.finalized:
            self.test.stopped()

    def on_quitting_first(self, **_kwargs: Any) -> None:
        """Locust is quitting: a test still running was interrupted; stop it and keep its data."""
        if self.test is not None and not self.test.finalized:
            self.test.interrupt()

    def on_quitting_last(self) -> None:
        """After Locust's own quitting listeners: write what we have if nothing was written."""
        if self.test is None and self.worker is None:
            self._test_stopped_in_test_start()
        elif self.test is not None and not self.test.finalized:
            self.test.quit()

    # --- measuring --------------------------------------------------------------------------

    def on_request(
        self,
        request_type: str,
        name: str,
        response_time: float,
        response: Any = None,
        exception: BaseException | None = None,
        **_kwargs: Any,
    ) -> None:
        """One completed request, with Locust's unrounded response time (ms, perf_counter)."""
        recording = self.recording
        if recording is None:
            return
        endpoint = self._endpoints.get((request_type, name))
        if endpoint is None:
            # Once per endpoint, not per request: this is the generator's hot path.
            endpoint = name if name.startswith(f"{request_type} ") else f"{request_type} {name}"
            self._endpoints[(request_type, name)] = endpoint
        recording.requests += 1
        if exception is None:
            batch = recording.batch
            batch.append((endpoint, response_time, self.clock.now()))
            if len(batch) >= BATCH_SIZE:
                recording.flush()
            return
        recording.record_failure(
            endpoint=endpoint, response_time=response_time, response=response, exception=exception
        )

    def on_user_error(
        self,
        user_instance: object = None,
        exception: BaseException | None = None,
        tb: TracebackType | None = None,
        **_kwargs: Any,
    ) -> None:
        """A task (or on_start) raised: counted by type and where, the first traceback kept."""
        test = self.test
        if test is None or exception is None or test.finalized:
            return
        test.exceptions.add(
            type_name=type_name(exception),
            where=where_raised(tb, user_instance),
            at=self.clock.now(),
            traceback=lambda: format_traceback(exception, tb),
        )

    def current_recorder(self) -> LatencyRecorder | None:
        """The recorder of the test under way, up to date (None before the first test)."""
        return self.recording.flush() if self.recording is not None else None

    def on_cpu_warning(self, cpu_usage: float, **_kwargs: Any) -> None:
        """Locust saw this process above 90 % CPU: the run's latencies are not to be trusted."""
        if self.test is not None:
            self.test.cpu.warning(cpu_usage)

    def on_usage_monitor(self, cpu_usage: float, **_kwargs: Any) -> None:
        """Locust's periodic CPU reading of this process (it fires cpu_warning above 90 %)."""
        if self.test is not None:
            self.test.cpu.reading(cpu_usage)

    # --- worker -> master -------------------------------------------------------------------

    def on_report_to_master(self, client_id: str, data: dict[str, Any], **_kwargs: Any) -> None:
        """Locust's periodic worker report: add our share of what was recorded since the last."""
        test = self.test
        if isinstance(test, WorkerTest) and not test.finalized:
            data[SHARE_KEY] = test.report().to_wire()

    def on_worker_report(self, client_id: str, data: dict[str, Any], **_kwargs: Any) -> None:
        """Master: a worker's periodic report arrived."""
        test = self.test
        payload = data.get(SHARE_KEY)
        if isinstance(test, MasterTest) and payload is not None:
            test.worker_reported(str(client_id), payload, final=False)

    def on_final_message(self, environment: Any, msg: Message, **_kwargs: Any) -> None:
        """Master: a worker stopped and sent the rest of its share."""
        test = self.test
        if isinstance(test, MasterTest):
            test.worker_reported(str(msg.node_id), msg.data, final=True)

    # --- live status ------------------------------------------------------------------------

    def _status_loop(self, path: Path) -> None:
        while True:
            try:
                test = self.test
                if test is None:
                    write_status(path, starting_status(self.runner))
                else:
                    test.write_status()
            except Exception:  # a full disk must not end the load test
                logger.exception("loadkit: cannot write the status file")
            gevent.sleep(STATUS_INTERVAL_S)


_plugin: LoadkitPlugin | None = None


def _on_init(environment: Any, web_ui: Any = None, **_kwargs: Any) -> None:
    global _plugin
    _plugin = plugin = LoadkitPlugin(environment)
    if web_ui is not None:
        install_web_tabs(web_ui, lambda: web_tab_rows(plugin.current_recorder()))


def _on_quitting(environment: Any, **_kwargs: Any) -> None:
    if _plugin is not None:
        _plugin.on_quitting_last()


# Locust's EventHook.add_listener is untyped; seen through Any it does not taint strict typing.
_events: Any = events
_events.init_command_line_parser.add_listener(_add_arguments)
_events.init.add_listener(_on_init)
# Registered at import, before Locust builds its runner: quitting fires in reverse order, so
# this runs after the master has told its workers to quit and collected their reports.
_events.quitting.add_listener(_on_quitting)

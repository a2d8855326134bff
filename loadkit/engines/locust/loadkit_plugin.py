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
  (``plugin/first_look.py``); exceptions raised by user code (``user_error`` for tasks,
  Locust's log for event listeners, greenlets and ``on_stop``: ``plugin/locust_log.py``) are
  counted by type and where; when a test stops, the results file is written (one file per test
  in the web UI, ``<loadkit-dir>/ui-<time>.json``).
- **worker**: records the same way and ships a ``WorkerReport`` (``recorder.drain_share()`` and
  its live figures, as plain data) with each of Locust's reports to the master, under the
  ``loadkit`` key; when its users stop, it sends what is left in a
  ``loadkit_final`` message (before Locust's own ``client_stopped``, on the same ordered channel).
- **master**: merges the shares exactly (exceptions included; a shape's ``tick()`` raises here)
  and writes the results once every worker's final share has arrived (or, at the latest,
  when Locust quits; a missing share then makes the run invalid).

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
import time
from argparse import Namespace
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import Any, cast

import gevent
import locust
from locust import events
from locust import runners as locust_runners
from locust.exception import StopTest

from loadkit.config import Criterion, TargetProfile
from loadkit.defaults import DEFAULT_LOAD_OUT as DEFAULT_OUT
from loadkit.defaults import DEFAULT_UI_DIR
from loadkit.engines.http_request import TlsOptions
from loadkit.engines.locust.plugin.closed_stages import MARKER as STAGES_MARKER
from loadkit.engines.locust.plugin.closed_stages import apply_stages
from loadkit.engines.locust.plugin.first_look import look_first, note_raised
from loadkit.engines.locust.plugin.http2 import apply_http2
from loadkit.engines.locust.plugin.launch_check import check_launch
from loadkit.engines.locust.plugin.load_test import LoadTest, starting_status
from loadkit.engines.locust.plugin.locust_api import (
    Environment,
    MasterRunner,
    Message,
    WorkerRunner,
)
from loadkit.engines.locust.plugin.locust_log import watch_locust_log
from loadkit.engines.locust.plugin.open_model import OpenModel
from loadkit.engines.locust.plugin.options import OpenRun, PluginOptions
from loadkit.engines.locust.plugin.recording import BATCH_SIZE, Recording
from loadkit.engines.locust.plugin.roles import LocalTest, MasterTest, WorkerTest
from loadkit.engines.locust.plugin.secret_mask import SecretMask
from loadkit.engines.locust.plugin.stops import StopOrigin, observe_runner
from loadkit.engines.locust.plugin.tls import apply_tls
from loadkit.engines.locust.plugin.trace_header import TRACE_CONTEXT_KEY, apply_trace_header
from loadkit.engines.locust.plugin.user_code import format_traceback, type_name, where_raised
from loadkit.engines.locust.plugin.web_ui import PluginWebUiTest
from loadkit.engines.locust.plugin.web_ui_host import WebUiHost
from loadkit.engines.locust.plugin.worker_report import (
    CLOCK_MESSAGE,
    FINAL_MESSAGE,
    SHARE_KEY,
    SLOT_MESSAGE,
    WorkerReport,
    WorkerStop,
)
from loadkit.engines.locust.plugin.workers_ready import await_forked_workers
from loadkit.engines.locust.usage_error import refuse
from loadkit.engines.timetable import (
    IN_FLIGHT_WINDOW_S,
    MAX_IN_FLIGHT_CAP,
    default_max_in_flight,
    peak_rate,
)
from loadkit.measure.live_status import write_status
from loadkit.measure.recorder import RunClock
from loadkit.measure.user_exceptions import ExceptionTally
from loadkit.measure.validity import add_reason, stopped_in_test_start_reason
from loadkit.report.load_webui import install_web_ui
from loadkit.stages import Stage, stages_from_json, total_duration_s

logger = logging.getLogger("loadkit")

STATUS_INTERVAL_S = 1.0
PARENT_CHECK_S = 1.0
HOOK_STOP_GRACE_S = 1.0
"""How long Locust has to quit by itself after a ``test_start`` hook raised ``StopTest``."""
LAUNCH_KEYS = ("locust_args", "locust_config")
DISTRIBUTED_START_LEAD_S = 0.5
"""A distributed open run's timetables start this long after the master's test start: enough
for workers to get the spawn message and start their users (milliseconds for hundreds), so
that no iteration is due before its worker can send it."""


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
        "--loadkit-keep-exit-code",
        action="store_true",
        default=False,
        help="Leave Locust's exit code as Locust gives it, also for an invalid run (`loadkit "
        "load` judges the run itself); without it, an invalid run exits 4.",
        include_in_web_ui=False,
    )
    group.add_argument(
        "--loadkit-model",
        choices=("closed", "open"),
        default=None,
        help="closed: Locust's users loop (the default); open: iterations start on a timetable "
        "(implied by --loadkit-rate).",
        include_in_web_ui=False,
    )
    group.add_argument(
        "--loadkit-rate",
        type=float,
        default=None,
        help="Open model: iterations (task executions) started per second, over all workers.",
        include_in_web_ui=False,
    )
    group.add_argument(
        "--loadkit-max-in-flight",
        type=int,
        default=None,
        help="Open model: iterations running at once at most (Locust starts this many users; "
        f"default: the peak rate x {IN_FLIGHT_WINDOW_S:g} s, at most {MAX_IN_FLIGHT_CAP}).",
        include_in_web_ui=False,
    )
    group.add_argument(
        "--loadkit-stages",
        default=None,
        help='JSON list of {"duration_s", "target", "name"}: in an open run the rate ramps '
        "linearly through the targets (iterations/s).",
        include_in_web_ui=False,
    )
    group.add_argument(
        "--loadkit-insecure",
        action="store_true",
        default=False,
        help="https: check no certificate (FastHttpUser and HttpUser classes that do not "
        "choose themselves); by default they are verified.",
        include_in_web_ui=False,
    )
    group.add_argument(
        "--loadkit-ca-cert",
        default=None,
        help="https: verify certificates against this PEM file instead of the system's CAs.",
        include_in_web_ui=False,
    )
    group.add_argument(
        "--loadkit-http2",
        action="store_true",
        default=False,
        help="The locustfile's HTTP users speak HTTP/2 (h2c on http://, ALPN h2 on https://): "
        "classes built on scenarios/http2_user.py; a FastHttpUser or HttpUser is refused.",
        include_in_web_ui=False,
    )
    group.add_argument(
        "--loadkit-abort",
        default=None,
        help="JSON list of abort-on-fail criteria (as in acceptance.toml): a headless test in "
        "one process stops when one fails on the live figures.",
        include_in_web_ui=False,
    )
    group.add_argument(
        "--loadkit-target",
        default=None,
        help="JSON object of acceptance.toml's [target]: where the API says its error kinds and "
        "trace ids, and the trace header sent (default: the bundled service's, traceparent).",
        include_in_web_ui=False,
    )
    group.add_argument(
        "--loadkit-secrets",
        default=None,
        help="Comma-separated environment variables whose values are secrets: masked as "
        "${NAME} in the tracebacks recorded (a declarative scenario's ${NAME}s).",
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
    open_run = open_run_options(
        model=option("loadkit_model"),
        rate=option("loadkit_rate"),
        max_in_flight=option("loadkit_max_in_flight"),
        stages_json=option("loadkit_stages"),
    )
    if open_run is not None and open_run.stages and not duration:
        duration = total_duration_s(open_run.stages)  # the timetable's end is the run's
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
        keep_exit_code=bool(option("loadkit_keep_exit_code")),
        launch=_launch_record(launch),
        open_run=open_run,
        tls=tls_options(
            insecure=bool(option("loadkit_insecure")), ca_cert=option("loadkit_ca_cert")
        ),
        http2=bool(option("loadkit_http2")),
        abort=abort_options(option("loadkit_abort")),
        target=target_profile(option("loadkit_target")),
    )


def abort_options(text: str | None) -> tuple[Criterion, ...]:
    """``--loadkit-abort``'s criteria (a ValueError naming the option when malformed)."""
    if not text:
        return ()
    try:
        entries = json.loads(text)
        return tuple(Criterion.model_validate(entry) for entry in entries)
    except (ValueError, TypeError) as error:
        raise ValueError(f"--loadkit-abort: not a JSON list of criteria: {error}") from None


def target_profile(text: str | None) -> TargetProfile:
    """``--loadkit-target``'s profile (the bundled service's when absent); a ValueError naming
    the option when it is not a valid ``[target]``."""
    if not text:
        return TargetProfile()
    try:
        return TargetProfile.model_validate_json(text)
    except ValueError as exc:
        raise ValueError(f"--loadkit-target is not a valid [target] table: {exc}") from None


def tls_options(*, insecure: bool, ca_cert: str | None) -> TlsOptions:
    """``--loadkit-insecure`` / ``--loadkit-ca-cert`` (a ValueError when both are given)."""
    if insecure and ca_cert:
        raise ValueError("--loadkit-insecure and --loadkit-ca-cert cannot go together; give one")
    return TlsOptions(verify=not insecure, ca_cert=Path(ca_cert) if ca_cert else None)


def open_run_options(
    *,
    model: str | None,
    rate: float | None,
    max_in_flight: int | None,
    stages_json: str | None,
) -> OpenRun | None:
    """The open run the options ask for (None: closed); a ValueError naming the bad option."""
    if model == "closed" or (model is None and rate is None):
        return None
    stages: tuple[Stage, ...] = ()
    if stages_json:
        stages = stages_from_json(stages_json)
    if not stages and (rate is None or rate <= 0):
        raise ValueError(
            f"--loadkit-rate {rate}: an open-model run needs a rate above 0 (or --loadkit-stages)"
        )
    if max_in_flight is not None and max_in_flight < 1:
        raise ValueError(f"--loadkit-max-in-flight {max_in_flight}: must be at least 1")
    return OpenRun(
        rate=rate,
        stages=stages,
        max_in_flight=max_in_flight or default_max_in_flight(peak_rate(rate, stages)),
        max_in_flight_given=max_in_flight is not None,
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
        self.previous_test: LoadTest[Any] | None = None
        """The test before ``test`` (the web UI links the last stopped test's report)."""
        self.recording: Recording | None = None
        self.open_model: OpenModel | None = None
        """The open run's timetable in this process (None: closed, or a master)."""
        self.open_slot: OpenRun | None = None
        """A worker's share of the open run, as its master sent it for the next test."""
        # Locust's (request type, name) -> our endpoint name: made once per endpoint, not per
        # request.
        self._endpoints: dict[tuple[str, str], str] = {}
        self.secret_mask = SecretMask(os.environ)
        self.early_exceptions = ExceptionTally()
        """Raised by user code while no test was under way (a locustfile's test_start hook
        runs before ours): counted in the next test that starts here."""
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
        ev.quit.add_listener(self.on_quit)
        # Exceptions of user code outside tasks (event listeners, greenlets such as a shape's
        # tick(), on_stop): Locust only logs them (plugin/locust_log.py).
        watch_locust_log(self.on_exception_logged)
        if self.master is not None:
            ev.worker_report.add_listener(self.on_worker_report)
            self.master.register_message(FINAL_MESSAGE, self.on_final_message)
        elif self.worker is not None:
            ev.report_to_master.add_listener(self.on_report_to_master)
            self.worker.register_message(SLOT_MESSAGE, self.on_slot_message)
            self.worker.register_message(CLOCK_MESSAGE, self.on_clock_message)
        if self.options.open_run is not None and self.worker is None:
            self._users_for_open_run(self.options.open_run)
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

    def _users_for_open_run(self, open_run: OpenRun) -> None:
        # One Locust user per slot, all spawned at once: the timetable starts once they are.
        shape = self.environment.shape_class
        if shape is not None and not hasattr(shape, STAGES_MARKER):
            raise ValueError(
                f"--loadkit-rate cannot drive a locustfile that has a LoadTestShape of its own "
                f"({type(shape).__name__}): the shape decides the users, the timetable the "
                "iterations; drop the rate, or run the shape alone"
            )
        options = self.environment.parsed_options
        if options is None:
            return
        workers = int(getattr(options, "expect_workers", 0) or 0) if self.master else 0
        if workers > open_run.max_in_flight:
            # Locust would give some workers no user: their share of the timetable never runs.
            raise ValueError(
                f"--loadkit-max-in-flight {open_run.max_in_flight} is below the "
                f"{workers} workers (--expect-workers/--processes {workers}): each worker needs "
                "at least one iteration in flight; raise it or run fewer workers"
            )
        asked = getattr(options, "num_users", None)
        if asked not in (None, open_run.max_in_flight):
            logger.info(
                "loadkit: open model: %d users (the bound on iterations in flight), not %s",
                open_run.max_in_flight,
                asked,
            )
        options.num_users = open_run.max_in_flight
        options.spawn_rate = float(open_run.max_in_flight)

    def on_clock_message(self, environment: Any, msg: Message, **_kwargs: Any) -> None:
        """Worker: the master's clock at its test's start, ahead of the spawn: this worker's
        run clock reads it from now on (a wrong wall clock here would shift its share)."""
        try:
            self.clock.align_to(float(msg.data["now"]))
        except (KeyError, TypeError, ValueError) as exc:
            logger.error("loadkit: the master sent an invalid clock reading: %s", exc)

    def _send_clock(self) -> None:
        # Before Locust's spawn messages and the open run's slots (sent a moment later, on the
        # same ordered channels): each worker's test starts on the master's clock.
        assert self.master is not None
        for client_id in list(self.master.clients):
            self.master.send_message(CLOCK_MESSAGE, {"now": self.clock.now()}, client_id=client_id)

    def on_slot_message(self, environment: Any, msg: Message, **_kwargs: Any) -> None:
        """Worker: the master's open run and this worker's share of it, ahead of the spawn."""
        try:
            self.open_slot = OpenRun.from_wire(msg.data)
        except (KeyError, TypeError, ValueError) as exc:
            logger.error("loadkit: the master sent an invalid open-model share: %s", exc)

    def _send_slots(self, open_run: OpenRun) -> float:
        # Before Locust's spawn messages (sent a moment later, on the same ordered channels):
        # each worker knows its share of the rate when its test starts.
        assert self.master is not None
        workers = sorted(str(client_id) for client_id in self.master.clients)
        # One start for all, a moment ahead: each worker spawns its users first. The master
        # counts the run's duration and the stages' times from there (returned, for
        # ``LoadTest.timetable_started``).
        start_at = self.clock.now() + DISTRIBUTED_START_LEAD_S
        if len(workers) > open_run.max_in_flight:
            # Not known at init (no --expect-workers, a web UI run): say so, loudly.
            logger.error(
                "loadkit: --loadkit-max-in-flight %d is below the %d workers connected: the "
                "workers Locust gives no user cannot run their share of the timetable (it "
                "shows as not sent); raise it to at least %d",
                open_run.max_in_flight,
                len(workers),
                len(workers),
            )
        for index, client_id in enumerate(workers):
            share = open_run.for_worker(index, len(workers), start_at=start_at)
            self.master.send_message(SLOT_MESSAGE, share.to_wire(), client_id=client_id)
        return start_at

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
        if self.master is not None:
            self._send_clock()
        open_run = self._open_run_here()
        test: LoadTest[Any]
        if self.master is not None:
            test = MasterTest(
                environment=env, runner=self.master, options=options, clock=clock, open_run=open_run
            )
        elif self.worker is not None:
            # The master's options came with its spawn message, ahead of test_start: its
            # target profile (how the API says its error kinds, the trace header to send) is
            # the run's, whatever acceptance.toml this worker's folder holds or lacks.
            _report_every_second(bool(getattr(env.parsed_options, "loadkit_abort", None)))
            target = target_profile(getattr(env.parsed_options, "loadkit_target", None))
            if target != options.target:
                options = self.options = replace(options, target=target)
                apply_trace_header(env.user_classes, target.trace_header)
            source = str(self.worker.client_id)
            test = WorkerTest(
                environment=env,
                runner=self.worker,
                options=options,
                clock=clock,
                source=source,
                open_run=open_run,
            )
        else:
            test = LocalTest(
                environment=env, runner=self.runner, options=options, clock=clock, open_run=open_run
            )
        if self.early_exceptions.total:
            # Raised before this test's start reached us (its test_start hooks, a greenlet
            # between two tests): this test's; a worker ships them with its first report.
            test.exceptions = self.early_exceptions
            self.early_exceptions = ExceptionTally()
        self.previous_test, self.test = self.test, test
        self.recording = test.recording
        if self.master is not None and test.open_run is not None:
            test.timetable_started(self._send_slots(test.open_run))
        self.stopped_in_test_start = None
        test.start()
        self.open_model = test.open_model
        # Any shape, the locustfile's or loadkit's stages (closed_stages.py): Locust's main
        # joins it before installing its SIGTERM handler.
        shape = self.environment.shape_class
        if self.options.headless and shape is not None and self.worker is None:
            self._handle_sigterm_during_shape(test)

    def _open_run_here(self) -> OpenRun | None:
        """The open run this process takes part in (None: closed)."""
        if self.worker is None:
            return self.options.open_run
        slot, self.open_slot = self.open_slot, None
        if slot is None and self.options.open_run is not None:
            logger.error("loadkit: no share of the open run came from the master; running none")
        return slot

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
        self.previous_test, self.test = self.test, test
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
        end = self.clock.now()
        latency_s = response_time / 1000.0
        service_s: float | None = None
        model = self.open_model
        if model is not None:
            # Open model: an iteration's first request is timed from the iteration's due time:
            # its wait from due to send plus its service time. Not ``end - due``: with
            # catch_response the event fires when the with-block exits, after the scenario's own
            # code. ``start_time`` is Locust's wall-clock send (time.time(), both clients):
            # moved onto the run clock by its age now.
            start_time = _kwargs.get("start_time")
            sent = end - latency_s
            if isinstance(start_time, float):
                sent = min(sent, end - (time.time() - start_time))
            due = model.first_request_due(sent)
            if due is not None:
                service_s = latency_s
                latency_s = max(sent - due, 0.0) + service_s
        if exception is None:
            batch = recording.batch
            batch.append((endpoint, latency_s, service_s, end))
            if len(batch) >= BATCH_SIZE:
                recording.flush()
            return
        context = _kwargs.get("context")
        recording.record_failure(
            endpoint=endpoint,
            latency_s=latency_s,
            service_s=service_s,
            end=end,
            response=response,
            exception=exception,
            sent_trace_id=context.get(TRACE_CONTEXT_KEY) if isinstance(context, dict) else None,
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
            traceback=lambda: self._traceback(exception, tb),
        )

    def on_exception_logged(self, exception: BaseException, tb: TracebackType | None) -> None:
        """User code raised outside a task and Locust logged it: counted in the test under way,
        else kept for the next one (``early_exceptions``)."""
        test = self.test
        under_way = test is not None and not test.finalized
        tally = test.exceptions if test is not None and under_way else self.early_exceptions
        tally.add(
            type_name=type_name(exception),
            where=where_raised(tb),
            at=self.clock.now(),
            traceback=lambda: self._traceback(exception, tb),
        )

    def _traceback(self, exception: BaseException, tb: TracebackType | None) -> str:
        """The traceback as recorded: ``--loadkit-secrets``' values masked (read from the
        options now: a worker gets them with the spawn message, after its init)."""
        names = getattr(self.environment.parsed_options, "loadkit_secrets", None)
        return self.secret_mask.mask(names, format_traceback(exception, tb))

    def on_quit(self, **_kwargs: Any) -> None:
        """Locust is about to exit: say what user code raised that no test's results hold (a
        locustfile's quitting listener, after the last results were written)."""
        for group in self.early_exceptions.results(start=0.0):
            logger.warning(
                "loadkit: %s at %s (%d×) was raised after the test's results were written; "
                "it is not in them",
                group.type,
                group.where,
                group.count,
            )

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


_LOCUST_REPORT_INTERVAL_S = locust_runners.WORKER_REPORT_INTERVAL
ABORT_REPORT_INTERVAL_S = 1.0
"""How often a worker reports in a run with abort-on-fail criteria (Locust's own: 3 s)."""


def _report_every_second(abort: bool) -> None:
    """A worker of a run with abort-on-fail criteria reports every second, not every 3 s: the
    master judges the run on its workers' merged figures, so that a failing run stops about as
    soon as in one process. Locust's reporter reads the module's value at each of its sleeps;
    the shares are drained each time, so a report costs what it holds, not more."""
    interval = ABORT_REPORT_INTERVAL_S if abort else _LOCUST_REPORT_INTERVAL_S
    locust_runners.WORKER_REPORT_INTERVAL = interval


_plugin: LoadkitPlugin | None = None


def _on_init(environment: Any, web_ui: Any = None, **_kwargs: Any) -> None:
    global _plugin
    check_launch(environment.parsed_options)  # exits 2 when Locust's options desync the run
    apply_stages(environment)  # before the plugin reads the shape; exits 2 on a locustfile's own
    try:
        _plugin = plugin = LoadkitPlugin(environment)
    except ValueError as exc:  # a --loadkit-* option that cannot run (it names itself)
        refuse(str(exc))
    if plugin.options.http2 and (refusal := apply_http2(environment.user_classes)):
        refuse(refusal)
    kept = apply_tls(environment.user_classes, plugin.options.tls)
    apply_trace_header(environment.user_classes, plugin.options.target.trace_header)
    if kept:
        logger.info(
            "loadkit: user classes %s set insecure, ssl_context_factory or client_pool "
            "themselves: their TLS checking is kept, not --insecure/--ca-cert's",
            ", ".join(kept),
        )
    if web_ui is not None:
        # First: its answers are masked after every other hook has written them.
        WebUiHost(environment).install(web_ui)
        install_web_ui(web_ui, PluginWebUiTest(lambda: (plugin.test, plugin.previous_test)))
    await_forked_workers(environment)  # last: Locust's headless start follows init


def _on_test_start(environment: Any, **_kwargs: Any) -> None:
    # A worker gets its master's --loadkit-http2 with the spawn message, after its own init:
    # the master refused HTTP/1.1-only classes already, so a worker only switches its users.
    if getattr(environment.parsed_options, "loadkit_http2", False):
        apply_http2(environment.user_classes)


def _on_quitting(environment: Any, **_kwargs: Any) -> None:
    if _plugin is not None:
        _plugin.on_quitting_last()


# Locust's EventHook.add_listener is untyped; seen through Any it does not taint strict typing.
_events: Any = events
_events.init_command_line_parser.add_listener(_add_arguments)
_events.init.add_listener(_on_init)
_events.test_start.add_listener(_on_test_start)
# Registered at import, before Locust builds its runner: quitting fires in reverse order, so
# this runs after the master has told its workers to quit and collected their reports.
_events.quitting.add_listener(_on_quitting)

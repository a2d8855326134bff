"""loadkit's Locust plugin: exact measurement inside Locust, loaded next to any scenario.

    locust -f scenarios/login.py,loadkit/engines/locust/loadkit_plugin.py --headless -u 10 -t 60s \\
        --host http://127.0.0.1:8000 --loadkit-out results/load.json

``loadkit load`` and ``loadkit ui`` load it this way; plain Locust users can too. It imports Locust
(which monkey-patches the process with gevent), so nothing else in loadkit imports it: it runs
only in Locust's own process, never next to asyncio.

What it does, in every role Locust has:

- **local** (one process, headless or web UI): every request event goes, unrounded, into a
  ``LatencyRecorder``; when a test stops, the results file is written (one file per test in the
  web UI, ``<loadkit-dir>/ui-<time>.json``).
- **worker**: records the same way and ships ``recorder.drain_share()`` with each of Locust's
  reports to the master, under the ``loadkit`` key; when its users stop, it sends what is left in a
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

import logging
import os
import signal
import time
from collections import deque
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import gevent
import locust
from locust import events
from locust.runners import (
    STATE_RUNNING,
    STATE_SPAWNING,
    MasterRunner,
    WorkerRunner,
)

from loadkit.engines.locust.failures import classify_failure
from loadkit.measure.live_status import LiveStatus, RunState, write_status
from loadkit.measure.load_results import build_load_results
from loadkit.measure.recorder import LatencyRecorder, RunClock
from loadkit.measure.results import GeneratorHealth, write_results
from loadkit.measure.worker_share import WorkerShare
from loadkit.report.load_webui import install_web_tabs, web_tab_rows

logger = logging.getLogger("loadkit")

SHARE_KEY = "loadkit"
"""Our key in Locust's worker report (``stats`` and ``errors`` are Locust's own)."""
FINAL_MESSAGE = "loadkit_final"
DEFAULT_OUT = Path("results/load.json")
DEFAULT_UI_DIR = Path("results")
STATUS_INTERVAL_S = 1.0
RATE_WINDOW_S = 5.0
"""The live RPS is averaged over this window: worker reports come only every 3 s."""
WORKER_LIVE_STALE_S = 7.0
PARENT_CHECK_S = 1.0
BATCH_SIZE = 256
"""Successful requests wait in a list until this many, then go into the recorder in one loop.
Called between requests, amid Locust's and geventhttpclient's code, the recorder ran ~2.5× slower
than in a loop of its own (caches cold); batched, its cost per request is the loop's. Every read
of the recorder flushes first, so what it holds, and in what order it got it, is unchanged."""
CPU_WARNING_PERCENT = 90.0
"""Locust's threshold: a process above it measures its own queueing, not the target."""
OWN_CPU_MIN_S = 1.0
"""The plugin's own CPU reading covers the end of a test: the span since Locust's last reading
(every 10 s) or since the test started. Spans shorter than this are too noisy to judge."""
USER_RUNNING = "running"
"""``User._state`` while a user runs a task (as opposed to "waiting" between tasks)."""


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


class LoadkitPlugin:
    """The plugin's state in one Locust process (local, master or worker)."""

    def __init__(self, environment: Any) -> None:
        """Attach to ``environment`` (its runner must exist: call from Locust's ``init``)."""
        self.environment = environment
        self.runner = environment.runner
        self.options = environment.parsed_options
        self.is_master = isinstance(self.runner, MasterRunner)
        self.is_worker = isinstance(self.runner, WorkerRunner)
        self.clock = RunClock()
        self.recorder: LatencyRecorder | None = None
        self.test_started_perf: float | None = None
        self.stop_time: float | None = None
        self.ran_full_duration = False
        self.in_flight = 0
        self.aborted = False
        self.finalized = True
        self.results_path: Path | None = None
        self.cpu_warnings = 0
        self.max_cpu: float | None = None
        self.requests = 0
        self.errors = 0
        self.rate_samples: deque[tuple[float, int, int]] = deque()
        # master only: which workers took part, which sent their final share, their live figures
        self.expected_workers: set[str] = set()
        self.final_workers: set[str] = set()
        self.worker_totals: dict[str, tuple[int, int]] = {}
        self.worker_live: dict[str, tuple[float, float | None]] = {}
        self.worker_cpu_warnings = 0
        self._timer: gevent.Greenlet | None = None
        self._endpoints: dict[tuple[str, str], str] = {}
        # Successful requests not yet in the recorder: (endpoint, response time ms, end).
        self._batch: list[tuple[str, float, float]] = []
        # Process CPU seconds and perf_counter when Locust last read the CPU (or the test began).
        self._cpu_mark: tuple[float, float] | None = None

        ev = environment.events
        ev.test_start.add_listener(self.on_test_start)
        ev.test_stopping.add_listener(self.on_test_stopping)
        ev.test_stop.add_listener(self.on_test_stop)
        ev.cpu_warning.add_listener(self.on_cpu_warning)
        ev.usage_monitor.add_listener(self.on_usage_monitor)
        ev.reset_stats.add_listener(self.on_reset_stats)
        ev.spawning_complete.add_listener(self.on_spawning_complete)
        # Added after the runner was built, so with quitting's reverse order this runs before the
        # master's own quitting listener (which would stop the workers without waiting).
        ev.quitting.add_listener(self.on_quitting_first)
        if self.is_master:
            ev.worker_report.add_listener(self.on_worker_report)
            self.runner.register_message(FINAL_MESSAGE, self.on_final_message)
        elif self.is_worker:
            ev.report_to_master.add_listener(self.on_report_to_master)
            ev.request.add_listener(self.on_request)
        else:
            ev.request.add_listener(self.on_request)
        if self._status_path is not None and not self.is_worker:
            gevent.spawn(self._status_loop)
        parent = self._option("loadkit_parent_pid")
        if parent and not self.is_worker:  # --processes workers are the master's children
            gevent.spawn(self._watch_parent, int(parent))

    # --- options ----------------------------------------------------------------------------

    def _option(self, name: str) -> Any:
        return getattr(self.options, name, None) if self.options is not None else None

    @property
    def _status_path(self) -> Path | None:
        value = self._option("loadkit_status")
        return Path(value) if value else None

    @property
    def _headless(self) -> bool:
        return bool(self._option("headless"))

    def _watch_parent(self, parent_pid: int) -> None:
        # The launcher gave Locust a session of its own (so Ctrl-C goes through it); if the
        # launcher is killed outright, nothing else would ever stop a web UI Locust.
        while os.getppid() == parent_pid:
            gevent.sleep(PARENT_CHECK_S)
        logger.warning("loadkit: the launcher (pid %d) is gone; shutting down", parent_pid)
        os.kill(os.getpid(), signal.SIGTERM)

    # --- a test's life ----------------------------------------------------------------------

    def on_test_start(self, environment: Any, **_kwargs: Any) -> None:
        """A test starts (headless start, the UI's start button, a worker's first spawn)."""
        source = str(self.runner.client_id) if self.is_worker else "local"
        self._batch.clear()
        self.recorder = LatencyRecorder(start=self.clock.now(), source=source)
        self.test_started_perf = time.perf_counter()
        self.stop_time = None
        self.ran_full_duration = False
        self.in_flight = 0
        self.aborted = False
        self.finalized = False
        self.results_path = None
        self.cpu_warnings = 0
        self.max_cpu = None
        self._cpu_mark = (_process_cpu_s(), time.perf_counter())
        self.requests = 0
        self.errors = 0
        self.rate_samples.clear()
        # Counting starts from zero now: the first live line has a rate, not a blank.
        self.rate_samples.append((time.monotonic(), 0, 0))
        self.expected_workers = set()
        self.final_workers = set()
        self.worker_totals = {}
        self.worker_live = {}
        self.worker_cpu_warnings = 0
        duration = self._option("loadkit_duration")
        if duration and self._headless and not self.is_worker:
            self._timer = gevent.spawn(self._stop_after, float(duration))

    def on_reset_stats(self, **_kwargs: Any) -> None:
        """The UI's "reset stats": Locust forgets what it counted, so do we (the test goes on)."""
        self._restart_recording()

    def on_spawning_complete(self, user_count: int, **_kwargs: Any) -> None:
        """With ``--reset-stats`` Locust forgets the ramp-up once all users run; so do we."""
        if self.environment.reset_stats:
            self._restart_recording()

    def _restart_recording(self) -> None:
        if self.recorder is None or self.finalized:
            return
        self._batch.clear()  # recorded before the reset: forgotten, as Locust forgets them
        self.recorder = LatencyRecorder(start=self.clock.now(), source=self.recorder.source)
        self.requests = 0
        self.errors = 0
        self.rate_samples.clear()
        self.rate_samples.append((time.monotonic(), 0, 0))
        self.worker_totals = {}

    def _stop_after(self, duration_s: float) -> None:
        # gevent.spawn_later ends early on a stale loop clock: wait on perf_counter instead.
        assert self.test_started_perf is not None
        deadline = self.test_started_perf + duration_s
        while (remaining := deadline - time.perf_counter()) > 0:
            gevent.sleep(min(remaining, 0.1))
        logger.info("loadkit: %.3g s run time reached, stopping the test", duration_s)
        self.ran_full_duration = True
        # stop() before quit(): a master's stop() waits until every worker has stopped, and
        # each worker's final share travels ahead of its "stopped" message.
        self.runner.stop()
        self.runner.quit()

    def on_test_stopping(self, environment: Any, **_kwargs: Any) -> None:
        """Users are about to be stopped: the run ends now; count requests still in flight."""
        if self.recorder is None or self.stop_time is not None:
            return
        self.stop_time = self.clock.now()
        self._check_own_cpu()
        if self.is_master:
            # Added to those that sent shares: a worker that quit mid-run (no longer a client)
            # still owes its final share, which comes after its "quit".
            self.expected_workers |= set(self.runner.clients.keys())
        else:
            self.in_flight = _requests_in_flight(self.runner)

    def on_test_stop(self, environment: Any, **_kwargs: Any) -> None:
        """Users are stopped: write the results (local), ship the rest (worker)."""
        if self.is_worker and self.recorder is None:
            # A worker that never started still answers, or the master would wait for it.
            self.runner.send_message(FINAL_MESSAGE, {"share": None})
            return
        if self.recorder is None or self.finalized:
            return
        if self.stop_time is None:
            self.stop_time = self.clock.now()
        self._check_own_cpu()
        self._flush()
        if self.is_worker:
            self.recorder.finish(end=self.stop_time, in_flight=self.in_flight)
            self.runner.send_message(FINAL_MESSAGE, self._worker_payload())
            self.finalized = True
        elif self.is_master:
            self._maybe_finalize_master()
        else:
            self.recorder.finish(end=self.stop_time, in_flight=self.in_flight)
            self._write_results()

    def on_quitting_first(self, environment: Any, **_kwargs: Any) -> None:
        """Locust is quitting: a test still running was interrupted; stop it and keep its data."""
        if self.recorder is None or self.finalized:
            return
        if self.is_worker:
            # A worker quitting on its own (Ctrl-C, SIGTERM): stop now, so that its final share
            # goes out ahead of the "quit" Locust's next listener sends. Sent after it (from
            # Locust's runner.quit()), it reached a master that had stopped the test at the
            # "quit" of its last worker and already written the results without it.
            self.runner.stop()
            return
        if self.runner.state in (STATE_RUNNING, STATE_SPAWNING):
            self.aborted = True
            logger.warning("loadkit: interrupted while the test was running; results are partial")
            self.runner.stop()

    def on_quitting_last(self) -> None:
        """After Locust's own quitting listeners: write what we have if nothing was written."""
        if self.is_worker or self.recorder is None or self.finalized:
            return
        if self.is_master:
            self._finalize_master()
        else:
            self._check_own_cpu()
            self._flush()
            self.recorder.finish(end=self.stop_time or self.clock.now(), in_flight=self.in_flight)
            self._write_results()

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
        recorder = self.recorder
        if recorder is None:
            return
        endpoint = self._endpoints.get((request_type, name))
        if endpoint is None:
            # Once per endpoint, not per request: this is the generator's hot path.
            endpoint = name if name.startswith(f"{request_type} ") else f"{request_type} {name}"
            self._endpoints[(request_type, name)] = endpoint
        self.requests += 1
        if exception is None:
            batch = self._batch
            batch.append((endpoint, response_time, self.clock.now()))
            if len(batch) >= BATCH_SIZE:
                self._flush()
            return
        self._flush()  # in completion order
        self.errors += 1
        failure = classify_failure(response, exception)
        recorder.record(
            endpoint=endpoint,
            latency_s=response_time / 1000.0,
            end=self.clock.now(),
            error_kind=failure.kind,
            status=failure.status,
            trace_id=failure.trace_id,
            message=failure.message,
        )

    def _flush(self) -> LatencyRecorder | None:
        """Put the batched requests into the recorder; the recorder, up to date."""
        recorder = self.recorder
        batch = self._batch
        if batch and recorder is not None:
            record = recorder.record
            for endpoint, response_time, end in batch:
                record(endpoint=endpoint, latency_s=response_time / 1000.0, end=end)
        batch.clear()
        return recorder

    def on_cpu_warning(self, environment: Any, cpu_usage: float, **_kwargs: Any) -> None:
        """Locust saw this process above 90 % CPU: the run's latencies are not to be trusted."""
        self.cpu_warnings += 1
        self._note_cpu(cpu_usage)

    def on_usage_monitor(self, environment: Any, cpu_usage: float, **_kwargs: Any) -> None:
        """Locust's periodic CPU reading of this process (it fires cpu_warning above 90 %)."""
        self._note_cpu(cpu_usage)
        if self._cpu_mark is not None:
            self._cpu_mark = (_process_cpu_s(), time.perf_counter())

    def _check_own_cpu(self) -> None:
        """Read this process's CPU over the test's last span that Locust did not read.

        Locust reads it every 10 s, whenever its runner began: a test shorter than that, or its
        last seconds, would go unjudged, and a generator saturated all along would pass.
        """
        mark, self._cpu_mark = self._cpu_mark, None
        if mark is None:
            return
        cpu_s, since = mark
        span = time.perf_counter() - since
        if span < OWN_CPU_MIN_S:
            return
        usage = 100.0 * (_process_cpu_s() - cpu_s) / span
        self._note_cpu(usage)
        if usage > CPU_WARNING_PERCENT:
            self.cpu_warnings += 1
            logger.warning(
                "loadkit: this Locust process ran at %.0f %% CPU over the last %.1f s of the test",
                usage,
                span,
            )

    def _note_cpu(self, cpu_usage: float | None) -> None:
        # psutil's first reading is always 0.0 (no interval yet): it is no measurement.
        if cpu_usage and self.recorder is not None and not self.finalized:
            self.max_cpu = cpu_usage if self.max_cpu is None else max(self.max_cpu, cpu_usage)

    # --- worker -> master -------------------------------------------------------------------

    def _worker_payload(self) -> dict[str, Any]:
        self._flush()
        assert self.recorder is not None
        last = self.recorder.last_second
        return {
            "share": self.recorder.drain_share().to_wire(),
            "requests": self.requests,
            "errors": self.errors,
            "p95_ms": last.p95_ms if last is not None else None,
            "cpu_warnings": self.cpu_warnings,
            "max_cpu": self.max_cpu,
        }

    def on_report_to_master(self, client_id: str, data: dict[str, Any], **_kwargs: Any) -> None:
        """Locust's periodic worker report: add our share of what was recorded since the last."""
        if self.recorder is not None and not self.finalized:
            data[SHARE_KEY] = self._worker_payload()

    def on_worker_report(self, client_id: str, data: dict[str, Any], **_kwargs: Any) -> None:
        """Master: a worker's periodic report arrived."""
        payload = data.get(SHARE_KEY)
        if isinstance(payload, dict):
            self._merge_worker(client_id, payload)

    def on_final_message(self, environment: Any, msg: Any, **_kwargs: Any) -> None:
        """Master: a worker stopped and sent the rest of its share."""
        if isinstance(msg.data, dict):
            if msg.data.get("share") is not None:
                self._merge_worker(str(msg.node_id), msg.data)
            self.final_workers.add(str(msg.node_id))
        self._maybe_finalize_master()

    def _merge_worker(self, client_id: str, payload: dict[str, Any]) -> None:
        if self.recorder is None or self.finalized:
            return
        self.recorder.merge_share(WorkerShare.from_wire(payload["share"]))
        self.expected_workers.add(client_id)
        self.worker_totals[client_id] = (int(payload["requests"]), int(payload["errors"]))
        self.worker_live[client_id] = (time.monotonic(), payload.get("p95_ms"))
        self.worker_cpu_warnings += int(payload.get("cpu_warnings") or 0)
        worker_cpu = payload.get("max_cpu")
        if worker_cpu is not None:
            self._note_cpu(float(worker_cpu))

    def _maybe_finalize_master(self) -> None:
        if self.recorder is None or self.finalized or self.stop_time is None:
            return
        if self.expected_workers <= self.final_workers:
            self._finalize_master()

    def _finalize_master(self) -> None:
        assert self.recorder is not None
        missing = sorted(self.expected_workers - self.final_workers)
        reasons = [
            f"incomplete: no final share from worker(s) {', '.join(missing)}; "
            "their last seconds are missing"
        ]
        self.recorder.finish(end=self.stop_time or self.clock.now())
        self._write_results(invalid_reasons=reasons if missing else [])

    # --- results ----------------------------------------------------------------------------

    def _generator_health(self) -> GeneratorHealth:
        warnings = self.cpu_warnings + self.worker_cpu_warnings
        overloaded = warnings > 0 or bool(
            self.is_master and getattr(self.runner, "worker_cpu_warning_emitted", False)
        )
        if overloaded and warnings == 0:
            warnings = 1  # seen in a worker's heartbeat: Locust sets the flag, fires no event
        notes = []
        if self.is_master:
            notes.append(f"distributed: {len(self.expected_workers)} worker(s), shares merged")
        return GeneratorHealth(
            overloaded=overloaded,
            cpu_warnings=warnings,
            max_cpu_percent=round(self.max_cpu, 1) if self.max_cpu is not None else None,
            notes=notes,
        )

    def _config(self) -> dict[str, Any]:
        options = self.options
        workers = len(self.expected_workers) if self.is_master else 1
        config: dict[str, Any] = {
            "scenario": self._option("loadkit_scenario") or self.environment.locustfile,
            "user_classes": sorted(c.__name__ for c in self.environment.user_classes),
            "concurrency": self.runner.target_user_count or getattr(options, "num_users", None),
            "spawn_rate": getattr(options, "spawn_rate", None),
            "duration_s": self._option("loadkit_duration"),
            "processes": workers,
            "distributed": self.is_master,
            "model": "closed",
            "ui": not self._headless,
            "run_id": self._option("loadkit_run_id"),
            "locust_version": locust.__version__,
        }
        if self._option("url_path") is not None:  # the url scenario: the target's path
            config["url_path"] = self._option("url_path")
        return config

    def _output_path(self) -> Path:
        if self._headless:
            return Path(self._option("loadkit_out") or DEFAULT_OUT)
        folder = Path(self._option("loadkit_dir") or DEFAULT_UI_DIR)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        return folder / f"ui-{stamp}.json"

    def _write_results(self, invalid_reasons: list[str] | None = None) -> None:
        assert self.recorder is not None
        self.finalized = True
        invalid_reasons = list(invalid_reasons or [])
        planned = self._option("loadkit_duration")
        if planned and self._headless and not self.ran_full_duration and not self.aborted:
            # Not stopped by our timer, nor interrupted: Locust ended the test by itself (its
            # last worker quit, every user stopped, its --run-time backstop). Not the run asked for.
            invalid_reasons.append(
                f"incomplete: the test stopped after {self.recorder.duration_s():.1f} s "
                f"of the planned {float(planned):g} s"
            )
        generator = self._generator_health()
        results = build_load_results(
            self.recorder,
            target=str(self.environment.host or ""),
            config=self._config(),
            generator=generator,
            aborted=self.aborted,
            invalid_reasons=invalid_reasons,
        )
        path = self._output_path()
        write_results(path, results)
        self.results_path = path
        if generator.overloaded:
            # A run nobody should gate on must not look like a pass to plain-Locust CI either.
            self.environment.process_exit_code = 4
        logger.info(
            "loadkit: %d requests, %d errors; results written to %s%s",
            results.totals.requests,
            results.totals.errors,
            path,
            "" if results.valid else " (INVALID: " + "; ".join(results.invalid_reasons) + ")",
        )
        self._write_status("done")

    # --- live status ------------------------------------------------------------------------

    def _status_loop(self) -> None:
        while True:
            try:
                self._write_status(None)
            except Exception:  # a full disk must not end the load test
                logger.exception("loadkit: cannot write the status file")
            gevent.sleep(STATUS_INTERVAL_S)

    def _write_status(self, state: RunState | None) -> None:
        path = self._status_path
        if path is None:
            return
        now = time.monotonic()
        if self.is_master:
            requests = sum(r for r, _ in self.worker_totals.values())
            errors = sum(e for _, e in self.worker_totals.values())
            fresh = [p for at, p in self.worker_live.values() if now - at < WORKER_LIVE_STALE_S]
            p95s = [p for p in fresh if p is not None]
            p95 = max(p95s) if p95s else None
            cpu = [c.cpu_usage for c in self.runner.clients.values()]
            if cpu and self.recorder is not None and not self.finalized:
                self._note_cpu(max(cpu))
        else:
            requests, errors = self.requests, self.errors
            p95 = self._local_p95()
        rps, error_rate = self._rates(now, requests, errors)
        if state is None:
            if self.recorder is None:
                state = "starting"
            elif self.finalized:
                state = "done"
            elif self.stop_time is not None:
                state = "stopping"
            else:
                state = "running"
        elapsed = 0.0
        if self.test_started_perf is not None:
            elapsed = time.perf_counter() - self.test_started_perf
        write_status(
            path,
            LiveStatus(
                state=state,
                elapsed_s=round(elapsed, 3),
                users=int(self.runner.user_count),
                requests=requests,
                rps=round(rps, 1),
                error_rate=round(error_rate, 4),
                p95_ms=p95,
                results_path=str(self.results_path) if self.results_path else None,
            ),
        )

    def _local_p95(self) -> float | None:
        recorder = self._flush()
        if recorder is None:
            return None
        last = recorder.last_second
        if last is None:
            return None
        current = int(self.clock.now() - recorder.start)
        # The last closed second is stale when nothing completed since: show no P95 then.
        return last.p95_ms if last.t >= current - 2 else None

    def _rates(self, now: float, requests: int, errors: int) -> tuple[float, float]:
        samples = self.rate_samples
        samples.append((now, requests, errors))
        while len(samples) > 1 and now - samples[0][0] > RATE_WINDOW_S:
            samples.popleft()
        first_at, first_requests, first_errors = samples[0]
        done = requests - first_requests
        if now - first_at <= 0 or done <= 0:
            return 0.0, 0.0
        return done / (now - first_at), (errors - first_errors) / done


def _process_cpu_s() -> float:
    """CPU seconds this process has used (user + system, all its threads)."""
    times = os.times()
    return times.user + times.system


def _requests_in_flight(runner: Any) -> int:
    """Users in the middle of a task (not between tasks): a closed-loop proxy for requests
    still waiting for an answer, which Locust does not count."""
    count = 0
    for user_greenlet in list(runner.user_greenlets):
        user = user_greenlet.args[0] if user_greenlet.args else None
        if getattr(user, "_state", None) == USER_RUNNING:
            count += 1
    return count


_plugin: LoadkitPlugin | None = None


def _on_init(environment: Any, web_ui: Any = None, **_kwargs: Any) -> None:
    global _plugin
    _plugin = LoadkitPlugin(environment)
    if web_ui is not None:
        plugin = _plugin
        install_web_tabs(web_ui, lambda: web_tab_rows(plugin._flush()))


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

"""An open run's part in a test's life: start the timetable, let in-flight work drain at the end,
put what never started and how the timetable was kept into the recorder, describe the run.

``load_test.py`` calls these at the test's start, stop and end; the timetable itself is
``timetable.py`` (arithmetic) and ``open_model.py`` (the users and the dispatcher).
"""

from __future__ import annotations

import logging
from typing import Any

from loadkit.engines.locust.plugin.locust_api import Environment, Runner
from loadkit.engines.locust.plugin.open_model import (
    OpenModel,
    ignored_wait_times,
    install,
    uninstall,
)
from loadkit.engines.locust.plugin.options import OpenRun
from loadkit.engines.locust.plugin.recording import RateWindow
from loadkit.engines.timetable import Timetable, live_target
from loadkit.measure.recorder import LatencyRecorder, RunClock

logger = logging.getLogger("loadkit")

DRAIN_TIMEOUT_S = 60.0
"""How long iterations still running at the run's end are waited for, unless Locust's
``--stop-timeout`` says otherwise: FastHttpUser's request timeout (``network_timeout``), so a
request that can still complete is recorded (a frozen target shows in the figures, not as lost
requests)."""


def start_open_model(
    open_run: OpenRun,
    *,
    environment: Environment,
    runner: Runner,
    clock: RunClock,
    duration_s: float | None = None,
) -> OpenModel:
    """Start this process's timetable: Locust's task loop goes through it from now on; a run
    of a planned ``duration_s`` (from the timetable's start) begins no iteration due at its end
    or later."""
    timetable = Timetable(
        rate=open_run.rate,
        stages=open_run.stages,
        worker_index=open_run.worker_index,
        worker_count=open_run.worker_count,
    )
    locust_runner: Any = runner

    def spawning() -> bool:
        greenlet = getattr(locust_runner, "spawning_greenlet", None)
        return greenlet is not None and not greenlet.dead

    share = -(-open_run.max_in_flight // open_run.worker_count)  # Locust splits users so

    def users() -> int:
        return int(getattr(locust_runner, "user_count", 0) or 0)

    model = OpenModel(
        timetable=timetable,
        clock=clock,
        max_in_flight=share,
        spawning=spawning,
        users=users,
        end_s=duration_s,
    )
    model.start_at = open_run.start_at
    ignored = ignored_wait_times(list(environment.user_classes))
    if ignored:
        logger.info(
            "loadkit: open model: the wait_time of %s is ignored (the timetable starts iterations)",
            ", ".join(ignored),
        )
    install(model)
    model.start()
    return model


def allow_drain(model: OpenModel, environment: Environment) -> None:
    """The run ends: let iterations in flight finish (up to the request timeout) and be recorded,
    rather than being killed with their requests unmeasured (Locust's default stop)."""
    env: Any = environment
    model.stop_timeout_before = (env.stop_timeout,)
    if not env.stop_timeout:
        timeouts = [getattr(cls, "network_timeout", None) for cls in environment.user_classes]
        known = [float(t) for t in timeouts if isinstance(t, int | float) and t > 0]
        env.stop_timeout = max(known) if known else DRAIN_TIMEOUT_S


def finish_open_model(
    model: OpenModel, recorder: LatencyRecorder, *, environment: Environment, end: float
) -> None:
    """The users have stopped: record what never started and how the timetable was kept."""
    stopped_at = model.stop_time if model.stop_time is not None else end
    drain_s = max(model.clock.now() - stopped_at, 0.0)
    not_sent = model.finish(drain_s=round(drain_s, 3))
    recorder.record_not_sent(count=len(not_sent), due=not_sent, end=end)
    recorder.set_schedule(model.schedule)
    uninstall(model)
    if model.stop_timeout_before is not None:
        # Put back: a worker sleeps --stop-timeout after each stop, deaf to its master meanwhile.
        env: Any = environment
        env.stop_timeout = model.stop_timeout_before[0]
    schedule = model.schedule
    logger.info(
        "loadkit: open model: %d iterations due, %d started, %d not sent; scheduler lag max "
        "%.1f ms; queue max %d; drained in %.2f s",
        schedule.iterations_due,
        schedule.iterations_dispatched,
        len(not_sent),
        (schedule.lag.max_us or 0.0) / 1000.0,
        schedule.max_queue,
        drain_s,
    )


def open_run_config(open_run: OpenRun, environment: Environment) -> dict[str, Any]:
    """The results' config keys of an open run (a master's too: its user classes are its
    workers')."""
    config: dict[str, Any] = {
        "model": "open",
        "rate": open_run.rate,
        "max_in_flight": open_run.max_in_flight,
    }
    if open_run.stages:
        config["stages"] = [
            {"duration_s": s.duration_s, "target": s.target, "name": s.name}
            for s in open_run.stages
        ]
    ignored = ignored_wait_times(list(environment.user_classes))
    if ignored:
        config["wait_time_ignored"] = ignored
    return config


class WorkerRates:
    """A master's view of how fast its workers start iterations: each worker's iterations per
    second between its last two shares (every 3 s), from the schedule figures they carry."""

    def __init__(self) -> None:
        """No share seen yet."""
        self._last: dict[str, tuple[int, float]] = {}
        self._rates: dict[str, float] = {}

    def note(self, source: str, *, dispatched: int, duration_s: float) -> None:
        """A share of ``source``: ``dispatched`` iterations in its timetable's ``duration_s``."""
        before = self._last.get(source, (0, 0.0))
        if duration_s > before[1]:
            self._rates[source] = (dispatched - before[0]) / (duration_s - before[1])
            self._last[source] = (dispatched, duration_s)

    def total(self) -> float:
        """Iterations started per second over all workers, as of their latest shares."""
        return sum(self._rates.values())


def workers_live_figures(
    open_run: OpenRun, *, started: float | None, rates: WorkerRates, clock: RunClock
) -> dict[str, Any]:
    """A master's live open-run figures: the total rate its timetable asks for now (counted from
    the workers' common ``started``) and the iterations its workers started per second, as of
    their latest shares. No queue: workers do not report theirs between shares."""
    at = clock.now() - started if started is not None else -1.0
    target = live_target(Timetable(rate=open_run.rate, stages=open_run.stages), at)
    return {"target_rate": round(target, 1), "achieved_rate": round(rates.total(), 1)}


def open_live_figures(model: OpenModel, rates: RateWindow, now: float) -> dict[str, Any]:
    """The live line's open-run figures: target and achieved rate (iterations/s), queue."""
    achieved, _ = rates.rates(now, model.schedule.iterations_dispatched, 0)
    at = model.clock.now() - model.t0 if model.t0 is not None else -1.0
    return {
        "target_rate": round(live_target(model.timetable, at), 1),
        "achieved_rate": round(achieved, 1),
        "queue": model.queue_length(),
    }

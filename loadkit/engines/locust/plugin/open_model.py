"""The open model inside Locust: a timetable's iterations handed to Locust's users, with gevent.

One iteration is one task execution of a user (for ``url.py`` one request, for ``login.py`` one
login). Locust's users keep running their own loop (``TaskSet.run``: on_start, tasks, TaskSets,
``interrupt``, ``SequentialTaskSet``'s order all unchanged); in an open run two of
``TaskSet``'s methods are wrapped, for the run's duration only:

- ``execute_next_task``: before a task that is not a nested TaskSet, the user waits (in Locust's
  "waiting" state, so that a stop kills it at once, as it would in a ``wait_time``) until the
  dispatcher hands it an iteration; the task then runs as that iteration. This covers what
  replacing each class's ``wait_time`` would miss: the first task, a task after
  ``RescheduleTaskImmediately`` (``interrupt()``'s default), and TaskSets with a ``wait_time`` of
  their own. Entering a nested TaskSet is no iteration: each of its tasks is.
- ``_sleep``: the think time after a task is skipped; the timetable decides when the next
  iteration starts (a scenario's ``wait_time`` is ignored, and the results say so).

The dispatcher greenlet starts the timetable once Locust has spawned every user (spawning a few
thousand users blocks the loop for a moment, which would otherwise show as scheduler lag), then
hands each iteration at its due time to a free user, the longest free first. An iteration due
while no user is free waits in the queue and is measured from its due time all the same;
``max_in_flight`` is the number of users Locust was asked to start, so at most that many
iterations run at once. The first request of an iteration is timed from the iteration's due time
(its response time), later ones of the same iteration from their send (they were due when the
previous one completed, and any gap between is the scenario's own code or think time).

Scheduler lag is how late an iteration started after it could have: its start minus the later of
its due time and the moment its user became free. Only the generator (a busy loop, a saturated
CPU) makes it large, and a run whose lag is large did not keep its timetable.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gevent
from gevent.event import AsyncResult, Event
from locust.exception import StopUser
from locust.user.task import (
    LOCUST_STATE_RUNNING,
    LOCUST_STATE_STOPPING,
    LOCUST_STATE_WAITING,
    TaskSet,
)

from loadkit.engines.locust.plugin.timetable import Timetable
from loadkit.measure.histogram import LatencyHistogram
from loadkit.measure.recorder import RunClock

logger = logging.getLogger("loadkit")

SPAWN_POLL_S = 0.005
"""How often the dispatcher looks whether Locust has finished spawning the users."""


@dataclass(slots=True)
class Iteration:
    """One iteration of the timetable, as the user running it holds it."""

    index: int
    """This worker's iteration number (0-based)."""
    due: float
    """When it was due (run clock)."""
    first_request: bool = True
    """No request of it has completed yet: the next one is timed from ``due``."""


@dataclass
class ScheduleFigures:
    """How one process kept its timetable (what the recorder's schedule figures are made of)."""

    target_rate: float | None
    """The fixed rate asked for (all workers); None with stages (see ``stages``)."""
    worker_index: int
    worker_count: int
    max_in_flight: int
    """Iterations allowed to run at once here (this process's users)."""
    due: int = 0
    """Iterations due from the timetable's start to the run's end: started + not sent."""
    started: int = 0
    """Iterations handed to a user and begun."""
    not_sent: int = 0
    """Iterations due by the end that never began because no user was free (still queued)."""
    lag: LatencyHistogram = field(default_factory=LatencyHistogram)
    """Scheduler lag of each started iteration (µs): start − max(due, user free since)."""
    max_lag_s: float = 0.0
    max_queue: int = 0
    """The most iterations seen waiting for a free user at once."""
    drain_s: float | None = None
    """From the end of the run until the last in-flight iteration finished (or was cut)."""
    timetable_start: float | None = None
    """When the timetable began (run clock): iteration 0 was due then."""
    wait_time_ignored: list[str] = field(default_factory=list)
    """Classes whose own ``wait_time`` the timetable replaced."""


class OpenModel:
    """The timetable of one test in this process, its dispatcher and the users' iterations."""

    def __init__(
        self,
        *,
        timetable: Timetable,
        clock: RunClock,
        max_in_flight: int,
        spawning: Callable[[], bool] = lambda: False,
    ) -> None:
        """Iterations of ``timetable``, on ``clock``; ``spawning()`` says whether Locust is still
        spawning users (the timetable starts when it no longer is)."""
        self.timetable = timetable
        self.clock = clock
        self._spawning = spawning
        self.figures = ScheduleFigures(
            target_rate=timetable.rate if not timetable.stages else None,
            worker_index=timetable.worker_index,
            worker_count=timetable.worker_count,
            max_in_flight=max_in_flight,
        )
        self.t0: float | None = None
        """When iteration 0 was due (run clock); None until the users are spawned."""
        self.dispatched = 0
        """Iterations handed to users (in order: the next one to hand is this number)."""
        self.in_flight = 0
        self.current: dict[Any, Iteration] = {}
        """The iteration each user greenlet runs (read by the request listener)."""
        self._free: deque[tuple[AsyncResult, float]] = deque()
        """Users waiting for an iteration, the longest waiting first, with since when."""
        self._user_freed = Event()
        self._greenlet: gevent.Greenlet | None = None
        self.stop_time: float | None = None
        self._free_at_stop = 0
        self.start_at: float | None = None
        """A worker's timetable starts here (run clock, the master's), not once it spawned."""
        self.stop_timeout_before: tuple[Any] | None = None
        """Locust's ``stop_timeout`` before the drain changed it (to put back after)."""

    # --- the dispatcher ---------------------------------------------------------------------

    def start(self) -> None:
        """Start the dispatcher (it waits for the users to be spawned first)."""
        self._greenlet = gevent.spawn(self._dispatch)

    def _dispatch(self) -> None:
        gevent.sleep(0)  # let Locust's spawner begin (it starts right after test_start)
        while self._spawning():
            gevent.sleep(SPAWN_POLL_S)
        now = self.clock.now
        if self.start_at is not None:
            # A worker: the master's common start, so that all workers' shares interleave.
            while (delay := self.start_at - now()) > 0:
                gevent.sleep(delay)
        t0 = self.t0 = self.start_at if self.start_at is not None else now()
        self.figures.timetable_start = t0
        due_s = self.timetable.due_s
        free = self._free
        while True:
            offset = due_s(self.dispatched)
            if offset is None:
                return  # the stages have ended: no more iterations
            due = t0 + offset
            while (delay := due - now()) > 0:
                gevent.sleep(delay)  # woken early by a stale loop clock: sleep the rest
            if not free:
                # Queued: no user is free. Measured from its due time whenever it starts.
                queue = self.timetable.due_count(now() - t0) - self.dispatched
                self.figures.max_queue = max(self.figures.max_queue, queue)
                while not free:
                    self._user_freed.clear()
                    self._user_freed.wait()
            waiter, _since = free.popleft()
            waiter.set(Iteration(index=self.dispatched, due=due))
            self.dispatched += 1

    def stop(self) -> None:
        """The run ends: hand out nothing more (users waiting are stopped by Locust)."""
        if self.stop_time is not None:
            return
        self.stop_time = self.clock.now()
        self._free_at_stop = len(self._free)
        if self._greenlet is not None:
            self._greenlet.kill(block=False)

    # --- the users' side --------------------------------------------------------------------

    def take_iteration(self) -> Iteration:
        """Wait (in the calling user's greenlet) until the dispatcher hands it an iteration."""
        waiter: AsyncResult = AsyncResult()
        since = self.clock.now()
        self._free.append((waiter, since))
        self._user_freed.set()
        try:
            iteration: Iteration = waiter.get()
        except BaseException:  # killed while waiting: the run ends
            if not waiter.ready():
                self._remove_waiter(waiter)
            raise
        started = self.clock.now()
        lag_s = started - max(iteration.due, since)
        figures = self.figures
        figures.started += 1
        # At least the histogram's 1 µs floor: a lag of 0 is no out-of-range value to count.
        figures.lag.record_us(max(lag_s * 1_000_000.0, 1.0))
        if lag_s > figures.max_lag_s:
            figures.max_lag_s = lag_s
        self.in_flight += 1
        self.current[gevent.getcurrent()] = iteration
        return iteration

    def _remove_waiter(self, waiter: AsyncResult) -> None:
        for position, (queued, _since) in enumerate(self._free):
            if queued is waiter:
                del self._free[position]
                return

    def iteration_done(self) -> None:
        """The calling user's iteration has ended (its task returned or raised)."""
        if self.current.pop(gevent.getcurrent(), None) is not None:
            self.in_flight -= 1

    def first_request_due(self) -> float | None:
        """For a request completing now in the calling greenlet: the due time to time it from
        (the iteration's, for its first request), or None (time it from its send)."""
        iteration = self.current.get(gevent.getcurrent())
        if iteration is None or not iteration.first_request:
            return None
        iteration.first_request = False
        return iteration.due

    # --- figures ----------------------------------------------------------------------------

    def queue_length(self) -> int:
        """Iterations due now that no user has begun yet."""
        if self.t0 is None:
            return 0
        end = self.stop_time if self.stop_time is not None else self.clock.now()
        return max(0, self.timetable.due_count(end - self.t0) - self.dispatched)

    def target_rate_now(self) -> float:
        """The total rate the timetable asks for now (all workers)."""
        if self.t0 is None:
            return 0.0
        return self.timetable.rate_at(self.clock.now() - self.t0)

    def not_sent(self) -> list[float]:
        """Due times (run clock) of the iterations that waited for a free user until the end.

        An iteration due in the run's last moments while a user was free, which the dispatcher
        had not reached yet (or had handed to a user that had not begun), was cut by the end,
        not held up by the target: it is neither due nor not sent."""
        if self.t0 is None:
            return []
        end = self.stop_time if self.stop_time is not None else self.clock.now()
        due_count = self.timetable.due_count(end - self.t0)
        due_s = self.timetable.due_s
        first_queued = self.dispatched + self._free_at_stop
        return [
            self.t0 + offset
            for n in range(first_queued, due_count)
            if (offset := due_s(n)) is not None
        ]

    def final_figures(self, *, drain_s: float | None) -> ScheduleFigures:
        """The schedule figures of the ended run (call once the users have stopped)."""
        figures = self.figures
        not_sent = self.not_sent()
        figures.not_sent = len(not_sent)
        figures.due = figures.started + figures.not_sent
        figures.drain_s = drain_s
        return figures


# --- Locust's TaskSet, wrapped for the duration of an open run ------------------------------

_active: OpenModel | None = None
_originals: dict[str, Any] = {}


def install(model: OpenModel) -> None:
    """Route Locust's task loop through ``model`` (until ``uninstall``)."""
    global _active
    _active = model
    if _originals:
        return
    _originals["execute_next_task"] = TaskSet.execute_next_task
    _originals["_sleep"] = TaskSet._sleep
    TaskSet.execute_next_task = _execute_next_task  # type: ignore[method-assign]
    TaskSet._sleep = _sleep  # type: ignore[method-assign]


def uninstall(model: OpenModel) -> None:
    """Give Locust its own task loop back (if ``model`` is still the one installed)."""
    global _active
    if _active is not model:
        return
    _active = None
    for name, original in _originals.items():
        setattr(TaskSet, name, original)
    _originals.clear()


def _execute_next_task(self: Any) -> None:
    original = _originals["execute_next_task"]
    model = _active
    queue = self._task_queue
    if model is None or not queue or _is_task_set(queue[0]):
        original(self)  # a nested TaskSet: each of its own tasks is an iteration
        return
    user = self.user
    if user._state == LOCUST_STATE_STOPPING:
        raise StopUser()
    # Waiting, as in a wait_time: a stop kills the user here at once instead of waiting for it.
    user._state = LOCUST_STATE_WAITING
    model.take_iteration()
    if user._state == LOCUST_STATE_STOPPING:
        model.iteration_done()
        raise StopUser()
    user._state = LOCUST_STATE_RUNNING
    try:
        original(self)
    finally:
        model.iteration_done()


def _sleep(self: Any, seconds: float) -> None:
    if _active is None:
        _originals["_sleep"](self, seconds)
    # An open run: no think time; the next task waits for its iteration instead.


def _is_task_set(task: object) -> bool:
    return isinstance(task, type) and issubclass(task, TaskSet)


def ignored_wait_times(user_classes: list[type]) -> list[str]:
    """The user classes and TaskSets (reachable from their tasks) whose own ``wait_time`` asks
    for think time that the timetable will replace (a constant 0 asks for none)."""
    found: list[str] = []
    seen: set[type] = set()

    def visit(cls: type) -> None:
        if cls in seen:
            return
        seen.add(cls)
        wait_time = cls.__dict__.get("wait_time") or next(
            (base.__dict__["wait_time"] for base in cls.__mro__[1:] if "wait_time" in base.__dict__
             and base.__module__.split(".")[0] != "locust"),
            None,
        )  # fmt: skip
        if wait_time is not None and _asks_for_think_time(wait_time):
            found.append(cls.__name__)
        for task in getattr(cls, "tasks", []) or []:
            if _is_task_set(task):
                visit(task)

    for user_class in user_classes:
        visit(user_class)
    return found


class _Probe:
    """Stands in for a user when a wait_time function is tried out."""

    _cp_last_run = 0.0
    _cp_last_wait_time = 0.0


def _asks_for_think_time(wait_time: Any) -> bool:
    try:
        return bool(wait_time(_Probe()) != 0)
    except Exception:  # a wait_time of the scenario's own that needs a real user: assume it does
        return True

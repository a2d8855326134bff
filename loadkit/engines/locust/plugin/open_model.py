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
thousand users blocks the loop for a moment, which would otherwise show as scheduler lag) and
every user has run its on_start and waits for an iteration (up to ``ON_START_TIMEOUT_S``), then
hands each iteration at its due time to a free user, the longest free first. An iteration due
while no user is free waits in the queue and is measured from its due time all the same;
``max_in_flight`` is the number of users Locust was asked to start, so at most that many
iterations run at once. The first request of an iteration (by send order) is timed from the
iteration's due time: its response time is the wait from due to send plus its own service time
(never the scenario's code inside a ``catch_response`` block, which Locust's request event
follows). Later ones of the same iteration are timed from their send (any gap before them is
the scenario's own code).

The loop probe, a greenlet that sleeps ``LOOP_PROBE_INTERVAL_S`` again and again from the
timetable's start to the stop, records how late each wake-up comes: the event loop's own delay,
whatever the users are doing.

Scheduler lag is how late an iteration started after it could have: its start minus the later of
its due time and the moment its user became free. Only the generator (a busy loop, a saturated
CPU) makes it large, and a run whose lag is large did not keep its timetable.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
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

from loadkit.engines.timetable import Timetable
from loadkit.measure.recorder import RunClock
from loadkit.measure.schedule import ScheduleStats, mean_rate
from loadkit.measure.validity import LOOP_PROBE_INTERVAL_S

logger = logging.getLogger("loadkit")

SPAWN_POLL_S = 0.005
"""How often the dispatcher looks whether Locust has finished spawning the users (and whether
they have all finished their on_start)."""

ON_START_TIMEOUT_S = 30.0
"""How long the timetable waits for the users' on_start (a login, a registration hashing a
password) to finish before it starts anyway, with a warning: long enough for a few dozen bcrypt
registrations on a cold service, short enough that a stuck on_start does not hang the run."""


@dataclass(slots=True)
class Iteration:
    """One iteration of the timetable, as the user running it holds it."""

    index: int
    """This worker's iteration number (0-based)."""
    due: float
    """When it was due (run clock)."""
    first_send: float | None = None
    """When the earliest-sent request of it seen so far was sent (run clock); None before its
    first request completes."""


class OpenModel:
    """The timetable of one test in this process, its dispatcher and the users' iterations."""

    def __init__(
        self,
        *,
        timetable: Timetable,
        clock: RunClock,
        max_in_flight: int,
        spawning: Callable[[], bool] = lambda: False,
        users: Callable[[], int] = lambda: 0,
    ) -> None:
        """Iterations of ``timetable``, on ``clock``; ``spawning()`` says whether Locust is still
        spawning users, ``users()`` how many it has: the timetable starts when it no longer
        spawns and every user waits for an iteration (its on_start has run)."""
        self.timetable = timetable
        self.clock = clock
        self._spawning = spawning
        self._users = users
        self.schedule = ScheduleStats(
            target_rate=share_rate(timetable), max_in_flight=max_in_flight
        )
        """How this process keeps its timetable, kept up to date as it runs: the recorder holds
        it by reference (``LatencyRecorder.set_schedule``) and ships it with every share. Until
        the end every due iteration counted is a dispatched one; ``finish`` adds those never
        sent."""
        self.t0: float | None = None
        """When iteration 0 was due (run clock); None until the users are spawned."""
        self.on_start: Callable[[float], object] = lambda _t0: None
        """Called with ``t0`` when the timetable starts (the stages' clock starts there)."""
        self.finished = False
        self.dispatched = 0
        """Iterations handed to users (in order: the next one to hand is this number)."""
        self.in_flight = 0
        self.current: dict[Any, Iteration] = {}
        """The iteration each user greenlet runs (read by the request listener)."""
        self._free: deque[tuple[AsyncResult, float]] = deque()
        """Users waiting for an iteration, the longest waiting first, with since when."""
        self._user_freed = Event()
        self._greenlet: gevent.Greenlet | None = None
        self._probe: gevent.Greenlet | None = None
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
        self._wait_for_on_start()
        # The slots this process really has (Locust splits the users across workers unevenly
        # when they do not divide): summed over the workers, the run's bound.
        self.schedule.max_in_flight = self._users() or self.schedule.max_in_flight
        if self.start_at is not None and now() > self.start_at:
            logger.warning(
                "loadkit: open model: the users' on_start ended %.2f s after the workers' common "
                "start; the iterations due meanwhile are measured from their due time",
                now() - self.start_at,
            )
        if self.start_at is not None:
            # A worker: the master's common start, so that all workers' shares interleave.
            while (delay := self.start_at - now()) > 0:
                gevent.sleep(delay)
        t0 = self.t0 = self.start_at if self.start_at is not None else now()
        self.on_start(t0)
        self._probe = gevent.spawn(self._probe_loop)
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
                # Queued: no user is free. Measured from its due time whenever it starts. The
                # queue grows while the dispatcher waits: measured each time it wakes (and at
                # the stop), not only when it begins to wait.
                self._note_queue()
                while not free:
                    self._user_freed.clear()
                    self._user_freed.wait()
                    self._note_queue()
            if self.stop_time is not None:
                # Stopped while this greenlet waited: its kill is on its way, but a loop busy
                # stopping thousands of users can wake it first, and it would hand out a burst
                # of iterations due after the end.
                return
            waiter, _since = free.popleft()
            waiter.set(Iteration(index=self.dispatched, due=due))
            self.dispatched += 1

    def _probe_loop(self) -> None:
        """Sleep a fixed interval, again and again, and record how late each wake-up came: the
        event loop's own delay, measured whether or not a user is free (the scheduler lag is
        not, so a loop too busy to process responses would hide behind busy users)."""
        now = self.clock.now
        record = self.schedule.record_loop_delay
        while self.stop_time is None:
            asked = now() + LOOP_PROBE_INTERVAL_S
            gevent.sleep(LOOP_PROBE_INTERVAL_S)
            if self.stop_time is not None:
                return  # the stop's own pause (stopping the users) is not the run's
            record(now() - asked)

    def _note_queue(self, *, free: int = 0) -> None:
        # Up to the moment a user freed (the dispatcher's wake-up) every iteration due and not
        # dispatched was waiting; at the stop those a free user was about to take were cut by
        # the end, not queued (as in ``not_sent``).
        queued = self.queue_length() - free
        self.schedule.max_queue = max(self.schedule.max_queue, queued)

    def _wait_for_on_start(self) -> None:
        """Until every user waits for an iteration (each has run its on_start), or for
        ``ON_START_TIMEOUT_S``: a timetable started earlier would time its first iterations
        from due times at which no user could begin them."""
        give_up = self.clock.now() + ON_START_TIMEOUT_S
        while len(self._free) < self._users():
            if self.clock.now() >= give_up:
                logger.warning(
                    "loadkit: open model: %d of %d users had not finished on_start after %.0f s; "
                    "starting the timetable anyway",
                    self._users() - len(self._free),
                    self._users(),
                    ON_START_TIMEOUT_S,
                )
                return
            gevent.sleep(SPAWN_POLL_S)

    def stop(self) -> None:
        """The run ends: hand out nothing more (users waiting are stopped by Locust)."""
        if self.stop_time is not None:
            return
        self.stop_time = self.clock.now()
        self._free_at_stop = len(self._free)
        self._note_queue(free=self._free_at_stop)
        if self._greenlet is not None:
            self._greenlet.kill(block=False)
        if self._probe is not None:
            self._probe.kill(block=False)

    # --- the users' side --------------------------------------------------------------------

    def take_iteration(self) -> Iteration | None:
        """Wait (in the calling user's greenlet) until the dispatcher hands it an iteration;
        None when the run ended before the user could begin it.

        Such an iteration was cut by the end, like one the dispatcher had not reached: it is
        neither dispatched nor due (``not_sent``). Counted, it would add the stop's own pause
        (Locust stopping a couple of thousand users blocks the loop for tens of ms) to the
        scheduler lag as if the generator had fallen behind."""
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
        if self.stop_time is not None:
            return None
        schedule = self.schedule
        # Due and dispatched together: until the end (``finish``) every due iteration counted
        # has begun, so that any share shipped meanwhile adds up.
        schedule.iterations_due += 1
        schedule.iterations_dispatched += 1
        schedule.record_lag(started - max(iteration.due, since))
        if self.t0 is not None:
            schedule.duration_s = max(schedule.duration_s, started - self.t0)
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

    def first_request_due(self, sent: float) -> float | None:
        """For a request sent at ``sent`` (run clock) completing now in the calling greenlet:
        the due time to time it from (the iteration's, for its first request by send order),
        or None (time it from its send).

        Requests complete out of send order when one is sent inside another's
        ``catch_response`` block: a request sent no later than any of its iteration's
        requests seen so far is the first one (so the outer one is timed from the due time
        even when the inner one completed before it)."""
        iteration = self.current.get(gevent.getcurrent())
        if iteration is None:
            return None
        first = iteration.first_send
        if first is not None and sent > first:
            return None
        iteration.first_send = sent
        return iteration.due

    # --- figures ----------------------------------------------------------------------------

    def queue_length(self) -> int:
        """Iterations due now that no user has begun yet."""
        if self.t0 is None:
            return 0
        end = self.stop_time if self.stop_time is not None else self.clock.now()
        return max(0, self.timetable.due_count(end - self.t0) - self.dispatched)

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

    def finish(self, *, drain_s: float) -> list[float]:
        """The run has ended and its users have stopped: complete the schedule figures (the
        iterations never sent among those due, how long the timetable ran, the drain) and
        return the due times of the iterations never sent. Once; later calls return []."""
        if self.finished:
            return []
        self.finished = True
        not_sent = self.not_sent()
        self.schedule.max_queue = max(self.schedule.max_queue, len(not_sent))
        schedule = self.schedule
        schedule.iterations_due = schedule.iterations_dispatched + len(not_sent)
        schedule.drain_s = drain_s
        if self.t0 is not None:
            end = self.stop_time if self.stop_time is not None else self.clock.now()
            ran = end - self.t0
            if self.timetable.end_s is not None:
                ran = min(ran, self.timetable.end_s)  # the stages ended before the run did
            schedule.duration_s = max(ran, 0.0)
        return not_sent


def share_rate(timetable: Timetable) -> float:
    """The rate this process's share of ``timetable`` asks for (iterations/s): the run's fixed
    rate, or with stages their mean (ramped from the rate), split evenly across workers."""
    if timetable.stages:
        total = mean_rate(timetable.stages, start=timetable.rate or 0.0)
    else:
        total = float(timetable.rate or 0.0)
    return total / timetable.worker_count


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
    if model.take_iteration() is None or user._state == LOCUST_STATE_STOPPING:
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

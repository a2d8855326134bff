"""The open model inside Locust: a timetable's iterations handed to Locust's users, with gevent.

One iteration is one task execution of a user (for ``url.py`` one request, for ``login.py`` one
login). Locust's users keep running their own loop (``TaskSet.run``: on_start, tasks, TaskSets,
``interrupt``, ``SequentialTaskSet``'s order all unchanged); in an open run two of
``TaskSet``'s methods are wrapped, for the run's duration only:

- ``execute_next_task``: before a task that is not a nested TaskSet, the user takes the next
  iteration of the timetable and waits for its due time (in Locust's "waiting" state, so that a
  stop kills it at once, as it would in a ``wait_time``); the task then runs as that iteration.
  This covers what replacing each class's ``wait_time`` would miss: the first task, a task after
  ``RescheduleTaskImmediately`` (``interrupt()``'s default), and TaskSets with a ``wait_time`` of
  their own. Entering a nested TaskSet is no iteration: each of its tasks is.
- ``_sleep``: the think time after a task is skipped; the timetable decides when the next
  iteration starts (a scenario's ``wait_time`` is ignored, and the results say so).

The timetable starts once Locust has spawned every user (spawning a few thousand users blocks
the loop for a moment, which would otherwise show as scheduler lag) and every user has run its
on_start and waits for an iteration (up to ``ON_START_TIMEOUT_S``). From then on there is no
dispatcher: a user that is free takes the earliest iteration no user has taken (a counter) and
sleeps until it is due, on a timer of its own that wakes it directly; the user that freed first
holds the earliest iteration, so iterations go to the longest free first. An iteration due
while no user is free waits in the queue (due, not taken) until a user frees, takes it and
starts it at once; it is measured from its due time all the same. ``max_in_flight`` is the
number of users Locust was asked to start, so at most that many iterations run at once. (This
replaced a dispatcher greenlet that handed each iteration to a waiting user: one greenlet and
one handoff fewer, at the same CPU per request, 0.99 of it in docs/benchmarks.md.) The first
request of an iteration (by send order) is timed from the
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

import heapq
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gevent
from gevent.event import Event
from locust.exception import StopUser
from locust.user.task import (
    LOCUST_STATE_RUNNING,
    LOCUST_STATE_STOPPING,
    LOCUST_STATE_WAITING,
    TaskSet,
)

from loadkit.engines.timetable import Timetable, share_rate
from loadkit.measure.recorder import RunClock
from loadkit.measure.schedule import ScheduleStats
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
    """The timetable of one test in this process and the users' iterations."""

    def __init__(
        self,
        *,
        timetable: Timetable,
        clock: RunClock,
        max_in_flight: int,
        spawning: Callable[[], bool] = lambda: False,
        users: Callable[[], int] = lambda: 0,
        end_s: float | None = None,
    ) -> None:
        """Iterations of ``timetable``, on ``clock``; ``spawning()`` says whether Locust is still
        spawning users, ``users()`` how many it has: the timetable starts when it no longer
        spawns and every user waits for an iteration (its on_start has run). ``end_s``: the
        run's planned length (its ``--duration``), if any."""
        self.timetable = timetable
        self.end_s = end_s
        """No iteration due this long after ``t0`` or later belongs to the run: the stop comes
        then, however late it is carried out (Locust's stop inspects the stack first, tens of
        ms), and one due at the very end must not race it."""
        self._planned = _due_before(timetable, end_s) if end_s is not None else None
        """How many iterations are due before ``end_s`` (None: no planned end)."""
        self.clock = clock
        self._spawning = spawning
        self._users = users
        self.schedule = ScheduleStats(
            target_rate=share_rate(timetable), max_in_flight=max_in_flight
        )
        """How this process keeps its timetable, kept up to date as it runs: the recorder holds
        it by reference (``LatencyRecorder.set_schedule``) and ships it with every share. Until
        the end every due iteration counted is a started one; ``finish`` adds those never
        sent."""
        self.t0: float | None = None
        """When iteration 0 was due (run clock); None until the users are spawned."""
        self.on_start: Callable[[float], object] = lambda _t0: None
        """Called with ``t0`` when the timetable starts (the stages' clock starts there)."""
        self.finished = False
        self.taken = 0
        """Iterations taken by users, in order: the next one to take is this number (those
        below it were started, or are held by a user waiting for their due time)."""
        self._returned: list[int] = []
        """Iterations taken by a user killed before it could begin them, while the run went on
        (a heap): the next users take these first."""
        self.in_flight = 0
        self.current: dict[Any, Iteration] = {}
        """The iteration each user greenlet runs (read by the request listener)."""
        self._started = Event()
        """Set when the timetable starts (``t0``): users wait on it before their first take."""
        self._waiting_for_start = 0
        self._never = Event()
        """Never set: a user waits on it once the stages have ended, until Locust stops it."""
        self._greenlet: gevent.Greenlet | None = None
        self._probe: gevent.Greenlet | None = None
        self.stop_time: float | None = None
        self.start_at: float | None = None
        """A worker's timetable starts here (run clock, the master's), not once it spawned."""
        self.stop_timeout_before: tuple[Any] | None = None
        """Locust's ``stop_timeout`` before the drain changed it (to put back after)."""

    # --- the start --------------------------------------------------------------------------

    def start(self) -> None:
        """Start the timetable once the users are spawned and ready (in a greenlet)."""
        self._greenlet = gevent.spawn(self._begin)

    def _begin(self) -> None:
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
        if self.stop_time is not None:
            return
        t0 = self.t0 = self.start_at if self.start_at is not None else now()
        self.on_start(t0)
        self._probe = gevent.spawn(self._probe_loop)
        self._started.set()  # the users waiting take iterations 0, 1, … in the order they came

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

    def _note_queue(self) -> None:
        # Every iteration due and not taken is waiting for a user: measured when a user frees
        # to find its iteration overdue (as the queue is then at its longest) and at the stop.
        self.schedule.max_queue = max(self.schedule.max_queue, self.queue_length())

    def _wait_for_on_start(self) -> None:
        """Until every user waits for an iteration (each has run its on_start), or for
        ``ON_START_TIMEOUT_S``: a timetable started earlier would time its first iterations
        from due times at which no user could begin them."""
        give_up = self.clock.now() + ON_START_TIMEOUT_S
        while self._waiting_for_start < self._users():
            if self.clock.now() >= give_up:
                logger.warning(
                    "loadkit: open model: %d of %d users had not finished on_start after %.0f s; "
                    "starting the timetable anyway",
                    self._users() - self._waiting_for_start,
                    self._users(),
                    ON_START_TIMEOUT_S,
                )
                return
            gevent.sleep(SPAWN_POLL_S)

    def stop(self) -> None:
        """The run ends: begin nothing more (users waiting are stopped by Locust)."""
        if self.stop_time is not None:
            return
        self.stop_time = self.clock.now()
        self._note_queue()
        if self._greenlet is not None:
            self._greenlet.kill(block=False)
        if self._probe is not None:
            self._probe.kill(block=False)

    # --- the users' side --------------------------------------------------------------------

    def take_iteration(self) -> Iteration | None:
        """In the calling user's greenlet: take the next iteration of the timetable, wait for
        its due time and return it; None when the run ended before the user could begin it.

        The user that frees first takes the earliest iteration not taken yet (the longest free
        first), so an iteration due while every user is busy waits for the first one to free
        and starts at once (measured from its due time all the same). A user waits for its
        iteration's due time on one timer of its own: the hub wakes it directly.

        An iteration the end cut before its user began it is neither due nor not sent (nor is
        one no free user was about to take, ``not_sent``). Counted, it would add the stop's own
        pause (Locust stopping a couple of thousand users blocks the loop for tens of ms) to
        the scheduler lag as if the generator had fallen behind."""
        now = self.clock.now
        t0 = self.t0
        if t0 is None:
            self._waiting_for_start += 1
            try:
                self._started.wait()
            finally:
                self._waiting_for_start -= 1
            t0 = self.t0
            assert t0 is not None
        since = now()
        index = heapq.heappop(self._returned) if self._returned else self.taken
        offset = self.timetable.due_s(index)
        if offset is None or (self._planned is not None and index >= self._planned):
            # The stages, or the run's planned length, have ended: no more iterations.
            self._never.wait()  # until Locust stops the user
            return None
        if index == self.taken:
            self.taken = index + 1
        due = t0 + offset
        if due <= since:
            self._note_queue()  # it was queued: no user was free when it fell due
        try:
            while (delay := due - now()) > 0:
                gevent.sleep(delay)  # woken early by a stale loop clock: sleep the rest
        except BaseException:  # killed while waiting: the run ends, or this user does
            if self.stop_time is None:
                heapq.heappush(self._returned, index)
            raise
        started = now()
        if self.stop_time is not None:
            return None
        schedule = self.schedule
        # Due and started together: until the end (``finish``) every due iteration counted
        # has begun, so that any share shipped meanwhile adds up.
        schedule.iterations_due += 1
        schedule.iterations_dispatched += 1
        schedule.record_lag(started - (due if due > since else since))
        duration = started - t0
        if duration > schedule.duration_s:
            schedule.duration_s = duration
        self.in_flight += 1
        iteration = Iteration(index=index, due=due)
        self.current[gevent.getcurrent()] = iteration
        return iteration

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

    def _first_not_taken(self) -> int:
        """The earliest iteration no user holds (one killed before beginning it hands it back)."""
        return min(self._returned) if self._returned else self.taken

    def _due_count(self) -> int:
        """Iterations of the run due by now (or by the stop)."""
        assert self.t0 is not None
        end = self.stop_time if self.stop_time is not None else self.clock.now()
        due_count = self.timetable.due_count(end - self.t0)
        return min(due_count, self._planned) if self._planned is not None else due_count

    def queue_length(self) -> int:
        """Iterations due now that no user has taken yet."""
        if self.t0 is None:
            return 0
        due_count = self._due_count()
        returned = sum(1 for index in self._returned if index < due_count)
        return max(0, due_count - self.taken) + returned

    def not_sent(self) -> list[float]:
        """Due times (run clock) of the iterations that waited for a free user until the end.

        An iteration due in the run's last moments that a free user had taken but not begun
        yet was cut by the end, not held up by the target: it is neither due nor not sent."""
        if self.t0 is None:
            return []
        due_count = self._due_count()
        due_s = self.timetable.due_s
        indices = [
            *sorted(i for i in self._returned if i < due_count),
            *range(self.taken, due_count),
        ]
        return [self.t0 + offset for n in indices if (offset := due_s(n)) is not None]

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
            for planned in (self.timetable.end_s, self.end_s):
                if planned is not None:
                    ran = min(ran, planned)  # the stages or the planned length ended first
            schedule.duration_s = max(ran, 0.0)
        return not_sent


def _due_before(timetable: Timetable, end_s: float) -> int:
    """How many of ``timetable``'s iterations are due before ``end_s`` (strictly)."""
    count = timetable.due_count(end_s)
    while count > 0 and (due := timetable.due_s(count - 1)) is not None and due >= end_s:
        count -= 1
    return count


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

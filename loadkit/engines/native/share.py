"""One process's share of a native run, from its plan to its recorder: the event loop's life.

The share starts its load at the plan's ``start`` (on the run clock, so that several processes
begin together and their shares merge onto one timeline), runs the closed or open model until
the planned end or a stop (Ctrl-C, SIGTERM, ``ShareControl.stop``), drains an open run's requests
in flight (each up to its timeout), and hands back the recorder, finished, with its CPU health.
A live status goes to ``on_status`` about once a second.

An open run's timetable is due from that one start in every process (``t0``): the one
``ShareControl.await_start`` brings (the processes of ``--processes`` and the workers of a
distributed run, which say they are ready once their loop runs), or a start the plan fixed. A
declarative scenario's users are set up before it, so that no process's timetable begins later
than the others' (the merged duration and rate count from the common start): with
``await_start`` the process says it is ready only once they are; against a fixed start they
are set up in its lead, and an iteration a setup still running delays is late, its wait counted
as lag. Alone (no common start) a process starts its timetable once its users are set up, as
Locust's users run their ``on_start`` first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from time import perf_counter
from typing import Literal

import uvloop

from loadkit.engines.cpu import CpuSpans
from loadkit.engines.http_request import RequestSpec
from loadkit.engines.native.closed_model import ClosedModel
from loadkit.engines.native.open_model import OpenModel
from loadkit.engines.native.pool import DEFAULT_TIMEOUT_S, Pool
from loadkit.engines.native.request_bytes import EncodedRequest, encode_request, host_header
from loadkit.engines.native.scenario import CompiledScenario, compile_scenario
from loadkit.engines.native.scenario_pool import ScenarioPool
from loadkit.engines.target import parse_target, scenario_base_path
from loadkit.engines.timetable import Timetable, live_target
from loadkit.engines.tls import client_context
from loadkit.measure.error_reader import ErrorReader
from loadkit.measure.live_status import LiveStatus, RunState
from loadkit.measure.recorder import LatencyRecorder, RunClock
from loadkit.measure.validity import InvalidReason
from loadkit.stages import Stage

STATUS_EVERY_S = 1.0
SETUP_WAIT_S = 30.0
"""How long an open run's timetable waits for its users' setup (the Locust path's
``ON_START_TIMEOUT_S``): then it starts anyway, with a warning."""

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SharePlan:
    """What one process runs (picklable: it crosses to spawned processes)."""

    request: RequestSpec
    model: Literal["closed", "open"]
    start: float | None
    """When the load begins, on the run clock (seconds since the epoch): several processes'
    common start; None: as soon as this process's event loop runs (a load started at a time
    fixed beforehand would count the loop's own start-up as scheduler lag)."""
    duration_s: float
    """The planned run time (an open run with stages: the stages' total)."""
    concurrency: int = 1
    """Closed model: this process's connections."""
    rate: float | None = None
    stages: tuple[Stage, ...] = ()
    max_in_flight: int = 1
    """Open model: this process's bound on requests in flight."""
    worker_index: int = 0
    worker_count: int = 1
    timeout_s: float = DEFAULT_TIMEOUT_S
    source: str = "local"
    live_shares: bool = False
    """A process of ``--processes`` in a run with abort-on-fail criteria: it sends its figures
    so far to the parent every second, which judges them merged with the others'."""
    clock_offset_s: float = 0.0
    """Added to this machine's wall clock to read the run clock: a distributed worker's
    measured offset to its master's clock (``start`` and every time it records are on the
    master's clock then); never on the wire, each worker measures its own."""
    scenario: str | None = None
    """A declarative scenario's description (``loadkit.engines.declarative.describe``: its
    secrets still ``${NAME}``, read from this process's environment): its users run it against
    ``request``'s host instead of sending ``request``. Closed: a user per connection; open: a
    user per slot of ``max_in_flight``."""


@dataclass
class ShareOutcome:
    """A finished share: its recorder (``finish`` called) and how its process fared."""

    recorder: LatencyRecorder
    cpu_warnings: int = 0
    max_cpu_percent: float | None = None
    interrupted: bool = False
    """Stopped by Ctrl-C, SIGTERM or ``ShareControl.stop`` before its planned end."""
    crashed: str | None = None
    """loadkit's own code raised during the share (the exception, one line; its traceback is
    logged): the share stopped there and its run is invalid (``generator_crashed``)."""


@dataclass
class ShareControl:
    """How another thread (a test, the parent's pipe reader) stops a running share."""

    _loop: asyncio.AbstractEventLoop | None = None
    _stop: Callable[[], None] | None = None
    _pending: bool = field(default=False)
    watch: Callable[[LatencyRecorder, float], bool] | None = None
    """Abort on fail: called in the share's loop once a second with the recorder and the
    seconds since the load began; True ends the run there, as planned (not interrupted)."""
    await_start: Callable[[threading.Event], float | None] | None = None
    """Several processes' handshake (``--processes``' pipe, a distributed worker's relay), for
    a plan without ``start``: called in a thread of its own once this share is ready to load
    (its event loop running, an open run's users set up), it says so and returns the common
    start (run clock) the load begins at, or None once the event is set (the share was stopped)
    or nobody will send one (the share then stops)."""

    def stop(self) -> None:
        """Stop the share as an interruption (thread-safe; before it started: at once)."""
        self._pending = True
        if self._loop is not None and self._stop is not None:
            with contextlib.suppress(RuntimeError):  # the loop already closed
                self._loop.call_soon_threadsafe(self._stop)


DUPLICATE_SIGNAL_S = 0.5
"""A second Ctrl-C or SIGTERM within this long of the first is the same one delivered twice, not a
second request to cut the drain short (a person pressing Ctrl-C again takes longer)."""


def run_share(
    plan: SharePlan,
    *,
    on_status: Callable[[LiveStatus], None] | None = None,
    control: ShareControl | None = None,
) -> ShareOutcome:
    """Run ``plan`` on a new uvloop event loop in this thread; Ctrl-C and SIGTERM stop it (in
    the main thread) and mark it interrupted. Raises ``ConfigError`` for a request that cannot
    be encoded or a CA file that cannot be read, before anything is sent."""
    request = encode_request(plan.request)
    scenario = plan_scenario(plan)
    ssl_context = client_context(plan.request.tls) if request.scheme == "https" else None
    loop = uvloop.new_event_loop()
    try:
        return loop.run_until_complete(
            _run_share(plan, request, scenario, ssl_context, on_status, control or ShareControl())
        )
    finally:
        loop.close()


def plan_scenario(plan: SharePlan) -> CompiledScenario | None:
    """The plan's declarative scenario compiled with this process's environment (None: a URL
    run); a ``ConfigError`` naming what cannot run here (a variable not set, a bad header)."""
    if plan.scenario is None:
        return None
    target = parse_target(plan.request.url, option="URL")
    return compile_scenario(
        plan.scenario,
        os.environ,
        host=host_header(target.hostname, target.port, target.scheme),
        trace_header=plan.request.target.trace_header,
        base_path=scenario_base_path(plan.request.url, option="URL"),
    )


async def _run_share(
    plan: SharePlan,
    request: EncodedRequest,
    scenario: CompiledScenario | None,
    ssl_context: ssl.SSLContext | None,
    on_status: Callable[[LiveStatus], None] | None,
    control: ShareControl,
) -> ShareOutcome:
    # Built inside the running loop: a share without a fixed start begins now.
    return await _ShareRun(plan, request, scenario, ssl_context, on_status, control).run()


class _ShareRun:
    def __init__(
        self,
        plan: SharePlan,
        request: EncodedRequest,
        scenario: CompiledScenario | None,
        ssl_context: ssl.SSLContext | None,
        on_status: Callable[[LiveStatus], None] | None,
        control: ShareControl,
    ) -> None:
        self.plan = plan
        target = plan.request.target
        self.clock = RunClock(offset_s=plan.clock_offset_s)
        self.offset = self.clock.now() - perf_counter()
        self.start = plan.start if plan.start is not None else self.clock.now()
        self.recorder = LatencyRecorder(
            start=self.start,
            source=plan.source,
            stages=plan.stages if plan.model == "open" else (),
        )
        reader = None if target.is_bundled else ErrorReader(target)
        self.scenario_pool: ScenarioPool | None = None
        self.pool: Pool
        if scenario is not None:
            self.pool = self.scenario_pool = ScenarioPool(
                scenario=scenario,
                users=plan.concurrency if plan.model == "closed" else plan.max_in_flight,
                base=request,
                ssl_context=ssl_context,
                recorder=self.recorder,
                run_clock_offset=self.offset,
                timeout_s=plan.timeout_s,
                service_times=plan.model == "open",
                reader=reader,
            )
        else:
            self.pool = Pool(
                request=request,
                ssl_context=ssl_context,
                recorder=self.recorder,
                run_clock_offset=self.offset,
                timeout_s=plan.timeout_s,
                service_times=plan.model == "open",
                reader=reader,
            )
        self.on_status = on_status
        self.control = control
        self.stopped = asyncio.Event()
        self.halted = threading.Event()
        """``stopped`` for other threads (a wait for the common start)."""
        self.interrupted = False
        self.crashed: str | None = None
        self._interrupted_at = 0.0
        self.cpu: CpuSpans | None = None
        self._last_status = (0.0, 0, 0)
        self._last_dispatched = 0
        self._open: OpenModel | None = None
        self._users_set_up = False
        self._load_over = False
        """The planned end (or a stop) came: a drain's completions never stop the run."""

    def _interrupt(self) -> None:
        now = perf_counter()
        if self.interrupted and now - self._interrupted_at < DUPLICATE_SIGNAL_S:
            # One Ctrl-C arrives twice in a child of --processes (from the terminal's process
            # group, and as the parent's SIGTERM): it must not also cut the drain it started.
            return
        self.interrupted = True
        self._interrupted_at = now
        self.stopped.set()
        self.halted.set()

    def _crash(self, loop: asyncio.AbstractEventLoop, context: dict[str, object]) -> None:
        # An exception that reached the loop is a bug of ours (the target's failures are
        # recorded where they happen): never a figure of the target's, so the share stops.
        error = context.get("exception")
        if not isinstance(error, BaseException):
            loop.default_exception_handler(context)
            return
        if self.crashed is None:
            self.crashed = f"{type(error).__name__}: {error}"
            logger.error(
                "loadkit's native engine failed (%s): the run stops and is invalid",
                context.get("message"),
                exc_info=error,
            )
        self.stopped.set()
        self.halted.set()

    async def run(self) -> ShareOutcome:
        loop = asyncio.get_running_loop()
        self.control._loop, self.control._stop = loop, self._interrupt
        loop.set_exception_handler(self._crash)
        if self.control._pending:
            self._interrupt()
        with _stop_signals(loop, self._interrupt):
            if self.plan.start is not None or self.control.await_start is not None:
                # A common start: this process's users are set up before it (an open run's
                # timetable is due from it in every process), then it waits for it.
                if self.plan.model == "open" and await self._set_up_users():
                    self._warn_if_set_up_late()
                if self.plan.start is None:
                    await self._take_common_start(loop)
            start = self.start - self.offset
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopped.wait(), max(start - perf_counter(), 0.0))
            self.cpu = CpuSpans()
            self._last_status = (perf_counter(), 0, 0)
            ticker = loop.call_later(STATUS_EVERY_S, self._tick)
            # Each second's closing in pieces between the loop's turns: done at once, it held
            # the loop 1-8 ms at 5,000-20,000/s (docs/benchmarks.md, "Native engine").
            self.recorder.spread_second_close(loop.call_soon)
            try:
                if self.plan.model == "open":
                    await self._run_open(start)
                else:
                    await self._run_closed(start)
            finally:
                ticker.cancel()
                self.recorder.spread_second_close(None)
                self.pool.close()
        self.cpu.finish()
        self._status("done")
        return ShareOutcome(
            recorder=self.recorder,
            cpu_warnings=self.cpu.warnings,
            max_cpu_percent=self.cpu.max_percent,
            interrupted=self.interrupted,
            crashed=self.crashed,
        )

    async def _until(self, end: float) -> None:
        if not self.stopped.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopped.wait(), max(end - perf_counter(), 0.0))

    async def _run_closed(self, start: float) -> None:
        model = ClosedModel(pool=self.pool, concurrency=self.plan.concurrency)
        self.pool.start_sweeping()
        if not self.stopped.is_set():
            model.start()
        await self._until(start + self.plan.duration_s)
        self._load_over = True
        model.stop()
        if self.scenario_pool is not None:
            self.scenario_pool.halt()
        end = perf_counter()
        self.recorder.finish(end=end + self.offset, in_flight=self.pool.in_flight)

    def _warn_if_set_up_late(self) -> None:
        # Only a start fixed in advance (a distributed worker's) can come before the setup ends;
        # the run's lag then says the timetable was not kept, and this says why.
        late_s = perf_counter() - (self.start - self.offset)
        if self.plan.start is not None and late_s > 0 and not self.stopped.is_set():
            logger.warning(
                "the scenario's setup ended %.3f s after the common start: the iterations due "
                "meanwhile were sent late, and their wait counts as scheduler lag (a plan "
                "without a fixed start waits for the setup instead)",
                late_s,
            )

    async def _take_common_start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Say this share is ready and wait (in a thread: the loop goes on answering signals)
        for the common start; the recorder then counts from it, the setup's requests (made
        before it) in its first second, as a merged share's earlier seconds are."""
        await_start = self.control.await_start
        assert await_start is not None
        if self.stopped.is_set():
            return  # stopped already: the share ends at once, never ready
        start = await loop.run_in_executor(None, await_start, self.halted)
        if start is None:
            self._interrupt()
            return
        self.start = start
        setup = self.recorder
        self.recorder = LatencyRecorder(
            start=start,
            source=setup.source,
            stages=self.plan.stages if self.plan.model == "open" else (),
        )
        if setup.requests:
            self.recorder.merge_share(setup.to_share())
        self.pool.recorder = self.recorder

    async def _set_up_users(self) -> bool:
        """A declarative scenario's users run their setup before the timetable starts (as
        Locust's users run their on_start first), once; whether it ran now."""
        pool = self.scenario_pool
        if self._users_set_up:
            return False
        self._users_set_up = True
        if pool is None or not pool.scenario.setup or self.stopped.is_set():
            return False
        self.pool.start_sweeping()
        done = pool.run_setup()
        waits = [asyncio.ensure_future(e.wait()) for e in (done, self.stopped)]
        await asyncio.wait(waits, timeout=SETUP_WAIT_S, return_when=asyncio.FIRST_COMPLETED)
        for wait in waits:
            wait.cancel()
        if not done.is_set() and not self.stopped.is_set():
            logger.warning(
                "the scenario's setup has not finished for every user after %g s: the "
                "timetable starts anyway (users still in their setup take no iteration)",
                SETUP_WAIT_S,
            )
        return True

    async def _run_open(self, t0: float) -> None:
        plan = self.plan
        if await self._set_up_users():
            # Alone (no common start): the timetable starts once the users are set up.
            t0 = max(t0, perf_counter())
        timetable = Timetable(
            rate=plan.rate,
            stages=plan.stages,
            worker_index=plan.worker_index,
            worker_count=plan.worker_count,
        )
        planned = plan.duration_s if timetable.end_s is None else timetable.end_s
        model = self._open = OpenModel(
            pool=self.pool,
            timetable=timetable,
            max_in_flight=plan.max_in_flight,
            t0=t0,
            planned_s=planned,
        )
        self.recorder.start_stages_at(t0 + self.offset)
        self.recorder.count_span_from(t0 + self.offset)
        self.recorder.set_schedule(model.schedule)
        self.pool.start_sweeping()
        started = not self.stopped.is_set()
        if started:
            model.start()
        await self._until(t0 + planned)
        self._load_over = True
        model.stop()
        if self.scenario_pool is not None:
            self.scenario_pool.halt()
        stop_time = model.stop_time
        assert stop_time is not None
        # The drain, after the planned end or a first Ctrl-C or SIGTERM alike (as the Locust
        # path drains): requests in flight complete or time out (the sweep records them); the
        # next Ctrl-C or SIGTERM ends it at once (those still in flight are counted in_flight).
        # Stopped before its start (while its users were set up, or waiting for the start),
        # none of the timetable is in flight: a login still out is no load to wait for.
        if self.crashed is None and started:
            self.stopped.clear()
            waits = [asyncio.ensure_future(e.wait()) for e in (model.drained, self.stopped)]
            # Each request in flight ends by its timeout (the sweep records it) at the latest.
            await asyncio.wait(
                waits, timeout=plan.timeout_s + 1.0, return_when=asyncio.FIRST_COMPLETED
            )
            for wait in waits:
                wait.cancel()
        drain_s = max(perf_counter() - stop_time, 0.0)
        not_sent = model.finish(drain_s=round(drain_s, 3))
        end = stop_time + self.offset
        self.recorder.record_not_sent(
            count=len(not_sent), due=[due + self.offset for due in not_sent], end=end
        )
        self.recorder.finish(end=end, in_flight=self.pool.in_flight)

    # --- once a second ----------------------------------------------------------------------

    def _tick(self) -> None:
        assert self.cpu is not None
        loop = asyncio.get_running_loop()
        loop.call_later(STATUS_EVERY_S, self._tick)
        self.cpu.tick()
        self._report()

    def _report(self) -> None:
        # The status shows the second just closed: while its closing is spread over the loop's
        # turns, wait a turn rather than finish it here at once (what the spreading avoids).
        if self.recorder.second_closing and not self._load_over:
            asyncio.get_running_loop().call_soon(self._report)
            return
        self._status("running")
        watch = self.control.watch
        if watch is not None and not (self.stopped.is_set() or self._load_over):
            elapsed = perf_counter() - (self.start - self.offset)
            if watch(self.recorder, elapsed):
                # Once: the load is over from here (the open model's drain clears ``stopped``,
                # and a second stop would cut the drain short, as a second Ctrl-C does).
                self._load_over = True
                self.stopped.set()

    def _status(self, state: RunState) -> None:
        if self.on_status is None:
            return
        now = perf_counter()
        recorder = self.recorder
        requests, errors = recorder.requests, recorder.errors
        since, requests0, errors0 = self._last_status
        self._last_status = (now, requests, errors)
        span = max(now - since, 1e-9)
        done = requests - requests0
        last = recorder.last_second
        model = self._open
        achieved = None
        if model is not None:
            # Iterations sent per second since the last status, as the Locust path's live line.
            achieved = round((model.dispatched - self._last_dispatched) / span, 1)
            self._last_dispatched = model.dispatched
        self.on_status(
            LiveStatus(
                state=state,
                elapsed_s=round(now - (self.start - self.offset), 3),
                users=self.pool.in_flight,
                requests=requests,
                rps=round(done / span, 1),
                error_rate=round((errors - errors0) / done, 4) if done else 0.0,
                p95_ms=last.p95_ms if last is not None else None,
                service_p95_ms=last.service_p95_ms if last is not None else None,
                target_rate=(
                    live_target(model.timetable, now - model.t0) if model is not None else None
                ),
                achieved_rate=achieved,
                queue=len(model.queue) if model is not None else None,
            )
        )


def crashed_reason(crashed: str) -> InvalidReason:
    """Why a share whose own code failed (``ShareOutcome.crashed``) makes its run invalid."""
    return InvalidReason(
        code="generator_crashed",
        detail=f"loadkit's native engine failed during the run ({crashed}; its traceback is "
        "logged): the results stop there. This is a bug in loadkit, please report it",
    )


@contextlib.contextmanager
def _stop_signals(loop: asyncio.AbstractEventLoop, stop: Callable[[], None]) -> Iterator[None]:
    """Ctrl-C and SIGTERM stop the share (main thread only), then the handlers before are back."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    signals = (signal.SIGINT, signal.SIGTERM)
    before = {sig: signal.getsignal(sig) for sig in signals}
    for sig in signals:
        loop.add_signal_handler(sig, stop)
    try:
        yield
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
            signal.signal(sig, before[sig])

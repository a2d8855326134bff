"""Several processes on this machine, each running a share of one native run (``--processes``).

Each is a process of its own, started with the spawn method (a fresh interpreter: nothing of the
parent's event loop or sockets is inherited). Each runs ``run_share`` with its plan and says it
is ready once its event loop runs and, in an open run of a declarative scenario, its users are
set up (their logins: ``share.ShareControl.await_start``); when all are, the parent sends them
one common start a short margin ahead (``START_MARGIN_S``: a spawn takes from a fraction of a
second to several on a busy machine, and a setup as long as the target makes it, so a start
fixed before the spawn would have to wait for the worst case every time). Every process's
timetable is due from that start, the one the merged duration counts from. Each sends back over
a pipe its live status every second and, at its end, its
recorder's share (``LatencyRecorder.to_share``, histograms encoded) with its CPU health. The
parent merges the shares exactly (``merge_share``). A plan with ``live_shares`` also sends its
figures so far every second (without the per-second timeline): the parent's ``on_live`` judges
them merged, and stops every child when it says so (abort on fail). Ctrl-C reaches the whole process
group: every child stops and still sends its share; SIGTERM sent to the parent alone is passed
on to the children.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.connection
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection
from typing import Any

from loadkit.engines.native.share import ShareControl, SharePlan, run_share
from loadkit.exceptions import GeneratorCrashedError
from loadkit.measure.live_status import LiveStatus
from loadkit.measure.recorder import LatencyRecorder, RunClock
from loadkit.measure.worker_share import WorkerShare

SHARE_GRACE_S = 30.0
"""How long past its plan's end (and its drain) a child may take to send its share."""

START_MARGIN_S = 0.25
"""The common start, after the last child said it is ready: the start message's way through
a pipe to a child already running its event loop takes milliseconds; the rest is room for a
busy machine's scheduling, so that no process begins late on the timetable."""

READY_TIMEOUT_S = 60.0
"""How long the children may take to get ready (spawn, import, and an open run's users' setup,
itself bounded by ``share.SETUP_WAIT_S``) before the run is given up as crashed: far beyond
the 1-3 s a busy machine takes to spawn."""

_START_POLL_S = 0.05
"""How often a ready child, waiting for its start, looks whether it was stopped meanwhile."""


@dataclass
class ProcessesRun:
    """What ``run_processes`` gives back: the common start it sent and every child's share."""

    start: float
    """On the run clock; every share's load began there."""
    shares: list[ProcessShare]


@dataclass
class ProcessShare:
    """What one child sent back at its end."""

    share: WorkerShare
    cpu_warnings: int
    max_cpu_percent: float | None
    interrupted: bool
    crashed: str | None = None
    """loadkit's own failure that stopped the share (``ShareOutcome.crashed``): the run is
    invalid (``generator_crashed``), though what it measured until then is kept."""


def _child(plan: SharePlan, pipe: Connection) -> None:
    """A child's whole life: run the share (it says it is ready, then waits for the common
    start), sending its status, and then its share."""

    def status(live: LiveStatus) -> None:
        with contextlib.suppress(OSError):
            pipe.send(("status", live))

    # Ctrl-C (the terminal's, to the whole group) and the parent's SIGTERM stop the share as an
    # interruption, also before its loop runs and after it ended, while the share is still to
    # be sent: never a death that would read as a crash.
    def live(recorder: LatencyRecorder, _elapsed_s: float) -> bool:
        # The figures so far, cumulative (the final share stays whole), without the timeline
        # and stages, which grow with the run and which no abort criterion reads.
        share = recorder.to_share(timeline=False)
        with contextlib.suppress(OSError):
            pipe.send(("live", share.to_wire()))
        return False  # the parent decides, on every process's figures

    def await_start(stopped: threading.Event) -> float | None:
        try:
            pipe.send(("ready",))
            return _await_start(pipe, stopped)
        except (EOFError, OSError):
            return None  # the parent is gone: nobody to measure for (the share stops)

    control = ShareControl(watch=live if plan.live_shares else None, await_start=await_start)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda _signum, _frame: control.stop())
    # Stopped before the start: the share runs stopped at once and sends its (empty) share,
    # an interruption as on any other stop. The plans' own start is not read: the common
    # start comes once every process is ready.
    outcome = run_share(replace(plan, start=None), on_status=status, control=control)
    with contextlib.suppress(OSError):  # the parent is gone
        pipe.send(
            (
                "share",
                outcome.recorder.to_share().to_wire(),
                outcome.cpu_warnings,
                outcome.max_cpu_percent,
                outcome.interrupted,
                outcome.crashed,
            )
        )
    pipe.close()


def _await_start(pipe: Connection, stopped: threading.Event) -> float | None:
    """The common start the parent sends, or None once ``stopped`` (a signal) came first."""
    while not stopped.is_set():
        if pipe.poll(_START_POLL_S):
            _, start = pipe.recv()
            return float(start)
    return None


def run_processes(
    plans: Sequence[SharePlan],
    *,
    on_status: Callable[[list[LiveStatus | None]], None] | None = None,
    on_live: Callable[[list[WorkerShare | None], float], bool] | None = None,
) -> ProcessesRun:
    """Run each plan in a process of its own from one common start (sent once every process
    is ready; the plans' own ``start`` is not read) and return their shares, in plan order.

    ``on_status`` gets every child's latest live status (None before its first) each time one
    arrives; ``on_live`` every child's latest figures so far (plans with ``live_shares``) each
    time one arrives, with the common start: True stops every child, as planned (each still
    sends its share). A child that dies without sending its share, or that is not ready after
    ``READY_TIMEOUT_S``, stops the others (they still send theirs, so what they measured is
    kept); then ``ProcessesCrashed`` carries those shares, ``interrupted`` when a Ctrl-C or
    SIGTERM came first (a child still starting dies of it). A child that sends its share before
    any start (stopped by a signal of its own, or its own code failed, while it set up) stops
    the others at once: its outcome, interrupted or crashed, is the run's."""
    context = multiprocessing.get_context("spawn")
    pipes: list[Connection] = []
    children: list[Any] = []
    for plan in plans:
        # Both ways: the child says it is ready and sends its status and share; the parent
        # sends the common start.
        ours, theirs = context.Pipe()
        child = context.Process(target=_child, args=(plan, theirs), daemon=True)
        child.start()
        theirs.close()
        pipes.append(ours)
        children.append(child)
    latest: list[LiveStatus | None] = [None] * len(plans)
    live: list[WorkerShare | None] = [None] * len(plans)
    live_stopped = False
    ready: set[int] = set()
    start: float | None = None
    pipes_done: set[int] = set()
    crashed: tuple[int, int | None] | None = None
    not_ready: int | None = None
    ended_early: int | None = None
    """The child whose share came before any start: stopped, or its own code failed, while
    it set up; its outcome is the run's."""
    results: list[ProcessShare | None] = [None] * len(plans)
    bound = max(plan.duration_s + plan.timeout_s for plan in plans) + SHARE_GRACE_S
    give_up = time.monotonic() + READY_TIMEOUT_S
    signalled = threading.Event()
    with _pass_sigterm_on(children, signalled):
        while any(r is None and i not in pipes_done for i, r in enumerate(results)):
            if time.monotonic() >= give_up:
                if start is None and crashed is None and ended_early is None:
                    # Never all ready: the run cannot start; those ready were told nothing.
                    not_ready = min(set(range(len(plans))) - ready)
                    _stop(children)
                    give_up = time.monotonic() + SHARE_GRACE_S
                    start = RunClock().now()
                    continue
                break
            waiting = [pipe for i, pipe in enumerate(pipes) if i not in pipes_done]
            for pipe in multiprocessing.connection.wait(waiting, timeout=0.5):
                assert isinstance(pipe, Connection)
                index = pipes.index(pipe)
                try:
                    message: tuple[Any, ...] = pipe.recv()
                except (EOFError, OSError):
                    pipes_done.add(index)
                    # Once a share ended the run before its start, a child still starting
                    # dies of the SIGTERM that stopped it: no crash.
                    if results[index] is None and crashed is None and ended_early is None:
                        children[index].join(timeout=5)
                        crashed = (index, children[index].exitcode)
                        _stop(children)  # the run is broken: the others end and report
                    continue
                if message[0] == "ready":
                    ready.add(index)
                    stopped = crashed is not None or signalled.is_set() or ended_early is not None
                    if len(ready) == len(plans) and start is None and not stopped:
                        start = RunClock().now() + START_MARGIN_S
                        for other in pipes:
                            with contextlib.suppress(OSError):
                                other.send(("start", start))
                        give_up = time.monotonic() + START_MARGIN_S + bound
                elif message[0] == "status":
                    latest[index] = message[1]
                    if on_status is not None:
                        on_status(list(latest))
                elif message[0] == "live":
                    live[index] = WorkerShare.from_wire(message[1])
                    if (
                        on_live is not None
                        and start is not None
                        and not live_stopped
                        and on_live(list(live), start)
                    ):
                        live_stopped = True
                        _stop(children)
                else:
                    _, wire, warnings, peak, interrupted, crashed_with = message
                    results[index] = ProcessShare(
                        share=WorkerShare.from_wire(wire),
                        cpu_warnings=int(warnings),
                        max_cpu_percent=peak,
                        interrupted=bool(interrupted),
                        crashed=crashed_with,
                    )
                    if start is None and ended_early is None and crashed is None:
                        # No start was sent: this child was stopped (a signal of its own) or
                        # its code failed while it set up, and never said it is ready, or
                        # could not wait for the start. The others would wait for it in vain.
                        ended_early = index
                        _stop(children)
                        give_up = time.monotonic() + SHARE_GRACE_S
    for child in children:
        child.join(timeout=5)
        if child.is_alive():
            child.kill()
    if start is None:
        # Stopped (or broken) before every process was ready: the shares, if any, are empty.
        start = RunClock().now()
    missing = [i for i, r in enumerate(results) if r is None]
    if ended_early is not None:
        return ProcessesRun(start=start, shares=_ended_early(results, ended_early, signalled))
    shares = [r for r in results if r is not None]
    if not_ready is not None:
        raise ProcessesCrashed(
            f"native engine process {not_ready + 1} was not ready after {READY_TIMEOUT_S:g} s",
            exit_code=None,
            shares=shares,
            start=start,
            interrupted=signalled.is_set(),
        )
    if crashed is None and missing:
        crashed = (missing[0], children[missing[0]].exitcode)
    if crashed is not None:
        index, exit_code = crashed
        raise ProcessesCrashed(
            f"native engine process {index + 1} ended without sending its share "
            f"(exit code {exit_code})",
            exit_code=exit_code,
            shares=shares,
            start=start,
            interrupted=signalled.is_set(),
        )
    return ProcessesRun(start=start, shares=shares)


def _ended_early(
    results: Sequence[ProcessShare | None], early: int, signalled: threading.Event
) -> list[ProcessShare]:
    """The shares of a run that one child's share (``early``) ended before its start: that
    share's outcome is the run's. Interrupted, the run is; crashed, the others' stop (the
    parent's SIGTERM) was no interruption of the user's, unless one came (``signalled``)."""
    shares = [r for r in results if r is not None]
    first = results[early]
    assert first is not None
    if first.crashed is None or signalled.is_set():
        return shares
    return [r if r is first else replace(r, interrupted=False) for r in shares]


class ProcessesCrashed(GeneratorCrashedError):
    """A child died without its share (or never got ready); ``shares`` holds those the others
    sent, from the common ``start``; ``interrupted``: a Ctrl-C or SIGTERM had come (the run was
    stopped, not broken)."""

    def __init__(
        self,
        message: str,
        *,
        exit_code: int | None,
        shares: list[ProcessShare],
        start: float,
        interrupted: bool = False,
    ) -> None:
        super().__init__(message, exit_code=exit_code)
        self.shares = shares
        self.start = start
        self.interrupted = interrupted


def _stop(children: Sequence[Any]) -> None:
    """SIGTERM to every child still running: each stops and sends its share."""
    for child in children:
        if child.is_alive() and child.pid is not None:
            with contextlib.suppress(OSError):
                os.kill(child.pid, signal.SIGTERM)


@contextlib.contextmanager
def _pass_sigterm_on(children: Sequence[Any], signalled: threading.Event) -> Any:
    """While the children run, a Ctrl-C or SIGTERM to the parent stops them (they send their
    shares) and sets ``signalled``; a child that also got the terminal's Ctrl-C takes the two as
    one (``share.DUPLICATE_SIGNAL_S``)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def forward(signum: int, _frame: object) -> None:
        signalled.set()
        _stop(children)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    try:
        yield
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)

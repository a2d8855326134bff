"""Several processes on this machine, each running a share of one native run (``--processes``).

Each is a process of its own, started with the spawn method (a fresh interpreter: nothing of the
parent's event loop or sockets is inherited), running ``run_share`` with its plan, and sending
back over a pipe its live status every second and, at its end, its recorder's share
(``LatencyRecorder.to_share``, histograms encoded) with its CPU health. The parent merges the
shares exactly (``merge_share``). A plan with ``live_shares`` also sends its figures so far
every second (without the per-second timeline): the parent's ``on_live`` judges them merged,
and stops every child when it says so (abort on fail). Ctrl-C reaches the whole process
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
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from loadkit.engines.native.share import ShareControl, SharePlan, run_share
from loadkit.exceptions import GeneratorCrashedError
from loadkit.measure.live_status import LiveStatus
from loadkit.measure.recorder import LatencyRecorder
from loadkit.measure.worker_share import WorkerShare

SHARE_GRACE_S = 30.0
"""How long past its plan's end (and its drain) a child may take to send its share."""


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
    """A child's whole life: run the share, send its status and then its share."""

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

    control = ShareControl(watch=live if plan.live_shares else None)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda _signum, _frame: control.stop())
    outcome = run_share(plan, on_status=status, control=control)
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


def run_processes(
    plans: Sequence[SharePlan],
    *,
    on_status: Callable[[list[LiveStatus | None]], None] | None = None,
    on_live: Callable[[list[WorkerShare | None]], bool] | None = None,
) -> list[ProcessShare]:
    """Run each plan in a process of its own and return their shares, in plan order.

    ``on_status`` gets every child's latest live status (None before its first) each time one
    arrives; ``on_live`` every child's latest figures so far (plans with ``live_shares``) each
    time one arrives: True stops every child, as planned (each still sends its share). A
    child that dies without sending its share stops the others (they still send theirs, so what
    they measured is kept); then ``ProcessesCrashed`` carries those shares, ``interrupted`` when
    a Ctrl-C or SIGTERM came first (a child still starting dies of it)."""
    context = multiprocessing.get_context("spawn")
    pipes: list[Connection] = []
    children: list[Any] = []
    for plan in plans:
        ours, theirs = context.Pipe(duplex=False)
        child = context.Process(target=_child, args=(plan, theirs), daemon=True)
        child.start()
        theirs.close()
        pipes.append(ours)
        children.append(child)
    latest: list[LiveStatus | None] = [None] * len(plans)
    live: list[WorkerShare | None] = [None] * len(plans)
    live_stopped = False
    pipes_done: set[int] = set()
    crashed: tuple[int, int | None] | None = None
    results: list[ProcessShare | None] = [None] * len(plans)
    bound = max(plan.duration_s + plan.timeout_s for plan in plans) + SHARE_GRACE_S
    starts = [p.start for p in plans if p.start is not None]
    give_up = time.monotonic() + bound + max([*starts, time.time()]) - time.time()
    signalled = threading.Event()
    with _pass_sigterm_on(children, signalled):
        while any(r is None and i not in pipes_done for i, r in enumerate(results)):
            if time.monotonic() >= give_up:
                break
            waiting = [pipe for i, pipe in enumerate(pipes) if i not in pipes_done]
            ready = multiprocessing.connection.wait(waiting, timeout=0.5)
            for pipe in ready:
                assert isinstance(pipe, Connection)
                index = pipes.index(pipe)
                try:
                    message: tuple[Any, ...] = pipe.recv()
                except (EOFError, OSError):
                    pipes_done.add(index)
                    if results[index] is None and crashed is None:
                        children[index].join(timeout=5)
                        crashed = (index, children[index].exitcode)
                        _stop(children)  # the run is broken: the others end and report
                    continue
                if message[0] == "status":
                    latest[index] = message[1]
                    if on_status is not None:
                        on_status(list(latest))
                elif message[0] == "live":
                    live[index] = WorkerShare.from_wire(message[1])
                    if on_live is not None and not live_stopped and on_live(list(live)):
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
    for child in children:
        child.join(timeout=5)
        if child.is_alive():
            child.kill()
    missing = [i for i, r in enumerate(results) if r is None]
    shares = [r for r in results if r is not None]
    if crashed is None and missing:
        crashed = (missing[0], children[missing[0]].exitcode)
    if crashed is not None:
        index, exit_code = crashed
        raise ProcessesCrashed(
            f"native engine process {index + 1} ended without sending its share "
            f"(exit code {exit_code})",
            exit_code=exit_code,
            shares=shares,
            interrupted=signalled.is_set(),
        )
    return shares


class ProcessesCrashed(GeneratorCrashedError):
    """A child died without its share; ``shares`` holds those the others sent; ``interrupted``:
    a Ctrl-C or SIGTERM had come (the run was stopped, not broken)."""

    def __init__(
        self,
        message: str,
        *,
        exit_code: int | None,
        shares: list[ProcessShare],
        interrupted: bool = False,
    ) -> None:
        super().__init__(message, exit_code=exit_code)
        self.shares = shares
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

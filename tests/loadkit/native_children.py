"""Stand-ins for a native engine process of ``--processes`` (``processes._child``), spawned by
the real parent: they speak its pipe protocol, and fail where a real child's own code would,
which cannot be planted across a spawn otherwise."""

from __future__ import annotations

import signal
import threading
import time
from multiprocessing.connection import Connection

from loadkit.engines.native.share import SharePlan
from loadkit.measure.recorder import LatencyRecorder, RunClock

SETUP_CRASH = "RuntimeError: a bug while the users set up"


def crash_in_setup_or_wait(plan: SharePlan, pipe: Connection) -> None:
    """Process 1 fails in its users' setup and sends its share (crashed) without being ready;
    the others are still setting up: they send their share once stopped (SIGTERM), as a real
    child does."""
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda _signum, _frame: stopped.set())
    crashed = SETUP_CRASH if plan.worker_index == 0 else None
    if crashed is None:
        stopped.wait(30.0)
    recorder = LatencyRecorder(start=RunClock().now(), source=f"process-{plan.worker_index + 1}")
    recorder.finish(end=RunClock().now())
    interrupted = stopped.is_set()
    pipe.send(("share", recorder.to_share().to_wire(), 0, None, interrupted, crashed))
    pipe.close()
    time.sleep(0.05)  # the parent reads the share before the pipe's end

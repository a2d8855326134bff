"""Locust as a child process: its time bound, its live status, and Ctrl-C on its way to it.

Locust monkey-patches its process with gevent, so it never runs inside ``loadkit``: it runs as
the command line of a ``LocustLaunch`` (``python -m locust -f <scenario>,<plugin> ...``), with
the launch's variables (the target, ``LOCUST_HOST``; the url scenario's path, headers and
body) added to our environment. The child gets a session of its own, so a terminal's Ctrl-C
reaches it once, through us (a distributed master then has the chance to collect its workers'
shares before anything else is stopped); a second signal asks again with SIGINT, a third kills
its process group.

What reaches Locust first is SIGTERM, whatever we got: Locust handles it in a libev signal watcher
(shutdown in a greenlet of its own), which always runs. Its Ctrl-C path depends on Python's signal
check landing in a greenlet that passes the KeyboardInterrupt on; seen here, a web-UI Locust now
and then never noticed it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO

from loadkit.engines.locust.launch import LocustLaunch
from loadkit.exceptions import GeneratorStartError
from loadkit.files import open_for_append
from loadkit.measure.live_status import LiveStatus, read_status

STOP_GRACE_S = 30.0
"""Time allowed after the planned end for users to stop and results to be written."""
KILL_GRACE_S = 15.0
ESCALATE_S = 15.0
"""After Ctrl-C, Locust gets this long to end before it is asked harder (SIGINT, then SIGKILL):
stopping users and writing results takes a second or two."""
POLL_S = 0.25
LOG_TAIL_LINES = 25
RELAY_JOIN_S = 5.0
"""How long to wait, once Locust exited, for the last of its output to be relayed (a forked
worker of it may hold the pipe open)."""

ProgressCallback = Callable[[LiveStatus], None]


@dataclass(frozen=True)
class LocustRun:
    """How a Locust process ended."""

    returncode: int
    interrupted: bool
    """A Ctrl-C or SIGTERM reached us and was forwarded."""
    timed_out: bool
    """It outlived its time bound and was stopped."""
    log_tail: str
    """The last lines of its output (when it went to a log file)."""


def run_locust(
    launch: LocustLaunch,
    *,
    log_path: Path | None = None,
    bound_s: float | None = None,
    progress: ProgressCallback | None = None,
) -> LocustRun:
    """Run Locust as ``launch`` says until it exits; forward Ctrl-C and SIGTERM.

    Output goes to ``log_path`` (else ours: its stderr through us, so that its last lines are
    known too, e.g. the line in which Locust refused an argument). With ``progress``, each new
    live status the plugin
    writes (headless runs) is handed to it. With ``bound_s``, a Locust still running after that
    long is stopped (SIGTERM, then SIGKILL).
    """
    command = launch.argv()
    status_path = launch.status_path
    # Appended: the log is a fresh file in the caller's private temporary folder.
    log: IO[bytes] | None = open_for_append(log_path) if log_path is not None else None
    timed_out = False
    tail: deque[str] = deque(maxlen=LOG_TAIL_LINES)
    relay: threading.Thread | None = None
    # Our handlers go in before the child is forked: it then starts with SIGINT at its default
    # (handlers do not survive exec), even when we were started with SIGINT ignored, as a
    # shell's background job is; an inherited "ignore" would make Locust deaf to Ctrl-C.
    with _forward_signals() as forwarder:
        try:
            try:
                process = subprocess.Popen(
                    command,
                    # The target (a password in it too) and the url scenario's headers, body
                    # and query go in Locust's environment, which only its own user can read,
                    # not on its command line, which anyone can.
                    env=launch.child_environ(os.environ),
                    stdin=subprocess.DEVNULL,
                    stdout=log if log is not None else None,
                    stderr=subprocess.STDOUT if log is not None else subprocess.PIPE,
                    # A session of its own: a terminal's Ctrl-C reaches Locust once, through us.
                    start_new_session=True,
                )
            except OSError as exc:
                raise GeneratorStartError(
                    f"cannot start Locust ({command[0]}): {exc.strerror}; reinstall loadkit"
                ) from None
            forwarder.attach(process)
            if process.stderr is not None:
                relay = threading.Thread(target=_relay, args=(process.stderr, tail), daemon=True)
                relay.start()
            try:
                deadline = time.monotonic() + bound_s if bound_s is not None else None
                last: LiveStatus | None = None
                while process.poll() is None:
                    if deadline is not None and time.monotonic() > deadline and not timed_out:
                        timed_out = True
                        _stop(process)
                    forwarder.escalate_if_ignored()
                    if status_path is not None and progress is not None:
                        status = read_status(status_path)
                        if status is not None and status != last:
                            progress(status)
                            last = status
                    # Woken at once when Locust exits (a sleep would add up to POLL_S to
                    # every run's end).
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        process.wait(timeout=POLL_S)
                if status_path is not None and progress is not None:
                    status = read_status(status_path)
                    if status is not None and status != last:
                        progress(status)
            except BaseException:
                # Anything going wrong here (a bug, an error in a progress callback) must not
                # leave Locust running on its own.
                _stop(process)
                raise
        finally:
            if log is not None:
                log.close()
            if relay is not None:
                relay.join(timeout=RELAY_JOIN_S)
    return LocustRun(
        returncode=process.returncode,
        interrupted=forwarder.count > 0,
        timed_out=timed_out,
        log_tail=_tail(log_path) if log_path is not None else "\n".join(tail),
    )


def _relay(stream: IO[bytes], tail: deque[str]) -> None:
    """Copy Locust's stderr to ours as it comes, keeping its last lines."""
    with stream:
        for raw in stream:
            line = raw.decode("utf-8", errors="replace")
            tail.append(line.rstrip("\n"))
            with contextlib.suppress(OSError, ValueError):
                sys.stderr.write(line)
                sys.stderr.flush()


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM (Locust stops its users and writes results), then SIGKILL if it lingers."""
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=KILL_GRACE_S + STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


class _Forwarder:
    def __init__(self) -> None:
        self.process: subprocess.Popen[bytes] | None = None
        self.count = 0
        self.forwarded_at: float | None = None

    def escalate_if_ignored(self) -> None:
        """Ask harder when Locust has not ended ``ESCALATE_S`` after the last signal."""
        if self.forwarded_at is not None and time.monotonic() - self.forwarded_at > ESCALATE_S:
            self.count += 1
            self._forward()

    def attach(self, process: subprocess.Popen[bytes]) -> None:
        """Forward to ``process`` from now on (and now, if a signal came while it started)."""
        self.process = process
        if self.count:
            self._forward()

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.count += 1
        self._forward()

    def _forward(self) -> None:
        process = self.process
        if process is None:
            return
        # First signal: Locust stops its users and writes partial results (SIGTERM, see the
        # module's docstring). A second asks again (SIGINT); a third kills its process group.
        self.forwarded_at = time.monotonic()
        with contextlib.suppress(ProcessLookupError):
            if self.count == 1:
                process.send_signal(signal.SIGTERM)
            elif self.count == 2:
                process.send_signal(signal.SIGINT)
            else:
                os.killpg(process.pid, signal.SIGKILL)


@contextlib.contextmanager
def _forward_signals() -> Iterator[_Forwarder]:
    forwarder = _Forwarder()
    if threading.current_thread() is not threading.main_thread():
        yield forwarder  # signal handlers can only be set from the main thread
        return
    previous = {sig: signal.signal(sig, forwarder) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield forwarder
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _tail(path: Path | None, lines: int = LOG_TAIL_LINES) -> str:
    if path is None:
        return ""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])

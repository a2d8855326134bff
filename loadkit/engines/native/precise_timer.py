"""A one-shot timer on the event loop that fires at an absolute ``perf_counter`` time, precisely.

uvloop's (libuv's) timers count whole milliseconds against a loop clock cached at the start of
each turn, and an idle loop sleeps in ``epoll_wait`` whose timeout is in milliseconds too: a
``call_later`` timer fires up to about 2 ms after the time asked for, and can fire up to a
millisecond before it (it is rounded). Measured on the open model's dispatcher at 5,000/s
against nginx: a median of 1.01 ms late (docs/benchmarks.md, "Native engine").

On Linux, ``TimerfdTimer`` is a ``timerfd`` (CLOCK_MONOTONIC, the clock ``perf_counter`` reads
there) armed at the absolute time with ``TFD_TIMER_ABSTIME`` and watched with
``loop.add_reader``: the kernel's high-resolution timer wakes ``epoll_wait`` at that time, to the
microsecond. Python 3.11 has no ``os.timerfd_*`` (3.13 does) and the PyPI bindings are
unmaintained (pytimerfd 2013, linuxfd 2020, butter 2021), so the two calls are bound with ctypes.
Elsewhere (another OS, a ``perf_counter`` that is not CLOCK_MONOTONIC, no timerfd in libc)
``LoopTimer`` does the same with ``call_later``, at least ``TIMER_FLOOR_S`` ahead.

Both re-arm only when asked for a time sooner than the one armed (or when not armed), so a caller
may ask after every event at no cost: a timer already armed at or before the time asked for
fires then, and the caller, finding nothing due yet, asks again. One that fires early or
spuriously is the caller's to ignore in the same way.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import sys
import time
from collections.abc import Callable
from time import perf_counter
from typing import Protocol

TIMER_FLOOR_S = 0.001
"""``LoopTimer`` waits at least this long (uvloop's timer resolution): uvloop runs a timer due in
under a millisecond on the loop's next turn, and re-arming it so would spin the loop until then."""

CLOCK_MONOTONIC = 1
TFD_TIMER_ABSTIME = 1
TFD_NONBLOCK = os.O_NONBLOCK
TFD_CLOEXEC = os.O_CLOEXEC


class PreciseTimer(Protocol):
    """A one-shot timer calling its callback once the time it is armed at has come."""

    armed_at: float | None
    """The ``perf_counter`` time it is armed at; None when not armed (it fired, or never armed)."""

    def arm_at(self, when: float) -> None:
        """Fire at ``when`` (``perf_counter`` seconds), unless armed already at or before it."""

    def close(self) -> None:
        """Disarm for good and release what the timer holds; it never fires after this."""


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


class _Timerfd:
    """libc's ``timerfd_create`` and ``timerfd_settime``, bound once."""

    def __init__(self) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        self.create = libc.timerfd_create
        self.create.argtypes = [ctypes.c_int, ctypes.c_int]
        self.create.restype = ctypes.c_int
        self.settime = libc.timerfd_settime
        self.settime.argtypes = [
            ctypes.c_int,
            ctypes.c_int,
            ctypes.POINTER(_Itimerspec),
            ctypes.POINTER(_Itimerspec),
        ]
        self.settime.restype = ctypes.c_int


def _load_timerfd() -> _Timerfd | None:
    if not sys.platform.startswith("linux"):
        return None
    if time.get_clock_info("perf_counter").implementation != "clock_gettime(CLOCK_MONOTONIC)":
        return None
    try:
        return _Timerfd()
    except (OSError, AttributeError):  # no libc to load, or one without timerfd
        return None


_TIMERFD = _load_timerfd()


def timerfd_available() -> bool:
    """Whether ``TimerfdTimer`` works here (Linux, ``perf_counter`` on CLOCK_MONOTONIC)."""
    return _TIMERFD is not None


class TimerfdTimer:
    """A ``timerfd`` armed at an absolute CLOCK_MONOTONIC time, read by the loop (Linux)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> None:
        """Open the timerfd (disarmed) and watch it on ``loop``; raise ``OSError`` if the
        kernel refuses one (then use ``LoopTimer``)."""
        assert _TIMERFD is not None, "timerfd_available() is False here: use LoopTimer"
        self._settime = _TIMERFD.settime
        fd: int = _TIMERFD.create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)
        if fd < 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"timerfd_create: {os.strerror(errno)}")
        self._fd: int = fd
        self._loop = loop
        self._callback = callback
        self._spec = _Itimerspec()
        self._spec_ref = ctypes.byref(self._spec)
        self.armed_at: float | None = None
        self.arms = 0
        """How many times it was armed (one ``timerfd_settime`` each)."""
        loop.add_reader(fd, self._expired)

    def arm_at(self, when: float) -> None:
        """Fire at ``when``, unless armed already at or before it (no system call then)."""
        armed = self.armed_at
        if armed is not None and armed <= when:
            return
        if self._fd < 0:
            return
        seconds = int(when)
        value = self._spec.it_value
        value.tv_sec = seconds
        # An it_value of zero would disarm it: a time of 0 is long past, 1 ns fires at once.
        value.tv_nsec = max(int((when - seconds) * 1e9), 0) or (0 if seconds else 1)
        if self._settime(self._fd, TFD_TIMER_ABSTIME, self._spec_ref, None) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"timerfd_settime at {when!r}: {os.strerror(errno)}")
        self.armed_at = when
        self.arms += 1

    def _expired(self) -> None:
        try:
            os.read(self._fd, 8)  # the expiry count: read to clear the readiness
        except BlockingIOError:
            return  # re-armed later after it became readable: not expired any more
        self.armed_at = None
        self._callback()

    def close(self) -> None:
        """Stop watching the timerfd and close it."""
        if self._fd < 0:
            return
        self._loop.remove_reader(self._fd)
        os.close(self._fd)
        self._fd = -1
        self.armed_at = None


class LoopTimer:
    """The fallback: the loop's own ``call_later``, at least ``TIMER_FLOOR_S`` ahead."""

    def __init__(self, loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> None:
        """A timer on ``loop`` calling ``callback``; not armed yet."""
        self._loop = loop
        self._callback = callback
        self._handle: asyncio.TimerHandle | None = None
        self._closed = False
        self.armed_at: float | None = None
        self.arms = 0
        """How many times it was armed (one ``call_later`` each)."""

    def arm_at(self, when: float) -> None:
        """Fire at ``when`` (a tick late at most, and never sooner than ``TIMER_FLOOR_S``
        from now), unless armed already at or before it."""
        armed = self.armed_at
        if self._closed or (armed is not None and armed <= when):
            return
        if self._handle is not None:
            self._handle.cancel()
        self._handle = self._loop.call_later(
            max(when - perf_counter(), TIMER_FLOOR_S), self._expired
        )
        self.armed_at = when
        self.arms += 1

    def _expired(self) -> None:
        self._handle = None
        self.armed_at = None
        self._callback()

    def close(self) -> None:
        """Cancel the pending call, if any."""
        self._closed = True
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self.armed_at = None


def precise_timer(
    loop: asyncio.AbstractEventLoop, callback: Callable[[], None]
) -> TimerfdTimer | LoopTimer:
    """The most precise timer this platform has on ``loop``: a ``TimerfdTimer`` on Linux, else
    (or if the kernel refuses a timerfd) a ``LoopTimer``."""
    if _TIMERFD is not None:
        try:
            return TimerfdTimer(loop, callback)
        except OSError:
            pass  # out of file descriptors, or a sandbox refusing timerfd: the loop's timer
    return LoopTimer(loop, callback)

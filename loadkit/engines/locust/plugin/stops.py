"""Who asked Locust's runner to stop: loadkit, Locust itself, the shape, or the locustfile.

A test can end before loadkit's timer for reasons that mean opposite things: a locustfile that
quits on purpose at a threshold (a valid measurement, ``stopped.by = "locustfile"``), a
``LoadTestShape`` whose ``tick()`` returned None (a complete run), or Locust ending it by itself
(its last worker quit: not the run asked for, ``incomplete``). Locust fires the same
``test_stopping`` for all of them and says nothing of why, so the plugin wraps ``stop``, ``quit``
and ``start`` on the runner instance (Locust's own calls go through the instance too) and looks
at who called:

- from the shape's greenlet: the shape ended (Locust's ``shape_worker`` quits when ``tick()``
  returns None);
- from a file of loadkit's package: loadkit's timer or its handling of an interruption;
- from a file of Locust's package: Locust itself (its ``--run-time``, SIGTERM, a master's last
  worker quitting, the web UI's stop button), unless it is Locust's handler of a ``StopTest``
  that code outside Locust raised (Locust's documented way for a test to stop itself);
- from anywhere else (the locustfile, a plugin it uses, a greenlet it spawned on
  ``runner.quit``): the locustfile, on purpose.

Only the first request of a test counts: ``quit()`` calls ``stop()`` in turn, from Locust's file.

The wrapper also makes a stop from inside the test complete. Locust's ``stop()`` kills the
users' greenlets and the spawning greenlet: called from one of them (a task calling
``self.environment.runner.quit()``, a ``test_start`` or ``spawning_complete`` listener), it
kills its own caller part-way, before ``test_stop`` fires and before ``quit()`` shuts the runner
down; plain Locust then idles with no users until its ``-t``. Such a call runs in a greenlet of
its own instead, and the caller yields once so that the stop begins before its next line (which,
as in Locust, it usually does not live to run).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, Literal

import gevent
import locust
from locust.exception import StopTest

import loadkit

StopOrigin = Literal["loadkit", "locust", "shape", "locustfile"]

_LOCUST_DIR = str(Path(locust.__file__).resolve().parent)
_LOADKIT_DIR = str(Path(loadkit.__file__).resolve().parent)

StopListener = Callable[[StopOrigin, bool], None]
"""Told of every ``stop()``/``quit()`` call: who asked, and whether it was ``quit()``."""
StartListener = Callable[[int], None]
"""Told of every ``start()`` call: the users asked for."""


def _inside(path: str, folder: str) -> bool:
    try:
        resolved = str(Path(path).resolve())
    except (OSError, ValueError):
        return False
    return resolved == folder or resolved.startswith(folder + "/")


def _raised_outside_locust(traceback: TracebackType | None) -> bool:
    """Whether the innermost frame of ``traceback`` is neither Locust's nor loadkit's."""
    if traceback is None:
        return False
    while traceback.tb_next is not None:
        traceback = traceback.tb_next
    path = traceback.tb_frame.f_code.co_filename
    return not _inside(path, _LOCUST_DIR) and not _inside(path, _LOADKIT_DIR)


def _stop_test_from_user_code(caller: FrameType) -> bool:
    """Whether Locust's caller is its handler of a greenlet that died of a ``StopTest`` raised
    by user code (``locust.runners.locust_exception_handler``; the greenlet is among its
    locals). A ``StopTest`` Locust raises itself (an ``HttpUser`` without a host) is not a stop
    on purpose."""
    for value in list(caller.f_locals.values()):
        if isinstance(value, gevent.Greenlet):
            exception = value.exception
            if isinstance(exception, StopTest):
                return _raised_outside_locust(exception.__traceback__)
    return False


def stop_origin(caller: FrameType | None, runner: Any) -> StopOrigin:
    """Who asked ``runner`` to stop, from the frame that called ``stop()``/``quit()`` (None: a
    greenlet spawned on the method itself, which only user code does)."""
    if runner.shape_greenlet is not None and gevent.getcurrent() is runner.shape_greenlet:
        return "shape"
    if caller is None:
        return "locustfile"
    path = caller.f_code.co_filename
    if _inside(path, _LOADKIT_DIR):
        return "loadkit"
    if _inside(path, _LOCUST_DIR):
        return "locustfile" if _stop_test_from_user_code(caller) else "locust"
    return "locustfile"


def killed_by_stop(runner: Any) -> bool:
    """Whether ``runner.stop()`` would kill the current greenlet before it completes: one of
    the users' greenlets, or the spawning greenlet still running."""
    current = gevent.getcurrent()
    spawning = runner.spawning_greenlet
    if spawning is not None and current is spawning and not spawning.ready():
        return True
    return any(current is user_greenlet for user_greenlet in list(runner.user_greenlets))


def observe_runner(runner: Any, *, on_stop: StopListener, on_start: StartListener) -> None:
    """Wrap ``runner``'s ``stop``, ``quit`` and ``start`` on the instance, telling the listeners
    before the call goes on to Locust unchanged (in a greenlet of its own when the caller is one
    that the stop kills)."""
    for name in ("stop", "quit"):
        original = getattr(runner, name)

        def stop_or_quit(
            *args: Any, _original: Any = original, _quit: bool = name == "quit", **kwargs: Any
        ) -> Any:
            on_stop(stop_origin(sys._getframe(0).f_back, runner), _quit)
            if killed_by_stop(runner):
                gevent.spawn(_original, *args, **kwargs)
                gevent.sleep(0)  # the stop begins (and, as in Locust, usually ends the caller)
                return None
            return _original(*args, **kwargs)

        setattr(runner, name, stop_or_quit)
    original_start = runner.start

    def start(*args: Any, **kwargs: Any) -> Any:
        users = kwargs.get("user_count", args[0] if args else None)
        if isinstance(users, int):
            on_start(users)
        return original_start(*args, **kwargs)

    runner.start = start

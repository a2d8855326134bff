"""Exceptions raised by user code outside tasks, seen where Locust logs them.

A task's exception reaches the plugin through Locust's ``user_error`` event. Others do not: an
exception in a locustfile's event listener (a ``test_start`` hook), in a greenlet (a
``LoadTestShape.tick()``, which runs on the master of a distributed run) or in ``on_stop`` is
caught by Locust, logged, and (but for ``on_stop``) only turns its exit code into 2. Under
``loadkit load`` Locust's log is a temporary file: without this, such a run passed clean.

Locust logs each of them at one place, with one message template, while the exception is at
hand: ``EventHook.fire`` and ``TaskSet.run`` from inside their ``except`` block (so
``sys.exc_info()`` is live while the log record is handled), ``greenlet_exception_logger`` with
``exc_info``. A logging handler on the loggers those records reach (the root logger, and
``locust``, which does not propagate) picks out exactly those records by template and by the
file of Locust's that logged them, and hands the exception on. One whose traceback has no frame
of user code (Locust's own failure, or loadkit's) is left to Locust's log.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

import locust

from loadkit.engines.locust.plugin.user_code import innermost_user_frame

LOCUST_TEMPLATES = frozenset(
    {
        # locust/event.py, EventHook.fire: a listener raised (inside its except block).
        "Uncaught exception in event handler: \n%s",
        # locust/log.py, greenlet_exception_logger: a greenlet died (exc_info given).
        "Unhandled exception in greenlet: %s",
        # locust/user/task.py, TaskSet.run: on_stop raised (inside its except block).
        "Uncaught exception in on_stop: \n%s",
    }
)
"""The messages with which Locust logs an exception it caught from user code (Locust 2.47;
``tests/loadkit/test_locust_log.py`` checks that its source still has them)."""

LOCUST_LOGGERS = ("", "locust")
"""Where those records end up: the root logger (``logging.error``) and ``locust`` (its modules'
loggers; it does not propagate to the root)."""

_LOCUST_DIR = Path(locust.__file__).resolve().parent

ExceptionSink = Callable[[BaseException, TracebackType | None], None]
"""Told of each exception user code raised outside a task: the exception and its traceback."""


def caught_exception(
    record: logging.LogRecord,
) -> tuple[BaseException, TracebackType | None] | None:
    """The exception of user code that Locust caught and logs in ``record`` (None when the
    record is anything else)."""
    if not isinstance(record.msg, str) or record.msg not in LOCUST_TEMPLATES:
        return None
    if not Path(record.pathname).resolve().is_relative_to(_LOCUST_DIR):
        return None  # the same words logged by someone else
    exc_info = record.exc_info
    if not exc_info or exc_info[1] is None:
        exc_info = sys.exc_info()  # logged from inside Locust's except block
    exception, tb = exc_info[1], exc_info[2]
    if exception is None or isinstance(exception, SystemExit):
        return None  # sys.exit() in a greenlet: Locust logs it too, as no error
    if innermost_user_frame(tb) is None:
        return None  # Locust's own failure (or loadkit's): not the user's code
    return exception, tb


class UserExceptionLog(logging.Handler):
    """A logging handler that hands each exception of user code Locust logs to a sink."""

    def __init__(self, sink: ExceptionSink) -> None:
        """Hand every exception of user code that Locust logs to ``sink``."""
        super().__init__()
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        """Pass the record's exception on, when it is one of user code that Locust caught."""
        try:
            caught = caught_exception(record)
            if caught is not None:
                self.sink(*caught)
        except Exception:
            # Our bug must never break Locust's logging: reported as logging reports its own.
            self.handleError(record)


def watch_locust_log(sink: ExceptionSink) -> UserExceptionLog:
    """Install a ``UserExceptionLog`` for ``sink`` on the loggers Locust logs those exceptions
    to, in place of one installed before (Locust's ``init`` fires once per process, and a
    ``--processes`` child inherits its parent's loggers)."""
    handler = UserExceptionLog(sink)
    for name in LOCUST_LOGGERS:
        logger = logging.getLogger(name)
        for old in [h for h in logger.handlers if isinstance(h, UserExceptionLog)]:
            logger.removeHandler(old)
        logger.addHandler(handler)
    return handler

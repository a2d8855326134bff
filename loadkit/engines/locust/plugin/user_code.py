"""Where in user code an exception was raised: the innermost frame that is not Locust's,
gevent's, loadkit's, the standard library's or an installed package's.

The locustfile (and the modules of the user's own project next to it) is user code; so are the
scenarios bundled with loadkit (``loadkit/_bundled``), though they sit inside loadkit's folder.
A "No tasks defined on X" raised by Locust itself has no user frame: it is placed at the user
class's definition instead.
"""

from __future__ import annotations

import inspect
import os
import sysconfig
import traceback
from functools import cache
from types import TracebackType

import gevent
import locust

import loadkit


def _folder(module_file: str | None) -> str | None:
    return os.path.dirname(os.path.realpath(module_file)) + os.sep if module_file else None


def _not_user_folders() -> tuple[str, ...]:
    folders = {
        _folder(locust.__file__),
        _folder(gevent.__file__),
        _folder(loadkit.__file__),
        *(
            os.path.realpath(path) + os.sep
            for name in ("stdlib", "platstdlib", "purelib", "platlib")
            if (path := sysconfig.get_paths().get(name))
        ),
    }
    return tuple(sorted(folder for folder in folders if folder))


NOT_USER_FOLDERS = _not_user_folders()
USER_FOLDERS = (os.path.join(os.path.dirname(os.path.realpath(loadkit.__file__)), "_bundled"),)
"""Inside a folder above, yet user code: the scenarios shipped with loadkit."""


@cache
def is_user_file(filename: str) -> bool:
    """Whether a frame's file is user code (cached: there are few files, and many frames)."""
    if filename.startswith("<"):  # <frozen ...>, <string>: not a file of the user's
        return False
    path = os.path.realpath(filename)
    if path.startswith(USER_FOLDERS):
        return True
    return not path.startswith(NOT_USER_FOLDERS)


def innermost_user_frame(tb: TracebackType | None) -> tuple[str, int, str] | None:
    """(file, line, function) of the innermost frame of ``tb`` in user code; None when none is
    (Locust's, gevent's or loadkit's own failure)."""
    found = None
    while tb is not None:
        code = tb.tb_frame.f_code
        if is_user_file(code.co_filename):
            found = (code.co_filename, tb.tb_lineno, code.co_name)
        tb = tb.tb_next
    return found


def where_raised(tb: TracebackType | None, user_instance: object = None) -> str:
    """``file.py:LINE in function`` of the innermost user frame of ``tb``; without one, the
    class of ``user_instance`` (the User or TaskSet that ran it) where it is defined."""
    found = innermost_user_frame(tb)
    if found is not None:
        filename, line, function = found
        return f"{os.path.basename(filename)}:{line} in {function}"
    if user_instance is not None:
        # Locust's own DefaultTaskSet runs a User's tasks: the place is the User's class then.
        cls = type(user_instance)
        owner = getattr(user_instance, "user", None)
        if not _defined_in_user_code(cls) and owner is not None:
            cls = type(owner)
        return _class_place(cls)
    return "(unknown)"


def _defined_in_user_code(cls: type) -> bool:
    try:
        filename = inspect.getsourcefile(cls)
    except TypeError:
        return False
    return filename is not None and is_user_file(filename)


_CLASS_PLACES: dict[type, str] = {}


def _class_place(cls: type) -> str:
    place = _CLASS_PLACES.get(cls)
    if place is None:
        try:
            filename = inspect.getsourcefile(cls) or "?"
            line = inspect.getsourcelines(cls)[1]
            place = f"{os.path.basename(filename)}:{line} in class {cls.__name__}"
        except (OSError, TypeError):
            place = f"class {cls.__name__}"
        _CLASS_PLACES[cls] = place
    return place


def type_name(exception: BaseException) -> str:
    """The exception's class as people know it: ``AttributeError``, ``mylib.errors.Denied``."""
    cls = type(exception)
    module = cls.__module__
    return (
        cls.__qualname__ if module in ("builtins", "__main__") else f"{module}.{cls.__qualname__}"
    )


def format_traceback(exception: BaseException, tb: TracebackType | None) -> str:
    """The traceback as Python prints it (``Traceback (most recent call last): ...``)."""
    return "".join(traceback.format_exception(type(exception), exception, tb))

"""Every file loadkit writes goes through here: atomic, never through a symlink, umask honoured.

``write_file`` is the one way an output file (results, gate reports, compare and errors reports,
the plugin's status file) is written: a temp file in the same folder, flushed to disk, then
renamed over the output path. Readers see the old file or the new one, never half of one; and a
rename replaces whatever *name* is at the path, so a symlink planted there is replaced by the
new file, never written through (resolving the path first, as ``Path.resolve()`` does, would
write through it: never resolve an output path's last component).

``open_for_append`` is for the two files that are appended to as they grow, not replaced: a
child process's log (the bundled service's, Locust's) and ``$GITHUB_STEP_SUMMARY``, which the CI
runner owns and other steps append to as well. They follow the same rule: a symlink at the
path is replaced by a new file of ours (``O_NOFOLLOW``), never appended through.

New files get mode ``0o666 & ~umask``, as ``open()`` gives (``tempfile.mkstemp`` would make
every output ``0o600`` whatever the umask).

Nothing else in ``loadkit`` opens a file for writing; tests/loadkit/test_files.py checks that on
the source.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import tempfile
from pathlib import Path
from typing import BinaryIO

from loadkit.exceptions import ConfigError

NEW_FILE_MODE = 0o666
"""Mode asked for new files; the kernel takes the umask off, as for ``open()``."""
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_TEMP_ATTEMPTS = 100


def write_file(path: Path, data: bytes, *, durable: bool = True) -> Path:
    """Replace ``path`` with a file holding ``data``, atomically; returns ``path``.

    The parent folders are created. A symlink at ``path`` is replaced, its target untouched.
    With ``durable`` (the default) the data and the rename are synced to disk before this
    returns; without it (a status file rewritten every second) only the rename's atomicity
    holds. Raises ``OSError`` as the system reports it (``write_output`` words it for a user).
    """
    folder = path.parent
    folder.mkdir(parents=True, exist_ok=True)
    tmp, fd = _create_temp(folder, path.name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        # rename(2) replaces the name at ``path``: a symlink there is replaced, not followed.
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    if durable:
        _sync_folder(folder)
    return path


def write_output(path: Path, data: bytes, *, option: str) -> Path:
    """``write_file`` for a file the user asked for with ``option`` (``--out``...): a path that
    cannot be written is a ``ConfigError`` naming both, not a traceback."""
    try:
        return write_file(path, data)
    except OSError as exc:
        raise ConfigError(f"{option} {path}: cannot write: {_why(exc, path)}") from None


def open_for_append(path: Path) -> BinaryIO:
    """Open ``path`` to append to (created if missing, with its parent folders).

    A symlink at ``path`` is removed and a new file created in its place: appended output never
    lands in a file the link points to. The caller closes the file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | _NOFOLLOW | _CLOEXEC
    try:
        fd = os.open(path, flags, NEW_FILE_MODE)
    except OSError as exc:
        # O_NOFOLLOW on a symlink fails with ELOOP (EMLINK on some BSDs).
        if exc.errno not in (errno.ELOOP, errno.EMLINK) or not path.is_symlink():
            raise
        path.unlink()
        # O_EXCL: if another link appeared meanwhile, fail rather than follow it.
        fd = os.open(path, flags | os.O_EXCL, NEW_FILE_MODE)
    return os.fdopen(fd, "ab")


def append_file(path: Path, data: bytes) -> Path:
    """Append ``data`` to ``path`` in one write (see ``open_for_append``); returns ``path``."""
    with open_for_append(path) as handle:
        handle.write(data)
    return path


def _create_temp(folder: Path, name: str) -> tuple[Path, int]:
    # tempfile.mkstemp would do, but it creates 0o600 whatever the umask; O_EXCL | O_NOFOLLOW
    # make the same guarantees (a fresh file of ours, never an existing name or link).
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC
    for _ in range(_TEMP_ATTEMPTS):
        tmp = folder / f".{name}.{secrets.token_hex(6)}.tmp"
        try:
            return tmp, os.open(tmp, flags, NEW_FILE_MODE)
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary file name", str(folder))


def _sync_folder(folder: Path) -> None:
    # The rename is durable once the folder's entry is on disk; a system that cannot open or
    # sync a folder (some network file systems) still renamed atomically.
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _why(exc: OSError, path: Path) -> str:
    where = f" ({exc.filename})" if exc.filename and str(exc.filename) != str(path) else ""
    return f"{exc.strerror or exc}{where}"


def scratch_file() -> BinaryIO:
    """An unnamed temporary file to write to and read back (a child process's log): it has no
    path, so there is nothing to follow and nothing left behind; closed by the caller."""
    return tempfile.TemporaryFile()

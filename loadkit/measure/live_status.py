"""The live status of a running load test: what the Locust plugin tells the ``loadkit`` process.

The plugin runs inside Locust's process (gevent); the launcher runs in the ``loadkit`` process. The
plugin replaces a small JSON file about once a second and the launcher polls it for its progress
bar and live line. A file, not a pipe: Locust owns its process's stdout and stderr, and a file
replaced atomically is never read half-written.
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import orjson

from loadkit.files import write_file

RunState = Literal["starting", "running", "stopping", "done"]


@dataclass(frozen=True)
class LiveStatus:
    """One snapshot of a run, as the live line shows it.

    ``rps`` and ``error_rate`` are averaged over the last few seconds (the plugin's
    ``RATE_WINDOW_S``: a master hears from its workers only every 3 s); ``p95_ms`` is the last
    closed second's (on a distributed master, the highest of the workers' last-second P95s as of
    their latest reports). ``requests`` counts the whole run so far.
    """

    state: RunState
    elapsed_s: float
    users: int
    requests: int
    rps: float
    error_rate: float
    p95_ms: float | None
    results_path: str | None = None
    target_rate: float | None = None
    """Open model: the iterations/s the timetable asks for now (all workers); None: closed."""
    achieved_rate: float | None = None
    """Open model: iterations started per second (over the same window as ``rps``)."""
    queue: int | None = None
    """Open model: iterations due that wait for a free user (in-flight bound reached)."""
    service_p95_ms: float | None = None
    """Open model: the P95 of the last closed second's service times (from the send, where
    ``p95_ms`` counts from the due time), as ``p95_ms`` is taken; None in a closed run."""


def write_status(path: Path, status: LiveStatus) -> None:
    """Replace the status file with ``status`` (rename: readers never see half of it)."""
    # No fsync, unlike results files: a status lost in a crash is worthless anyway, and the
    # plugin writes it every second from Locust's event loop, which must not block on the disk.
    write_file(path, orjson.dumps(asdict(status)), durable=False)


def read_status(path: Path) -> LiveStatus | None:
    """The latest status, or None when there is none yet (or it cannot be read)."""
    with contextlib.suppress(FileNotFoundError, orjson.JSONDecodeError, TypeError, OSError):
        data = orjson.loads(path.read_bytes())
        if isinstance(data, dict):
            return LiveStatus(**data)
    return None

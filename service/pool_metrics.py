"""Database pool health: the pool's figures, the checkouts that had to wait, the "db_pool" line.

``PoolMonitor`` reads the SQLAlchemy pool (size, in use, idle, overflow) and counts the checkouts
that found it saturated (no idle connection and no room to open one: they waited) and those that
gave up (db_pool_exhausted). ``PoolMetricsReporter`` writes one JSON line with event "db_pool"
every ``ENGINES_POOL_METRICS_INTERVAL_S`` (DESIGN.md, contract 3), started and stopped by the
app's lifespan (with a last line at shutdown); a tick that fails is logged and the next one runs.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import asdict, dataclass

from sqlalchemy.pool import Pool

from service.logs import get_logger


@dataclass(frozen=True, slots=True)
class PoolSnapshot:
    """The pool at one moment. Figures a pool does not have (e.g. SQLite ``:memory:``'s
    ``StaticPool``) are None."""

    size: int | None
    """Connections the pool keeps (ENGINES_DB_POOL_SIZE)."""
    max_size: int | None
    """size + max overflow: the most connections ever open at once."""
    checked_out: int | None
    """Connections in use by a request."""
    checked_in: int | None
    """Idle connections waiting in the pool."""
    overflow: int | None
    """Connections open beyond ``size`` (0 until the pool is full)."""


class PoolMonitor:
    """Reads one pool's figures and counts waits and timeouts (cumulative since start-up)."""

    def __init__(self, pool: Pool, *, max_overflow: int) -> None:
        self.pool = pool
        self.max_overflow = max_overflow
        self.waited = 0
        """Checkouts that found the pool saturated and had to wait for a connection (whether
        they then got one or gave up)."""
        self.timed_out = 0
        """Of those, the checkouts that waited past the pool timeout (db_pool_exhausted)."""

    def snapshot(self) -> PoolSnapshot:
        """The pool's figures now."""
        pool = self.pool
        size = _call_int(pool, "size")
        overflow = _call_int(pool, "overflow")
        return PoolSnapshot(
            size=size,
            max_size=size + self.max_overflow if size is not None else None,
            checked_out=_call_int(pool, "checkedout"),
            checked_in=_call_int(pool, "checkedin"),
            # QueuePool counts overflow from -size up; below 0 just means "not full yet".
            overflow=max(0, overflow) if overflow is not None else None,
        )

    def saturated(self) -> bool:
        """True when a checkout now would wait: nothing idle and no room to open a connection."""
        snap = self.snapshot()
        if snap.max_size is None or snap.checked_out is None or snap.checked_in is None:
            return False
        return snap.checked_in == 0 and snap.checked_out >= snap.max_size

    def note_checkout(self, *, waited: bool) -> None:
        """Count one checkout (``waited``: it found the pool saturated)."""
        if waited:
            self.waited += 1

    def note_timeout(self) -> None:
        """Count one checkout that waited and gave up."""
        self.waited += 1
        self.timed_out += 1


def _call_int(pool: Pool, name: str) -> int | None:
    method = getattr(pool, name, None)
    if method is None:
        return None
    value = method()
    return value if isinstance(value, int) else None


class PoolMetricsReporter:
    """Logs the "db_pool" line every ``interval_s`` from a background task."""

    def __init__(self, monitor: PoolMonitor, *, interval_s: float) -> None:
        self.monitor = monitor
        self.interval_s = interval_s
        self._task: asyncio.Task[None] | None = None
        self._last_waited = 0
        self._last_timed_out = 0

    def start(self) -> None:
        """Start the periodic task (the lifespan's start-up)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="db_pool_metrics")

    async def stop(self) -> None:
        """Stop the periodic task and write a last line (the lifespan's shutdown), so the waits
        of the final, partial interval are not lost."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            self._tick()

    def _tick(self) -> None:
        try:
            self.report()
        except Exception as exc:
            # Metrics are for the operator; a broken tick must never take the service down.
            get_logger().error("db_pool_metrics_failed", exc_info=exc)

    def report(self) -> None:
        """Write one "db_pool" line: the pool now, and the waits since the previous line."""
        monitor = self.monitor
        waited, timed_out = monitor.waited, monitor.timed_out
        get_logger().info(
            "db_pool",
            **asdict(monitor.snapshot()),
            waited=waited - self._last_waited,
            timed_out=timed_out - self._last_timed_out,
            interval_s=self.interval_s,
        )
        self._last_waited, self._last_timed_out = waited, timed_out

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            self._tick()

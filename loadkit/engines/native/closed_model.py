"""The closed model: ``concurrency`` requests in flight, each connection sending its next
request the moment the last one ended (no think time), until the run stops."""

from __future__ import annotations

from time import perf_counter

from loadkit.engines.native.pool import Pool


class ClosedModel:
    """Keeps ``concurrency`` requests in flight on ``pool``."""

    def __init__(self, *, pool: Pool, concurrency: int) -> None:
        """Take over ``pool``'s ``on_done``: every request that ends starts the next one."""
        self.pool = pool
        self.concurrency = concurrency
        self.stopped = False
        pool.on_done = self._done

    def start(self) -> None:
        """Send the first request of each connection."""
        now = perf_counter()
        for _ in range(self.concurrency):
            self.pool.send(now, now)

    def _done(self, end: float) -> None:
        if not self.stopped:
            now = perf_counter()
            self.pool.send(now, now)

    def stop(self) -> None:
        """Send nothing more (requests in flight are cut by the caller)."""
        self.stopped = True

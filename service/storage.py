"""The storage cache and the one lock that guards it, taken only through ``with_storage``.

The service keeps a write-through cache (users by email, items by id) in front of the database.
One ``asyncio.Lock`` guards it, and the only code that acquires that lock is
``Storage.with_storage``: it waits at most ``lock_timeout_s`` and then raises
``StorageLockTimeout`` (503 with Retry-After) instead of queueing forever.

The callable passed to ``with_storage`` is synchronous on purpose: it can only read and write the
cache's dicts, so no handler can await, hash a password, sign a token or touch the database while
holding the lock. Handlers go acquire → read → drop → work → reacquire → write, e.g.::

    user = await storage.with_storage_traced("login", lambda cache: cache.users.get(email))
    ok = await passwords.verify(password, user.password_hash)     # lock not held

The rule for writes (issue 13): **a request whose database write took effect is answered as a
success; the cache never makes it fail, and never contradicts a committed row.** So the cache
update that follows a commit is not a ``with_storage`` call (which may time out, 503, after the
row was saved): it is handed to ``Storage.write_behind``, which never waits and never fails. It
queues the update; whoever takes the lock next applies the queue before running its own
callable, so no reader can see the cache as it was before the commit. Waiting uses of the lock
stay *before* a write (e.g. delete's first forget), where a timeout means nothing was written.
The cache holds only copies of committed rows, never "this does not exist": a negative entry
could outlive the commit that contradicts it (issue 13: an account locked out until restart).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from opentelemetry.trace import Tracer

from service.errors import StorageLockTimeout
from service.faults import in_fault_scope
from service.tracing import child_span

T = TypeVar("T")
K = TypeVar("K")
V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class UserRecord:
    """A user as cached: immutable, so a reader can keep it after the lock is dropped."""

    id: int
    email: str
    password_hash: bytes
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ItemRecord:
    """An item as cached."""

    id: int
    owner_id: int
    name: str
    description: str
    created_at: datetime


class BoundedTable(dict[K, V]):
    """A dict that forgets its oldest entry past ``max_entries`` (insertion order)."""

    def __init__(self, max_entries: int) -> None:
        super().__init__()
        self.max_entries = max_entries

    def put(self, key: K, value: V) -> None:
        """Insert or replace, evicting the oldest entries past the bound."""
        self.pop(key, None)
        self[key] = value
        while len(self) > self.max_entries:
            del self[next(iter(self))]


class StorageCache:
    """The cached tables. Touch only from inside a ``with_storage`` callable (or a queued
    ``write_behind`` update, which runs under the lock too)."""

    def __init__(self, max_entries: int) -> None:
        self.users: BoundedTable[str, UserRecord] = BoundedTable(max_entries)
        self.items: BoundedTable[int, ItemRecord] = BoundedTable(max_entries)
        self.items_generation = 0
        """Bumped on every item delete: a read that missed the cache fills it from the database
        only if no delete happened meanwhile, so a deleted item is never cached again."""

    def put_user(self, record: UserRecord) -> None:
        """Cache a committed user (registered, or read from the database)."""
        self.users.put(record.email, record)

    def refresh_user(self, email: str, record: UserRecord | None) -> None:
        """Make the cache agree with what the database just said about ``email``: cache the
        user it found, or drop any copy when it found none. Either way the same work, so
        that the caller's timing does not tell which."""
        if record is None:
            self.users.pop(email, None)
        else:
            self.users.put(email, record)

    def clear(self) -> None:
        """Forget everything (a miss reads the database); reads in progress must not fill."""
        self.users.clear()
        self.items.clear()
        self.items_generation += 1

    def fill_item(self, item: ItemRecord, seen_generation: int) -> None:
        """Cache an item read from the database, unless a delete raced the read."""
        if self.items_generation == seen_generation:
            self.items.put(item.id, item)

    def forget_item(self, item_id: int) -> None:
        """Drop a deleted item and invalidate reads that started before the delete."""
        self.items.pop(item_id, None)
        self.items_generation += 1

    def item_lookup(self, item_id: int) -> tuple[ItemRecord | None, int]:
        """The cached item (or None) and the generation to pass to ``fill_item``."""
        return self.items.get(item_id), self.items_generation


@dataclass(slots=True)
class LockTimings:
    """How long one endpoint waited for and held the storage lock (seconds)."""

    acquisitions: int = 0
    timeouts: int = 0
    wait_total_s: float = 0.0
    wait_max_s: float = 0.0
    hold_total_s: float = 0.0
    hold_max_s: float = 0.0

    def record(self, wait_s: float, hold_s: float) -> None:
        """Add one acquisition."""
        self.acquisitions += 1
        self.wait_total_s += wait_s
        self.wait_max_s = max(self.wait_max_s, wait_s)
        self.hold_total_s += hold_s
        self.hold_max_s = max(self.hold_max_s, hold_s)


LockObserver = Callable[[str, float, float | None], None]
"""Called with (endpoint, wait_s, hold_s) after each traced use; hold_s is None on a timeout."""


@dataclass
class Storage:
    """The cache, its lock, and the per-endpoint lock timings."""

    lock_timeout_s: float
    cache_max_entries: int = 100_000
    max_pending_writes: int = 10_000
    """Bound of the ``write_behind`` queue; past it the queue is dropped and the whole cache
    cleared at the next acquisition instead (memory stays bounded, the cache stays truthful)."""
    fault_lock_hold_s: float = 0.0
    """The lock-hold fault (ENGINES_FAULT_LOCK_HOLD_MS; 0 = off): requests in fault scope keep
    the lock this long after their callable, as the handlers of the original freeze did."""
    tracer: Tracer | None = None
    """Spans ``storage.lock_wait`` and ``storage.lock_hold`` per use (None: tracing off)."""
    cache: StorageCache = field(init=False)
    timings: dict[str, LockTimings] = field(default_factory=dict, init=False)
    observers: list[LockObserver] = field(default_factory=list, init=False)
    """Hooks for metrics (e.g. Prometheus histograms); must be fast and must not raise."""
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False, repr=False)
    _pending: deque[Callable[[StorageCache], object]] = field(
        default_factory=deque, init=False, repr=False
    )
    _clear_pending: bool = field(default=False, init=False, repr=False)

    def __post_init__(self) -> None:
        self.cache = StorageCache(self.cache_max_entries)

    async def with_storage(self, fn: Callable[[StorageCache], T]) -> T:
        """Run ``fn(cache)`` under the storage lock, waiting at most ``lock_timeout_s``.

        ``fn`` must be a quick, synchronous read or write of the cache. Raises
        ``StorageLockTimeout`` when the lock is not free in time.
        """
        result, _, _ = await self._run_locked(fn)
        return result

    def write_behind(self, fn: Callable[[StorageCache], object]) -> None:
        """Queue ``fn(cache)``, a cache update that follows a committed database write.

        Synchronous on purpose: it never waits for the lock, so it can neither time out nor be
        cancelled, and the request that committed is answered as the success it is. The next
        holder of the lock applies the queue, in order, before its own callable. ``fn`` must be
        as quick as a ``with_storage`` callable, and right whenever it runs: copy committed
        rows in, or drop entries (never note an absence).
        """
        if self._clear_pending:
            return  # the whole cache is to be cleared anyway
        if len(self._pending) >= self.max_pending_writes:
            self._pending.clear()
            self._clear_pending = True
            return
        self._pending.append(fn)

    @property
    def pending_writes(self) -> int:
        """Queued ``write_behind`` updates not applied yet."""
        return len(self._pending)

    async def with_storage_traced(self, endpoint: str, fn: Callable[[StorageCache], T]) -> T:
        """``with_storage``, recording the wait for and the hold of the lock under ``endpoint``."""
        timings = self.timings.setdefault(endpoint, LockTimings())
        started = time.perf_counter()
        try:
            result, wait_s, hold_s = await self._run_locked(fn)
        except StorageLockTimeout:
            timings.timeouts += 1
            self._notify(endpoint, time.perf_counter() - started, None)
            raise
        timings.record(wait_s, hold_s)
        self._notify(endpoint, wait_s, hold_s)
        return result

    async def _run_locked(self, fn: Callable[[StorageCache], T]) -> tuple[T, float, float]:
        started = time.perf_counter()
        with child_span(self.tracer, "storage.lock_wait"):
            try:
                async with asyncio.timeout(self.lock_timeout_s):
                    await self._lock.acquire()
            except TimeoutError:
                raise StorageLockTimeout(
                    f"storage lock not acquired within {self.lock_timeout_s:g} s, retry later"
                ) from None
        acquired = time.perf_counter()
        try:
            with child_span(self.tracer, "storage.lock_hold"):
                self._apply_pending()
                result = fn(self.cache)
                hold_s = self.fault_lock_hold_s
                if hold_s > 0 and in_fault_scope():
                    with child_span(self.tracer, "fault.lock_hold"):
                        # The one sanctioned await under the lock: the lock-hold fault (off by
                        # default) reproduces the original freeze, when handlers awaited while
                        # holding it.
                        await asyncio.sleep(hold_s)  # lockaudit: ignore[LK002] lock-hold fault
        finally:
            self._lock.release()
        return result, acquired - started, time.perf_counter() - acquired

    def _apply_pending(self) -> None:
        """Run the queued ``write_behind`` updates (the caller holds the lock)."""
        if self._clear_pending:
            self._clear_pending = False
            self._pending.clear()
            self.cache.clear()
        pending = self._pending
        while pending:
            update = pending.popleft()
            try:
                update(self.cache)
            except Exception:
                # Not this request's failure to answer: a cache that may have missed an update
                # is cleared instead (a miss reads the database).
                self.cache.clear()

    def _notify(self, endpoint: str, wait_s: float, hold_s: float | None) -> None:
        for observer in self.observers:
            observer(endpoint, wait_s, hold_s)

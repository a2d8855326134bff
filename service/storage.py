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
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from service.errors import StorageLockTimeout
from service.faults import in_fault_scope

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
    """The cached tables. Touch only from inside a ``with_storage`` callable."""

    def __init__(self, max_entries: int) -> None:
        self.users: BoundedTable[str, UserRecord] = BoundedTable(max_entries)
        self.unknown_emails: BoundedTable[str, bool] = BoundedTable(max_entries)
        """Emails a login found no account for: the next login for one skips the database
        read, as one for a cached user does, so that neither the work nor the time tells
        whether an account exists."""
        self.items: BoundedTable[int, ItemRecord] = BoundedTable(max_entries)
        self.items_generation = 0
        """Bumped on every item delete: a read that missed the cache fills it from the database
        only if no delete happened meanwhile, so a deleted item is never cached again."""

    def user_lookup(self, email: str) -> tuple[UserRecord | None, bool]:
        """The cached user (or None), and whether the email is known to have no account."""
        record = self.users.get(email)
        return record, record is None and email in self.unknown_emails

    def put_user(self, record: UserRecord) -> None:
        """Cache a user (registered or read from the database); its email is no longer unknown."""
        self.users.put(record.email, record)
        self.unknown_emails.pop(record.email, None)

    def note_unknown_email(self, email: str) -> None:
        """Remember that a login found no account for ``email``, unless a registration cached
        one meanwhile (the login's database read may predate it)."""
        if email not in self.users:
            self.unknown_emails.put(email, True)

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
    fault_lock_hold_s: float = 0.0
    """The lock-hold fault (ENGINES_FAULT_LOCK_HOLD_MS; 0 = off): requests in fault scope keep
    the lock this long after their callable, as the handlers of the original freeze did."""
    cache: StorageCache = field(init=False)
    timings: dict[str, LockTimings] = field(default_factory=dict, init=False)
    observers: list[LockObserver] = field(default_factory=list, init=False)
    """Hooks for metrics (e.g. Prometheus histograms); must be fast and must not raise."""
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        self.cache = StorageCache(self.cache_max_entries)

    async def with_storage(self, fn: Callable[[StorageCache], T]) -> T:
        """Run ``fn(cache)`` under the storage lock, waiting at most ``lock_timeout_s``.

        ``fn`` must be a quick, synchronous read or write of the cache. Raises
        ``StorageLockTimeout`` when the lock is not free in time.
        """
        result, _, _ = await self._run_locked(fn)
        return result

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
        try:
            async with asyncio.timeout(self.lock_timeout_s):
                await self._lock.acquire()
        except TimeoutError:
            raise StorageLockTimeout(
                f"storage lock not acquired within {self.lock_timeout_s:g} s, retry later"
            ) from None
        acquired = time.perf_counter()
        try:
            result = fn(self.cache)
            hold_s = self.fault_lock_hold_s
            if hold_s > 0 and in_fault_scope():
                # The one sanctioned await under the lock: the lock-hold fault (off by default)
                # reproduces the original freeze, when handlers awaited while holding it.
                await asyncio.sleep(hold_s)  # lockaudit: ignore[LK002] lock-hold fault, on purpose
        finally:
            self._lock.release()
        return result, acquired - started, time.perf_counter() - acquired

    def _notify(self, endpoint: str, wait_s: float, hold_s: float | None) -> None:
        for observer in self.observers:
            observer(endpoint, wait_s, hold_s)

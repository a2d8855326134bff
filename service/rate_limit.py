"""Login rate limiting: per client address and per account, answered rate_limited (429).

Each key (an address, an email) has a token bucket holding at most ``limit`` attempts that refills
at ``limit / window_s`` per second: a burst of ``limit`` attempts passes, then one more per
``window_s / limit`` seconds. A refused attempt is told, in whole seconds rounded up, when the
next one would pass (``Retry-After``). An attempt counts against both keys only when both let it
through, so a refusal by one limit does not use up the other.

Buckets live in memory (one process) and at most ``max_keys`` are kept: past that the least
recently used are forgotten, which only ever forgives, so a flood of fresh addresses cannot
exhaust memory.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from service.errors import RateLimited

DEFAULT_MAX_KEYS = 100_000


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class TokenBucketLimiter:
    """Up to ``limit`` attempts per ``window_s`` per key (``limit`` 0: no limit)."""

    def __init__(
        self,
        *,
        limit: int,
        window_s: float,
        max_keys: int = DEFAULT_MAX_KEYS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window_s = window_s
        self.max_keys = max_keys
        self.clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    @property
    def enabled(self) -> bool:
        """Whether this limiter refuses anything."""
        return self.limit > 0

    def wait_s(self, key: str) -> float:
        """0 when an attempt for ``key`` would pass now, else seconds until one would."""
        if not self.enabled:
            return 0.0
        bucket = self._refilled(key)
        if bucket.tokens >= 1:
            return 0.0
        return (1 - bucket.tokens) * self.window_s / self.limit

    def take(self, key: str) -> None:
        """Count one attempt for ``key`` (call after ``wait_s`` returned 0)."""
        if self.enabled:
            bucket = self._refilled(key)
            bucket.tokens = max(0.0, bucket.tokens - 1)

    def _refilled(self, key: str) -> _Bucket:
        now = self.clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = _Bucket(tokens=float(self.limit), updated=now)
            self._buckets[key] = bucket
            while len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        else:
            rate = self.limit / self.window_s
            bucket.tokens = min(float(self.limit), bucket.tokens + (now - bucket.updated) * rate)
            bucket.updated = now
            self._buckets.move_to_end(key)
        return bucket


class LoginRateLimiter:
    """The two login limits (ENGINES_LOGIN_RATE_PER_ADDRESS / _PER_ACCOUNT per window)."""

    def __init__(
        self,
        *,
        per_address: int,
        per_account: int,
        window_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.by_address = TokenBucketLimiter(limit=per_address, window_s=window_s, clock=clock)
        self.by_account = TokenBucketLimiter(limit=per_account, window_s=window_s, clock=clock)

    def check(self, *, address: str, account: str) -> None:
        """Count a login attempt, or raise ``RateLimited`` (with Retry-After) when either the
        address or the account is over its limit."""
        wait_address = self.by_address.wait_s(address)
        wait_account = self.by_account.wait_s(account)
        if wait_address > 0 or wait_account > 0:
            which = "client address" if wait_address >= wait_account else "account"
            raise RateLimited(
                f"too many login attempts for this {which}, retry later",
                retry_after_s=max(1, math.ceil(max(wait_address, wait_account))),
            )
        self.by_address.take(address)
        self.by_account.take(account)

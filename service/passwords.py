"""Password hashing with bcrypt, always in a worker thread.

bcrypt costs ~72 ms per hash or check at 10 rounds here (shared/FACTS.md) and releases the GIL,
so it runs through ``asyncio.to_thread``: never on the event loop, never under the storage lock.
Its spans (``password.hash``, ``password.verify``) start in the worker thread, so they time the
hashing itself; ``to_thread`` runs the function in a copy of the caller's context, which carries
the request's span across, so they are its children.
"""

from __future__ import annotations

import asyncio
import secrets

import bcrypt
from opentelemetry.trace import Tracer

from service.tracing import child_span

MAX_PASSWORD_BYTES = 72
"""bcrypt 5 raises ValueError past 72 bytes; requests are validated against this first."""


class PasswordHasher:
    """Hashes and checks passwords; unknown users are checked against a dummy hash."""

    def __init__(self, rounds: int, tracer: Tracer | None = None) -> None:
        """``tracer``: for the hash and check spans (None: tracing off)."""
        self.rounds = rounds
        self.tracer = tracer
        self._dummy_hash: bytes | None = None

    async def prepare(self) -> None:
        """Make the dummy hash once at start-up (same cost factor as real hashes)."""
        if self._dummy_hash is None:
            self._dummy_hash = await self.hash(secrets.token_urlsafe(16))

    async def hash(self, password: str) -> bytes:
        """A salted bcrypt hash of ``password``."""
        return await asyncio.to_thread(self._hash_sync, password.encode())

    async def verify(self, password: str, password_hash: bytes | None) -> bool:
        """Whether ``password`` matches; with no hash (unknown user), do the same work and fail."""
        if password_hash is None:
            if self._dummy_hash is None:
                await self.prepare()
            assert self._dummy_hash is not None
            await asyncio.to_thread(self._check_sync, password.encode(), self._dummy_hash)
            return False
        return await asyncio.to_thread(self._check_sync, password.encode(), password_hash)

    def _hash_sync(self, password: bytes) -> bytes:
        with child_span(self.tracer, "password.hash"):
            return bcrypt.hashpw(password, bcrypt.gensalt(rounds=self.rounds))

    def _check_sync(self, password: bytes, password_hash: bytes) -> bool:
        with child_span(self.tracer, "password.verify"):
            return bcrypt.checkpw(password, password_hash)

"""Password hashing with bcrypt, always in a worker thread.

bcrypt costs ~72 ms per hash or check at 10 rounds here (shared/FACTS.md) and releases the GIL,
so it runs through ``asyncio.to_thread``: never on the event loop, never under the storage lock.
"""

from __future__ import annotations

import asyncio
import secrets

import bcrypt

MAX_PASSWORD_BYTES = 72
"""bcrypt 5 raises ValueError past 72 bytes; requests are validated against this first."""


class PasswordHasher:
    """Hashes and checks passwords; unknown users are checked against a dummy hash."""

    def __init__(self, rounds: int) -> None:
        self.rounds = rounds
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
            await asyncio.to_thread(bcrypt.checkpw, password.encode(), self._dummy_hash)
            return False
        return await asyncio.to_thread(bcrypt.checkpw, password.encode(), password_hash)

    def _hash_sync(self, password: bytes) -> bytes:
        return bcrypt.hashpw(password, bcrypt.gensalt(rounds=self.rounds))

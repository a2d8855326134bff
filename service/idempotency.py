"""``Idempotency-Key`` on creating requests: a retry cannot create a duplicate.

A client that sends ``POST /api/items`` with an ``Idempotency-Key`` header (1-255 characters of
its choosing, e.g. a UUID) gets, for the same key and the same body within
``ENGINES_IDEMPOTENCY_WINDOW_S``, the first answer again (status and body, with
``Idempotent-Replayed: true``) instead of a second item; the same key with a different body is
422 ``idempotency_conflict``. Keys belong to the caller: two users never see each other's.

The first answer is stored in the database in the same transaction as the item (never only in
memory): either both are committed or neither is. So a client told 503 or cut off mid-answer
(a commit whose answer was lost, a SIGTERM past its grace, a SIGKILL, a restart) retries with the
same key and gets the item that was saved, or creates it once if nothing was. Only committed
answers are kept: an error answer never wrote anything worth replaying, and a retry runs anew.

Retention is bounded: ``IdempotencySweeper`` deletes keys older than the window every
``min(window, 60 s)``, and an expired key is never replayed (its slot is reused by the next create
with that key).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from fastapi import Response
from pydantic import BaseModel
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from service.database import Database
from service.errors import IdempotencyConflict
from service.logs import get_logger
from service.models import IdempotencyRecord, utc_now

IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_KEY_CHARS = 255
MAX_SWEEP_INTERVAL_S = 60.0


def request_fingerprint(body: BaseModel) -> str:
    """A hash of the validated body: the same request whatever its JSON spacing or key order."""
    return hashlib.sha256(body.model_dump_json().encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class IdempotencyWindow:
    """How long a key's first answer is kept (and replayed)."""

    seconds: float

    def oldest_live(self, now: datetime | None = None) -> datetime:
        """Keys created before this are expired."""
        return (now or utc_now()) - timedelta(seconds=self.seconds)


async def find_answer(
    session: AsyncSession, *, owner_id: int, key: str, window: IdempotencyWindow
) -> IdempotencyRecord | None:
    """The stored first answer for the caller's ``key``, unless it has expired."""
    record: IdempotencyRecord | None = await session.scalar(
        select(IdempotencyRecord).where(
            IdempotencyRecord.owner_id == owner_id,
            IdempotencyRecord.key == key,
            IdempotencyRecord.created_at >= window.oldest_live(),
        )
    )
    return record


async def remember_answer(
    session: AsyncSession,
    *,
    owner_id: int,
    key: str,
    request_hash: str,
    status_code: int,
    body: str,
    window: IdempotencyWindow,
) -> None:
    """Store the answer in ``session``'s transaction (the one that made the write it answers).

    An expired record of the same key is deleted first, so the key may be used again. A live one
    makes the flush fail with IntegrityError: another request with this key committed first.
    """
    await session.execute(
        delete(IdempotencyRecord).where(
            IdempotencyRecord.owner_id == owner_id,
            IdempotencyRecord.key == key,
            IdempotencyRecord.created_at < window.oldest_live(),
        )
    )
    session.add(
        IdempotencyRecord(
            owner_id=owner_id,
            key=key,
            request_hash=request_hash,
            status_code=status_code,
            response_body=body,
        )
    )
    await session.flush()


def answer_response(status_code: int, body: str, *, replayed: bool = False) -> Response:
    """The stored answer as a response, byte for byte (first time and replays alike)."""
    headers = {REPLAYED_HEADER: "true"} if replayed else None
    return Response(
        content=body, status_code=status_code, media_type="application/json", headers=headers
    )


def replay(record: IdempotencyRecord, request_hash: str) -> Response:
    """The first answer again, or ``IdempotencyConflict`` when the body is not the same."""
    if record.request_hash != request_hash:
        raise IdempotencyConflict()
    return answer_response(record.status_code, record.response_body, replayed=True)


class IdempotencySweeper:
    """Deletes expired keys periodically (a background task of the lifespan)."""

    def __init__(self, database: Database, window: IdempotencyWindow) -> None:
        self.database = database
        self.window = window
        self.interval_s = min(window.seconds, MAX_SWEEP_INTERVAL_S)
        self._task: asyncio.Task[None] | None = None

    async def sweep(self) -> int:
        """Delete every expired key now; returns how many."""
        async with self.database.write_session() as session:
            result = await session.execute(
                delete(IdempotencyRecord).where(
                    IdempotencyRecord.created_at < self.window.oldest_live()
                )
            )
            return int(getattr(result, "rowcount", 0) or 0)

    def start(self) -> None:
        """Start the periodic task (the lifespan's start-up)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="idempotency_sweeper")

    async def stop(self) -> None:
        """Stop the periodic task (the lifespan's shutdown)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.sweep()
            except Exception as exc:
                # Housekeeping: a busy or unreachable database must not end the service; the
                # next sweep tries again, and expired keys are never replayed meanwhile.
                get_logger().warning("idempotency_sweep_failed", error=repr(exc))

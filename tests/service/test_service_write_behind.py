"""A write that took effect is never answered with an error (issue 13, item 1).

The storage lock is taken by someone else right after the database commit, for longer than
``ENGINES_STORAGE_LOCK_TIMEOUT_S``: before the fix, ``POST /api/items`` and ``POST
/api/auth/register`` answered 503 storage_lock_timeout with Retry-After for a row they had saved,
and a client trusting Retry-After created a duplicate. Now the cache update after a commit is
queued (``Storage.write_behind``) and never waited for.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from service.app import create_app
from service.dependencies import Services
from service.models import Item, User
from service.storage import ItemRecord, Storage, StorageCache, UserRecord
from tests.service.engines_api import SettingsFactory, auth_headers, login, open_client, register

HELD_FOR_S = 0.6
"""How long the lock stays taken after a commit: three lock timeouts."""


def lock_taken_after_each_commit(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> list[asyncio.Task[None]]:
    """From now on, every write transaction that commits is followed at once by another task
    taking the storage lock for ``HELD_FOR_S`` (as a handler under the lock-hold fault would)."""
    holders: list[asyncio.Task[None]] = []
    real_write_session = services.database.write_session
    lock = services.storage._lock

    async def hold() -> None:
        async with lock:
            await asyncio.sleep(HELD_FOR_S)

    @asynccontextmanager
    async def write_session() -> AsyncIterator[AsyncSession]:
        async with real_write_session() as session:
            yield session
        holders.append(asyncio.create_task(hold()))
        await asyncio.sleep(0)  # let the holder take the lock before the handler goes on

    monkeypatch.setattr(services.database, "write_session", write_session)
    return holders


@pytest.fixture
def app(make_settings: SettingsFactory) -> FastAPI:
    return create_app(make_settings(storage_lock_timeout_s=0.2))


async def count(services: Services, model: type[Item] | type[User]) -> int:
    async with services.database.read_session() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def test_a_created_item_is_answered_201_when_the_lock_is_taken_after_the_commit(
    app: FastAPI, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with open_client(app) as client:
        headers = await auth_headers(client, "wb@example.org")
        holders = lock_taken_after_each_commit(services, monkeypatch)
        created = await client.post("/api/items", json={"name": "saved"}, headers=headers)
        await asyncio.gather(*holders)
        assert created.status_code == 201, created.text
        assert await count(services, Item) == 1
        # The queued cache write was applied by the next holder of the lock: a read finds it.
        fetched = await client.get(f"/api/items/{created.json()['id']}", headers=headers)
        assert fetched.json() == created.json()


async def test_a_registration_is_answered_201_when_the_lock_is_taken_after_the_commit(
    app: FastAPI, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with open_client(app) as client:
        holders = lock_taken_after_each_commit(services, monkeypatch)
        registered = await register(client, "wb@example.org")
        await asyncio.gather(*holders)
        assert registered.status_code == 201, registered.text
        assert await count(services, User) == 1
        assert (await login(client, "wb@example.org")).status_code == 200


async def test_a_delete_is_answered_204_when_the_lock_is_taken_after_the_commit(
    app: FastAPI, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with open_client(app) as client:
        headers = await auth_headers(client, "wb@example.org")
        item = (await client.post("/api/items", json={"name": "x"}, headers=headers)).json()
        await client.get(f"/api/items/{item['id']}", headers=headers)  # cached now
        holders = lock_taken_after_each_commit(services, monkeypatch)
        deleted = await client.delete(f"/api/items/{item['id']}", headers=headers)
        await asyncio.gather(*holders)
        assert deleted.status_code == 204, deleted.text
        assert await count(services, Item) == 0
        missing = await client.get(f"/api/items/{item['id']}", headers=headers)
        assert missing.status_code == 404  # the cached copy was dropped


def record(item_id: int) -> ItemRecord:
    from datetime import UTC, datetime

    return ItemRecord(item_id, 1, "n", "", datetime.now(UTC))


async def test_queued_writes_are_applied_before_the_next_callable_reads() -> None:
    storage = Storage(lock_timeout_s=1.0)
    await storage._lock.acquire()  # someone holds the lock: nothing can be applied yet
    storage.write_behind(lambda c: c.items.put(1, record(1)))
    storage.write_behind(lambda c: c.forget_item(2))
    storage._lock.release()
    seen = await storage.with_storage(lambda c: (sorted(c.items), c.items_generation))
    assert seen == ([1], 1)
    assert storage.pending_writes == 0


async def test_past_its_bound_the_queue_is_replaced_by_clearing_the_whole_cache() -> None:
    storage = Storage(lock_timeout_s=1.0, max_pending_writes=3)
    user = UserRecord(1, "u@example.org", b"h", record(1).created_at)
    await storage.with_storage(lambda c: c.put_user(user))
    generation = await storage.with_storage(lambda c: c.items_generation)
    for item_id in range(5):

        def put(c: StorageCache, i: int = item_id) -> None:
            c.items.put(i, record(i))

        storage.write_behind(put)
    assert storage.pending_writes <= 3

    def cleared(c: StorageCache) -> tuple[int, int, bool]:
        return len(c.items), len(c.users), c.items_generation > generation

    # Everything cached may now be stale or missing: forget it all (a miss reads the database).
    assert await storage.with_storage(cleared) == (0, 0, True)

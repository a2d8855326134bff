"""with_storage: the lock timeout (503 + Retry-After), the lock freed afterwards, the timings."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from fastapi import FastAPI

from service.app import create_app
from service.errors import StorageLockTimeout
from service.storage import Storage
from tests.service.engines_api import SettingsFactory, assert_error, open_client, register


async def test_with_storage_runs_the_callable_under_the_lock() -> None:
    storage = Storage(lock_timeout_s=1.0)
    seen = await storage.with_storage(lambda cache: storage._lock.locked())
    assert seen is True
    assert not storage._lock.locked()


async def test_with_storage_times_out_and_leaves_the_lock_usable() -> None:
    storage = Storage(lock_timeout_s=0.05)
    await storage._lock.acquire()  # someone holds the lock
    with pytest.raises(StorageLockTimeout):
        await storage.with_storage_traced("probe", lambda cache: None)
    assert storage.timings["probe"].timeouts == 1
    storage._lock.release()
    assert await storage.with_storage(lambda cache: "free") == "free"
    assert not storage._lock.locked()


async def test_an_exception_in_the_callable_releases_the_lock() -> None:
    storage = Storage(lock_timeout_s=1.0)
    with pytest.raises(KeyError):
        await storage.with_storage(lambda cache: cache.users["missing"])
    assert not storage._lock.locked()


async def test_traced_use_records_wait_and_hold_per_endpoint() -> None:
    storage = Storage(lock_timeout_s=1.0)
    seen: list[tuple[str, float, float | None]] = []
    storage.observers.append(lambda endpoint, wait, hold: seen.append((endpoint, wait, hold)))
    for _ in range(3):
        await storage.with_storage_traced("login", lambda cache: cache.users.get("x"))
    timings = storage.timings["login"]
    assert timings.acquisitions == 3 and timings.timeouts == 0
    assert timings.wait_total_s >= 0 and timings.hold_total_s >= 0
    assert [endpoint for endpoint, _, _ in seen] == ["login"] * 3


async def test_a_held_lock_gives_503_with_retry_after_then_recovers(
    make_settings: SettingsFactory,
) -> None:
    app = create_app(make_settings(storage_lock_timeout_s=0.2, retry_after_s=3))
    storage: Storage = app.state.services.storage
    async with open_client(app) as client:
        await storage._lock.acquire()
        try:
            response = await asyncio.wait_for(register(client, "held@example.org"), timeout=10)
        finally:
            storage._lock.release()
        error = assert_error(response, 503, "storage_lock_timeout")
        assert "0.2 s" in error["message"]
        assert response.headers["Retry-After"] == "3"
        assert not storage._lock.locked()
        assert (await register(client, "held@example.org")).status_code == 201
        assert storage.timings["register"].timeouts == 1


async def test_handlers_never_hold_the_lock_while_hashing(
    client: httpx.AsyncClient, app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """bcrypt runs with the storage lock free (the original freeze was bcrypt under the lock)."""
    import bcrypt

    storage: Storage = app.state.services.storage
    held_during_bcrypt: list[bool] = []
    real_hashpw, real_checkpw = bcrypt.hashpw, bcrypt.checkpw

    def hashpw(password: bytes, salt: bytes) -> bytes:
        held_during_bcrypt.append(storage._lock.locked())
        return real_hashpw(password, salt)

    def checkpw(password: bytes, hashed: bytes) -> bool:
        held_during_bcrypt.append(storage._lock.locked())
        return real_checkpw(password, hashed)

    monkeypatch.setattr(bcrypt, "hashpw", hashpw)
    monkeypatch.setattr(bcrypt, "checkpw", checkpw)
    await register(client, "free@example.org")
    await client.post(
        "/api/auth/login", json={"email": "free@example.org", "password": "correct horse battery"}
    )
    assert held_during_bcrypt == [False, False]

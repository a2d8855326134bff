"""/api/items: create, list with a page cap, get, delete; another user's item is a 404."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import httpx
import pytest
from fastapi import FastAPI

from service.dependencies import Services
from service.errors import StorageLockTimeout
from service.models import Item
from service.settings import Settings
from service.storage import StorageCache
from tests.service.engines_api import SettingsFactory, assert_error, auth_headers, open_client

T = TypeVar("T")


async def create(client: httpx.AsyncClient, headers: dict[str, str], name: str) -> int:
    response = await client.post(
        "/api/items", headers=headers, json={"name": name, "description": "d"}
    )
    assert response.status_code == 201, response.text
    item_id: int = response.json()["id"]
    return item_id


async def test_item_lifecycle(client: httpx.AsyncClient) -> None:
    headers = await auth_headers(client, "owner@example.org")
    item_id = await create(client, headers, "first")

    got = await client.get(f"/api/items/{item_id}", headers=headers)
    assert got.status_code == 200
    assert got.json()["name"] == "first" and got.json()["description"] == "d"

    listed = await client.get("/api/items", headers=headers)
    assert [i["id"] for i in listed.json()["items"]] == [item_id]

    deleted = await client.delete(f"/api/items/{item_id}", headers=headers)
    assert deleted.status_code == 204 and deleted.content == b""
    assert "X-Trace-Id" in deleted.headers
    assert_error(await client.get(f"/api/items/{item_id}", headers=headers), 404, "not_found")
    assert_error(await client.delete(f"/api/items/{item_id}", headers=headers), 404, "not_found")
    assert (await client.get("/api/items", headers=headers)).json()["items"] == []


async def test_another_users_item_is_a_404_and_stays(client: httpx.AsyncClient) -> None:
    alice = await auth_headers(client, "alice@example.org")
    bob = await auth_headers(client, "bob@example.org")
    item_id = await create(client, alice, "alice's")

    missing = await client.get("/api/items/999999", headers=bob)
    foreign = await client.get(f"/api/items/{item_id}", headers=bob)
    assert_error(foreign, 404, "not_found")
    assert foreign.json()["error"]["message"] == missing.json()["error"]["message"]
    assert_error(await client.delete(f"/api/items/{item_id}", headers=bob), 404, "not_found")
    assert (await client.get("/api/items", headers=bob)).json()["items"] == []
    assert (await client.get(f"/api/items/{item_id}", headers=alice)).status_code == 200


async def test_list_pages_are_capped(make_settings: SettingsFactory) -> None:
    from service.app import create_app

    app = create_app(make_settings(items_page_max=3))
    async with open_client(app) as client:
        headers = await auth_headers(client, "pages@example.org")
        ids = [await create(client, headers, f"item {n}") for n in range(5)]

        first = (await client.get("/api/items?limit=1000", headers=headers)).json()
        assert first["limit"] == 3
        assert [i["id"] for i in first["items"]] == ids[:3]
        assert first["next_offset"] == 3

        rest = (await client.get("/api/items?offset=3&limit=3", headers=headers)).json()
        assert [i["id"] for i in rest["items"]] == ids[3:]
        assert rest["next_offset"] is None

        assert_error(
            await client.get("/api/items?limit=0", headers=headers), 422, "validation_error"
        )
        assert_error(
            await client.get("/api/items?offset=-1", headers=headers), 422, "validation_error"
        )


async def test_item_reads_survive_a_cold_cache(client: httpx.AsyncClient, app: FastAPI) -> None:
    headers = await auth_headers(client, "cold@example.org")
    item_id = await create(client, headers, "kept")
    services: Services = app.state.services
    await services.storage.with_storage(lambda cache: cache.items.clear())
    response = await client.get(f"/api/items/{item_id}", headers=headers)
    assert response.status_code == 200 and response.json()["name"] == "kept"
    cached = await services.storage.with_storage(lambda cache: item_id in cache.items)
    assert cached


async def test_a_delete_racing_a_cache_fill_never_resurrects_the_item(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    headers = await auth_headers(client, "race@example.org")
    item_id = await create(client, headers, "gone")
    services: Services = app.state.services
    storage = services.storage
    await storage.with_storage(lambda cache: cache.items.clear())
    # A reader misses the cache and reads the database ...
    record, generation = await storage.with_storage(lambda cache: cache.item_lookup(item_id))
    assert record is None
    # ... a delete completes meanwhile ...
    assert (await client.delete(f"/api/items/{item_id}", headers=headers)).status_code == 204
    # ... and the reader's late fill is refused.
    from datetime import UTC, datetime

    from service.storage import ItemRecord

    stale = ItemRecord(item_id, 1, "gone", "", datetime.now(UTC))
    await storage.with_storage(lambda cache: cache.fill_item(stale, generation))
    assert_error(await client.get(f"/api/items/{item_id}", headers=headers), 404, "not_found")


async def test_bad_item_bodies_are_422(client: httpx.AsyncClient, settings: Settings) -> None:
    headers = await auth_headers(client, "bodies@example.org")
    for body in [
        {},
        {"name": ""},
        {"name": 5},
        {"name": "x" * 201},
        {"name": "x", "extra": 1},
        {"name": "nul\x00"},  # PostgreSQL cannot store it: refused on every backend
        {"name": "x", "description": "\x00"},
    ]:
        response = await client.post("/api/items", headers=headers, json=body)
        assert_error(response, 422, "validation_error")
    assert_error(await client.get("/api/items/abc", headers=headers), 422, "validation_error")
    assert (await client.get("/api/items", headers=headers)).json()["items"] == []


async def test_ids_and_offsets_no_row_can_have_are_4xx_not_500(client: httpx.AsyncClient) -> None:
    headers = await auth_headers(client, "huge@example.org")
    item_id = await create(client, headers, "kept")
    for huge in ("2147483648", "9223372036854775808", "9" * 40, "-1", "0"):
        assert_error(await client.get(f"/api/items/{huge}", headers=headers), 404, "not_found")
        assert_error(await client.delete(f"/api/items/{huge}", headers=headers), 404, "not_found")
    for offset in ("2147483648", "9" * 40):
        response = await client.get(f"/api/items?offset={offset}&limit={'9' * 40}", headers=headers)
        assert_error(response, 422, "validation_error")
    assert (await client.get(f"/api/items/{item_id}", headers=headers)).status_code == 200


async def test_a_delete_when_the_lock_is_busy_afterwards_is_204_and_leaves_no_stale_item(
    client: httpx.AsyncClient, app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    headers = await auth_headers(client, "stale@example.org")
    item_id = await create(client, headers, "deleted")  # now cached
    services: Services = app.state.services
    storage = services.storage
    real = storage.with_storage_traced

    async def busy_once_deleted(endpoint: str, fn: Callable[[StorageCache], T]) -> T:
        """The storage lock cannot be had once the row is gone (as under contention)."""
        if endpoint == "delete_item":
            async with services.database.read_session() as session:
                if await session.get(Item, item_id) is None:
                    raise StorageLockTimeout("storage lock not acquired (test)")
        return await real(endpoint, fn)

    monkeypatch.setattr(storage, "with_storage_traced", busy_once_deleted)
    deleted = await client.delete(f"/api/items/{item_id}", headers=headers)
    # A delete that took effect is a success (issue 13): the cache update after it is queued,
    # never waited for.
    assert deleted.status_code == 204, deleted.text
    monkeypatch.undo()
    # The database no longer has it: neither may the cache.
    assert_error(await client.get(f"/api/items/{item_id}", headers=headers), 404, "not_found")

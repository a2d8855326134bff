"""``Idempotency-Key`` on ``POST /api/items`` (issue 13): the same key and body within the window
get the first answer (status and body), a different body is 422 idempotency_conflict, and the
key lives in the database, so a retry after a lost answer or a restart cannot duplicate. Each
test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from service.app import create_app
from service.dependencies import Services
from service.errors import DatabaseError
from service.models import IdempotencyRecord, Item, utc_now
from tests.service.engines_api import SettingsFactory, assert_error, auth_headers, open_client

BODY = {"name": "once", "description": "only one of me"}


@pytest.fixture
def app(make_settings: SettingsFactory, database_url: str) -> FastAPI:
    return create_app(make_settings(database_url=database_url))


def keyed(headers: dict[str, str], key: str) -> dict[str, str]:
    return {**headers, "Idempotency-Key": key}


async def count(services: Services, model: type[Item] | type[IdempotencyRecord]) -> int:
    async with services.database.read_session() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def test_the_same_key_and_body_get_the_first_answer_and_one_item(
    client: httpx.AsyncClient, services: Services
) -> None:
    headers = await auth_headers(client, "idem@example.org")
    first = await client.post("/api/items", json=BODY, headers=keyed(headers, "k-1"))
    again = await client.post(
        "/api/items",
        # The same body, spelt differently: still the same request.
        content=b'{"description": "only one of me",  "name": "once"}',
        headers={**keyed(headers, "k-1"), "Content-Type": "application/json"},
    )
    assert first.status_code == again.status_code == 201, (first.text, again.text)
    assert again.content == first.content
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert await count(services, Item) == 1
    # A keyed answer has the shape of an unkeyed one.
    plain = await client.post("/api/items", json=BODY, headers=headers)
    assert set(plain.json()) == set(first.json())
    assert await count(services, Item) == 2


async def test_the_same_key_with_another_body_is_422_idempotency_conflict(
    client: httpx.AsyncClient, services: Services
) -> None:
    headers = await auth_headers(client, "idem@example.org")
    assert (await client.post("/api/items", json=BODY, headers=keyed(headers, "k"))).is_success
    other = await client.post("/api/items", json={"name": "other"}, headers=keyed(headers, "k"))
    assert_error(other, 422, "idempotency_conflict")
    assert await count(services, Item) == 1


async def test_keys_belong_to_the_caller(client: httpx.AsyncClient, services: Services) -> None:
    ada = await auth_headers(client, "ada@example.org")
    bob = await auth_headers(client, "bob@example.org")
    first = await client.post("/api/items", json=BODY, headers=keyed(ada, "shared"))
    second = await client.post("/api/items", json=BODY, headers=keyed(bob, "shared"))
    assert first.status_code == second.status_code == 201
    assert first.json()["owner_id"] != second.json()["owner_id"]
    assert await count(services, Item) == 2


async def test_concurrent_requests_with_one_key_create_one_item(
    client: httpx.AsyncClient, services: Services
) -> None:
    headers = keyed(await auth_headers(client, "idem@example.org"), "racing")
    answers = await asyncio.gather(
        *(client.post("/api/items", json=BODY, headers=headers) for _ in range(6))
    )
    assert {a.status_code for a in answers} == {201}, [a.text for a in answers]
    assert len({a.content for a in answers}) == 1
    assert await count(services, Item) == 1


async def test_a_retry_after_a_lost_answer_replays_the_saved_item(
    client: httpx.AsyncClient, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The in-doubt case: the commit took effect but the client was told 503 (here: the
    connection failed right after COMMIT). Its retry with the same key gets the saved item."""
    headers = keyed(await auth_headers(client, "idem@example.org"), "in-doubt")
    real_write_session = services.database.write_session

    @asynccontextmanager
    async def lost_after_commit() -> AsyncIterator[AsyncSession]:
        async with real_write_session() as session:
            yield session
        raise DatabaseError()

    monkeypatch.setattr(services.database, "write_session", lost_after_commit)
    told = await client.post("/api/items", json=BODY, headers=headers)
    assert_error(told, 503, "database_error")
    monkeypatch.undo()
    retried = await client.post("/api/items", json=BODY, headers=headers)
    assert retried.status_code == 201 and retried.headers["Idempotent-Replayed"] == "true"
    assert await count(services, Item) == 1


async def test_a_key_survives_a_restart(make_settings: SettingsFactory, database_url: str) -> None:
    settings = make_settings(database_url=database_url)
    async with open_client(create_app(settings)) as client:
        headers = keyed(await auth_headers(client, "idem@example.org"), "durable")
        first = await client.post("/api/items", json=BODY, headers=headers)
    async with open_client(create_app(settings)) as client:
        again = await client.post("/api/items", json=BODY, headers=headers)
    assert again.status_code == 201 and again.content == first.content


async def test_an_expired_key_is_swept_and_may_be_used_again(
    client: httpx.AsyncClient, services: Services
) -> None:
    headers = keyed(await auth_headers(client, "idem@example.org"), "old")
    first = await client.post("/api/items", json=BODY, headers=headers)
    past = utc_now() - timedelta(seconds=services.settings.idempotency_window_s + 1)
    async with services.database.write_session() as session:
        await session.execute(update(IdempotencyRecord).values(created_at=past))
    again = await client.post("/api/items", json=BODY, headers=headers)
    assert again.status_code == 201 and again.json()["id"] != first.json()["id"]
    assert await count(services, IdempotencyRecord) == 1  # the expired one was replaced
    async with services.database.write_session() as session:
        await session.execute(update(IdempotencyRecord).values(created_at=past))
    assert await services.idempotency_sweeper.sweep() == 1
    assert await count(services, IdempotencyRecord) == 0


@pytest.mark.parametrize("key", ["", "k" * 256])
async def test_a_bad_key_is_422_validation_error(
    client: httpx.AsyncClient, services: Services, key: str
) -> None:
    headers = await auth_headers(client, "idem@example.org")
    response = await client.post("/api/items", json=BODY, headers=keyed(headers, key))
    assert_error(response, 422, "validation_error")
    assert await count(services, Item) == 0

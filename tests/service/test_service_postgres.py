"""The core paths a user relies on, on PostgreSQL (asyncpg): a throwaway cluster started by the
``postgres_server`` fixture (or ``ENGINES_TEST_POSTGRES_URL``), a fresh database per test."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from datetime import datetime

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from service.app import create_app
from service.dependencies import Services
from service.models import User
from tests.service.engines_api import (
    SettingsFactory,
    assert_error,
    auth_headers,
    login,
    open_client,
    register,
)
from tests.service.postgres_cluster import drop_database, free_port


@pytest.fixture
def pg_app(make_settings: SettingsFactory, postgres_url: str) -> FastAPI:
    """The real app on a fresh PostgreSQL database."""
    return create_app(make_settings(database_url=postgres_url))


@pytest.fixture
async def pg_client(pg_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the started app (tables created on PostgreSQL)."""
    async with open_client(pg_app) as client:
        yield client


async def test_the_app_really_runs_on_postgres(
    pg_client: httpx.AsyncClient, pg_app: FastAPI
) -> None:
    services: Services = pg_app.state.services
    assert services.database.url.get_backend_name() == "postgresql"
    assert not services.database.is_sqlite
    response = await pg_client.get("/health")
    assert response.status_code == 200, response.text
    async with services.database.read_session() as session:
        version = await session.scalar(select(func.version()))
    assert str(version).startswith("PostgreSQL")


async def test_register_login_me(pg_client: httpx.AsyncClient, pg_app: FastAPI) -> None:
    registered = await register(pg_client, "alice@example.org")
    assert registered.status_code == 201, registered.text
    body = registered.json()
    assert body["email"] == "alice@example.org" and "password_hash" not in body
    assert datetime.fromisoformat(body["created_at"]).tzinfo is not None

    logged_in = await login(pg_client, "alice@example.org")
    assert logged_in.status_code == 200, logged_in.text
    headers = {"Authorization": f"Bearer {logged_in.json()['access_token']}"}
    me = await pg_client.get("/api/auth/me", headers=headers)
    assert me.status_code == 200 and me.json()["id"] == body["id"]

    # The same answers from the database itself, not the storage cache.
    services: Services = pg_app.state.services
    await services.storage.with_storage(lambda cache: cache.users.clear())
    assert (await login(pg_client, "alice@example.org")).status_code == 200
    assert (await pg_client.get("/api/auth/me", headers=headers)).json()["id"] == body["id"]
    assert_error(
        await login(pg_client, "alice@example.org", "wrong password!"), 401, "invalid_credentials"
    )
    assert_error(await login(pg_client, "nobody@example.org"), 401, "invalid_credentials")


async def test_duplicate_registration_is_a_409(
    pg_client: httpx.AsyncClient, pg_app: FastAPI
) -> None:
    assert (await register(pg_client, "dup@example.org")).status_code == 201
    assert_error(await register(pg_client, "dup@example.org"), 409, "conflict")
    # Past the cache: the database's unique constraint answers, still a 409.
    services: Services = pg_app.state.services
    await services.storage.with_storage(lambda cache: cache.users.clear())
    assert_error(await register(pg_client, "dup@example.org"), 409, "conflict")
    assert (await pg_client.get("/health")).status_code == 200


async def test_item_lifecycle(pg_client: httpx.AsyncClient, pg_app: FastAPI) -> None:
    headers = await auth_headers(pg_client, "owner@example.org")
    created = await pg_client.post(
        "/api/items", headers=headers, json={"name": "first", "description": "d"}
    )
    assert created.status_code == 201, created.text
    item_id = created.json()["id"]

    got = await pg_client.get(f"/api/items/{item_id}", headers=headers)
    assert got.status_code == 200 and got.json()["name"] == "first"
    listed = await pg_client.get("/api/items", headers=headers)
    assert [i["id"] for i in listed.json()["items"]] == [item_id]

    # A cold cache reads the item back from PostgreSQL.
    services: Services = pg_app.state.services
    await services.storage.with_storage(lambda cache: cache.items.clear())
    got = await pg_client.get(f"/api/items/{item_id}", headers=headers)
    assert got.status_code == 200 and got.json()["description"] == "d", got.text
    assert datetime.fromisoformat(got.json()["created_at"]).tzinfo is not None

    other = await auth_headers(pg_client, "other@example.org")
    assert_error(await pg_client.get(f"/api/items/{item_id}", headers=other), 404, "not_found")
    assert_error(await pg_client.delete(f"/api/items/{item_id}", headers=other), 404, "not_found")

    deleted = await pg_client.delete(f"/api/items/{item_id}", headers=headers)
    assert deleted.status_code == 204, deleted.text
    assert_error(await pg_client.get(f"/api/items/{item_id}", headers=headers), 404, "not_found")
    assert (await pg_client.get("/api/items", headers=headers)).json()["items"] == []


async def test_ids_past_int4_are_404_not_500(pg_client: httpx.AsyncClient) -> None:
    # PostgreSQL's integer is int4: asyncpg refuses larger ids outright.
    headers = await auth_headers(pg_client, "huge@example.org")
    for huge in ("2147483647", "2147483648", "9223372036854775808"):
        assert_error(await pg_client.get(f"/api/items/{huge}", headers=headers), 404, "not_found")
        response = await pg_client.delete(f"/api/items/{huge}", headers=headers)
        assert_error(response, 404, "not_found")


async def test_a_nul_byte_is_422_not_500(pg_client: httpx.AsyncClient) -> None:
    # PostgreSQL text cannot hold NUL: refused as validation, never sent to the server.
    headers = await auth_headers(pg_client, "nul@example.org")
    response = await pg_client.post("/api/items", headers=headers, json={"name": "a\x00b"})
    assert_error(response, 422, "validation_error")
    response = await register(pg_client, "nul\x00@example.org")
    assert response.status_code == 422, response.text


async def test_50_concurrent_registrations_give_only_201_or_409(
    pg_client: httpx.AsyncClient, pg_app: FastAPI
) -> None:
    unique = [f"user{n}@example.org" for n in range(25)]
    contested = [f"same{n % 5}@example.org" for n in range(25)]  # 5 emails, 5 tries each
    emails = unique + contested
    responses = await asyncio.gather(*(register(pg_client, email) for email in emails))

    statuses = Counter(r.status_code for r in responses)
    assert set(statuses) <= {201, 409}, [
        r.text for r in responses if r.status_code not in (201, 409)
    ]
    assert statuses[201] == 30 and statuses[409] == 20
    services: Services = pg_app.state.services
    async with services.database.read_session() as session:
        assert await session.scalar(select(func.count()).select_from(User)) == 30
    logins = await asyncio.gather(*(login(pg_client, email) for email in set(emails)))
    assert {r.status_code for r in logins} == {200}


async def test_a_database_gone_away_is_a_503_database_error_not_a_500(
    pg_client: httpx.AsyncClient, postgres_server: str, postgres_url: str
) -> None:
    assert (await register(pg_client, "before@example.org")).status_code == 201
    # Drop the database under the running app: its pooled connections are killed, and
    # reconnecting fails inside asyncpg's connect, with an error SQLAlchemy does not wrap.
    await drop_database(postgres_server, make_url(postgres_url).database or "")
    assert_error(await pg_client.get("/health"), 503, "database_error")
    assert_error(await register(pg_client, "after@example.org"), 503, "database_error")
    assert_error(await login(pg_client, "unknown@example.org"), 503, "database_error")


async def test_a_server_that_refuses_connections_is_a_503_database_error_not_a_500(
    make_settings: SettingsFactory,
) -> None:
    # Nobody listens on this port: asyncpg's connect raises a bare ConnectionRefusedError.
    app = create_app(
        make_settings(database_url=f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/x")
    )
    # No lifespan (its start-up would fail creating tables): requests only.
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://engines.test") as client:
        assert_error(await client.get("/health"), 503, "database_error")
        assert_error(await register(client, "refused@example.org"), 503, "database_error")
        assert_error(await login(client, "refused@example.org"), 503, "database_error")
    await app.state.services.database.dispose()

"""Fixtures: the real app on a real SQLite file, driven in-process by httpx ASGITransport; and,
for the PostgreSQL tests, a throwaway PostgreSQL cluster with a fresh database per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from service.app import create_app
from service.dependencies import Services
from service.settings import Settings
from tests.service.engines_api import SettingsFactory, open_client
from tests.service.postgres_cluster import (
    PostgresCluster,
    PostgresUnavailable,
    create_database,
    drop_database,
    find_bindir,
)


@pytest.fixture
def make_settings(tmp_path: Path) -> SettingsFactory:
    """Settings on a fresh SQLite file in ``tmp_path``, low bcrypt rounds, plus any overrides."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "env": "dev",
            "database_url": f"sqlite+aiosqlite:///{tmp_path / 'engines.db'}",
            "jwt_secret": "test-secret-" + "s" * 60,
            "bcrypt_rounds": 4,
            "log_level": "debug",
            "access_log_level": "info",
        }
        values.update(overrides)
        return Settings(**values)

    return make


@pytest.fixture
def settings(make_settings: SettingsFactory) -> Settings:
    """Default test settings."""
    return make_settings()


@pytest.fixture
def app(settings: Settings) -> FastAPI:
    """The real app, built by the factory."""
    return create_app(settings)


@pytest.fixture
def services(app: FastAPI) -> Services:
    """The app's composition root (storage, database, ...)."""
    result: Services = app.state.services
    return result


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the started app (tables created, dummy hash made)."""
    async with open_client(app) as c:
        yield c


POSTGRES_URL_ENV = "ENGINES_TEST_POSTGRES_URL"
"""Use this server (a postgresql+asyncpg:// URL of a superuser, or a role allowed to create
databases) instead of starting a throwaway cluster."""

REQUIRE_POSTGRES_ENV = "ENGINES_TEST_REQUIRE_POSTGRES"
"""When set (CI), missing PostgreSQL binaries fail the PostgreSQL tests instead of skipping them."""


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """The asyncpg URL of a PostgreSQL server's maintenance database: ``ENGINES_TEST_POSTGRES_URL``
    when set, else a throwaway cluster started for this session and stopped at its end."""
    given = os.environ.get(POSTGRES_URL_ENV)
    if given:
        yield given
        return
    try:
        cluster = PostgresCluster(find_bindir())
    except PostgresUnavailable as exc:
        if os.environ.get(REQUIRE_POSTGRES_ENV):
            pytest.fail(f"{REQUIRE_POSTGRES_ENV} is set but: {exc}")
        pytest.skip(str(exc))
    try:
        cluster.start()
        yield cluster.url()
    finally:
        cluster.stop()


@pytest.fixture
async def postgres_url(postgres_server: str) -> AsyncIterator[str]:
    """The asyncpg URL of a fresh, empty database on the test server, dropped afterwards."""
    name = f"loadkit_test_{uuid.uuid4().hex[:16]}"
    url = await create_database(postgres_server, name)
    try:
        yield url
    finally:
        await drop_database(postgres_server, name)


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database on each backend: a SQLite file, then a PostgreSQL database (from
    ``postgres_url``; skipped where PostgreSQL cannot be had)."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'engines.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url

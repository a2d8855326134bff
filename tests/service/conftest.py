"""Fixtures: the real app on a real SQLite file, driven in-process by httpx ASGITransport."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from engines_api import SettingsFactory, open_client
from fastapi import FastAPI

from service.app import create_app
from service.dependencies import Services
from service.settings import Settings


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

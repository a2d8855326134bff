"""Fixtures shared by every test package: the bundled service as a real process on loopback."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from loadkit.run.bundled_service import BundledService

ServiceFactory = Callable[..., BundledService]


@pytest.fixture
def start_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceFactory]:
    """Start the bundled service (``python -m service``) with extra ENGINES_* settings.

    Each call gets a fresh SQLite database in its own folder; every service started is stopped
    by its process handle at teardown, also when the test fails.
    """
    started: list[BundledService] = []

    def start(env: dict[str, str] | None = None, **kwargs: object) -> BundledService:
        workdir: Path = tmp_path_factory.mktemp("service")
        settings = {"ENGINES_BCRYPT_ROUNDS": "4", **(env or {})}
        # kwargs are BundledService's own keyword arguments, passed through unchanged.
        service = BundledService(workdir=workdir, env=settings, **kwargs)  # type: ignore[arg-type]
        started.append(service)
        return service.start()

    yield start
    for service in reversed(started):
        service.stop()


@pytest.fixture
def service(start_service: ServiceFactory) -> BundledService:
    """The bundled service with default settings (low bcrypt rounds), fresh database."""
    return start_service()

"""Fixtures shared by every test package: the bundled service as a real process on loopback."""

from __future__ import annotations

import compileall
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from loadkit.run.bundled_service import BundledService

ServiceFactory = Callable[..., BundledService]
ROOT = Path(__file__).resolve().parent.parent


def pytest_sessionstart(session: pytest.Session) -> None:
    """Compile the project's own sources once, before the hundreds of Locust, loadkit and
    service processes the tests start: where ``PYTHONDONTWRITEBYTECODE`` is set (the reference
    machine sets it) none of them writes a ``.pyc``, so each would compile its imports of this
    checkout from source again (~0.1 s a process). ``compileall`` writes them whatever that
    variable says; they are git-ignored, and outdated ones are recompiled by their timestamps."""
    for folder in ("loadkit", "service", "scenarios"):
        compileall.compile_dir(ROOT / folder, quiet=1)


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

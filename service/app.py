"""The app factory: ``create_app(settings)`` builds one self-contained service.

Nothing is bound at import time: each call builds its own database engine, storage, hasher and
token issuer (the ``Services`` composition root, on ``app.state.services``). The lifespan creates
the tables and the dummy password hash at start-up and disposes the engine at shutdown.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from fastapi import FastAPI

from service.database import Database
from service.dependencies import Services
from service.errors import install_error_handlers
from service.logs import configure_logging, get_logger
from service.middleware import BodySizeLimitMiddleware, RequestContextMiddleware
from service.passwords import PasswordHasher
from service.routes import auth, health, items
from service.settings import Settings
from service.storage import Storage
from service.tokens import TokenIssuer


def build_services(settings: Settings) -> Services:
    """Everything the handlers use, wired from the settings."""
    return Services(
        settings=settings,
        database=Database(settings),
        storage=Storage(
            lock_timeout_s=settings.storage_lock_timeout_s,
            cache_max_entries=settings.cache_max_entries,
        ),
        passwords=PasswordHasher(rounds=settings.bcrypt_rounds),
        tokens=TokenIssuer(secret=settings.jwt_secret, ttl_s=settings.jwt_ttl_s),
        started_at=datetime.now(UTC),
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the API service; with no settings, read them from ``ENGINES_*`` variables."""
    settings = settings if settings is not None else Settings()
    configure_logging(settings.log_level)
    services = build_services(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        log = get_logger()
        await services.database.create_tables()
        await services.passwords.prepare()
        log.info(
            "service_started",
            database=services.database.display_url,
            env=settings.env,
            bcrypt_rounds=settings.bcrypt_rounds,
        )
        try:
            yield
        finally:
            await services.database.dispose()
            log.info("service_stopped")

    app = FastAPI(
        title="engines",
        summary="The API loadkit was built to rescue: auth, items, health.",
        version=settings.git_commit,
        lifespan=lifespan,
    )
    app.state.services = services
    app.state.retry_after_s = settings.retry_after_s
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(auth.router)
    app.include_router(items.router)
    # add_middleware wraps: the last added is the outermost.
    app.add_middleware(BodySizeLimitMiddleware, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(
        RequestContextMiddleware,
        access_log_level=settings.access_log_level,
        retry_after_s=settings.retry_after_s,
    )
    return app

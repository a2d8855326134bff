"""The app factory: ``create_app(settings)`` builds one self-contained service.

Nothing is bound at import time: each call builds its own database engine, storage, hasher,
token issuer, metrics registry, login limiter and fault plan (the ``Services`` composition root,
on ``app.state.services``), and its tracing when the environment asks for it (``service.tracing``).
The lifespan creates the tables and the dummy password hash, logs each
active fault and starts the "db_pool" line and the sweep of expired idempotency keys at start-up;
at shutdown (after uvicorn has drained the requests in flight, see ``service.__main__``) it stops
both, disposes the engine and flushes the spans still buffered.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from fastapi import FastAPI

from service.backpressure import InFlightCounter, InFlightLimitMiddleware
from service.database import Database
from service.dependencies import Services
from service.errors import install_error_handlers
from service.faults import FaultInjectionMiddleware, FaultPlan, StallClock
from service.idempotency import IdempotencySweeper, IdempotencyWindow
from service.logs import configure_logging, get_logger
from service.metrics import ServiceMetrics
from service.middleware import BodySizeLimitMiddleware, RequestContextMiddleware
from service.passwords import PasswordHasher
from service.pool_metrics import PoolMetricsReporter
from service.rate_limit import LoginRateLimiter
from service.routes import auth, health, items, metrics
from service.settings import Settings
from service.storage import Storage
from service.tokens import TokenIssuer
from service.tracing import Tracing, add_tracing_middleware, setup_tracing


def build_services(settings: Settings, tracing: Tracing | None = None) -> Services:
    """Everything the handlers and middleware use, wired from the settings (and traced with
    ``tracing`` when given)."""
    tracer = tracing.tracer if tracing is not None else None
    faults = FaultPlan.from_settings(settings)
    database = Database(settings, slow_query_fault_s=faults.slow_query_s, tracing=tracing)
    storage = Storage(
        lock_timeout_s=settings.storage_lock_timeout_s,
        cache_max_entries=settings.cache_max_entries,
        fault_lock_hold_s=faults.lock_hold_s,
        tracer=tracer,
    )
    in_flight = InFlightCounter()
    service_metrics = ServiceMetrics(pool=database.pool_monitor, in_flight=in_flight)
    storage.observers.append(service_metrics.observe_lock)
    idempotency_window = IdempotencyWindow(seconds=settings.idempotency_window_s)
    return Services(
        settings=settings,
        database=database,
        storage=storage,
        passwords=PasswordHasher(rounds=settings.bcrypt_rounds, tracer=tracer),
        tokens=TokenIssuer(secret=settings.jwt_secret, ttl_s=settings.jwt_ttl_s, tracer=tracer),
        started_at=datetime.now(UTC),
        metrics=service_metrics,
        in_flight=in_flight,
        login_limiter=LoginRateLimiter(
            per_address=settings.login_rate_per_address,
            per_account=settings.login_rate_per_account,
            window_s=settings.login_rate_window_s,
        ),
        faults=faults,
        stall_clock=StallClock(),
        idempotency_window=idempotency_window,
        idempotency_sweeper=IdempotencySweeper(database, idempotency_window),
        tracing=tracing,
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the API service; with no settings, read them from ``ENGINES_*`` variables.

    Raises ``TracingConfigError`` when an OTEL_* variable asks for what cannot be done.
    """
    settings = settings if settings is not None else Settings()
    configure_logging(settings.log_level)
    tracing = setup_tracing(settings)
    services = build_services(settings, tracing)

    pool_reporter = PoolMetricsReporter(
        services.database.pool_monitor, interval_s=settings.pool_metrics_interval_s
    )

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
            max_in_flight=settings.max_in_flight,
            query_timeout_s=settings.query_timeout_s,
            db_pool_timeout_s=settings.db_pool_timeout_s,
            tracing=list(tracing.exporters) if tracing is not None else "off",
        )
        for fault, figures in services.faults.active().items():
            # Loud on purpose: a service misbehaving by design must never pass for a bug.
            log.warning(
                "fault_injection_enabled",
                fault=fault,
                paths=list(services.faults.paths) or "all",
                **figures,
            )
        services.stall_clock.restart()
        pool_reporter.start()
        services.idempotency_sweeper.start()
        try:
            yield
        finally:
            await services.idempotency_sweeper.stop()
            await pool_reporter.stop()
            await services.database.dispose()
            log.info("database_disposed", database=services.database.display_url)
            if tracing is not None:
                # Last: every request has been answered, so every span has ended.
                tracing.shutdown()
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
    routers = (health.router, auth.router, items.router, metrics.router)
    for router in routers:
        app.include_router(router)
    # Flat, with their full paths: to name the endpoint of requests refused before routing, and
    # every method of a path in a 405's Allow (FastAPI nests included routers).
    api_routes = [route for router in routers for route in router.routes]
    app.state.api_routes = api_routes
    # add_middleware wraps: the last added is the outermost.
    if services.faults.any_on:
        app.add_middleware(
            FaultInjectionMiddleware,
            plan=services.faults,
            clock=services.stall_clock,
            tracer=tracing.tracer if tracing is not None else None,
        )
    app.add_middleware(
        InFlightLimitMiddleware,
        max_in_flight=settings.max_in_flight,
        retry_after_s=settings.retry_after_s,
        counter=services.in_flight,
    )
    # Outside the in-flight limit: a client that declares a body and never sends it (or
    # trickles it) must not hold one of the in-flight places, or a few such connections
    # would get every other request refused as overloaded.
    app.add_middleware(BodySizeLimitMiddleware, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(
        RequestContextMiddleware,
        access_log_level=settings.access_log_level,
        retry_after_s=settings.retry_after_s,
        observers=(services.metrics.observe_request,),
        routes=api_routes,
    )
    if tracing is not None:
        # Outermost: the server span covers the whole request, the error envelope included,
        # and the request middleware reads its trace id from it.
        add_tracing_middleware(app, tracing)
    return app

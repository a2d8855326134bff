"""The composition root (``Services``) and the FastAPI dependencies routes declare."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from service.backpressure import InFlightCounter
from service.database import Database
from service.errors import Unauthorized
from service.faults import FaultPlan, StallClock
from service.idempotency import IdempotencySweeper, IdempotencyWindow
from service.metrics import ServiceMetrics
from service.passwords import PasswordHasher
from service.rate_limit import LoginRateLimiter
from service.settings import Settings
from service.storage import Storage
from service.tokens import TokenClaims, TokenIssuer
from service.tracing import Tracing


@dataclass(frozen=True)
class Services:
    """Everything a request handler may use, built once per app by ``create_app``."""

    settings: Settings
    database: Database
    storage: Storage
    passwords: PasswordHasher
    tokens: TokenIssuer
    started_at: datetime
    metrics: ServiceMetrics
    in_flight: InFlightCounter
    login_limiter: LoginRateLimiter
    faults: FaultPlan
    stall_clock: StallClock
    idempotency_window: IdempotencyWindow
    idempotency_sweeper: IdempotencySweeper
    tracing: Tracing | None = None
    """The app's tracer provider; None when tracing is off (``service.tracing``)."""


def get_services(request: Request) -> Services:
    """The app's services (``app.state.services``)."""
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


BEARER_SCHEME = HTTPBearer(
    auto_error=False,
    bearerFormat="JWT",
    description="The access_token from POST /api/auth/login, as `Authorization: Bearer <token>`.",
)
"""Declares the bearer scheme in the OpenAPI document; the header is checked below, so that every
refusal is the service's 401 envelope (HTTPBearer's own would be a 403 ``{"detail"}``)."""


def get_current_claims(
    request: Request,
    services: ServicesDep,
    _declared: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER_SCHEME)],
) -> TokenClaims:
    """The verified claims of the request's ``Authorization: Bearer`` token."""
    header = request.headers.get("authorization")
    if header is None:
        raise Unauthorized("missing bearer token")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Authorization header must be 'Bearer <token>'")
    return services.tokens.verify(token.strip())


CurrentClaims = Annotated[TokenClaims, Depends(get_current_claims)]

"""GET /health and GET /version."""

from __future__ import annotations

import platform
from importlib.metadata import PackageNotFoundError, version

from fastapi import APIRouter

from service.dependencies import ServicesDep
from service.errors import DatabaseError, classify
from service.openapi import error_responses
from service.schemas import Health, VersionOut

router = APIRouter(tags=["health"])

DISTRIBUTION = "loadkit"


@router.get("/health", response_model=Health, responses=error_responses(503))
async def health(services: ServicesDep) -> Health:
    """200 when the database answers ``SELECT 1``, else 503 database_error."""
    try:
        await services.database.ping()
    except Exception as exc:
        error = classify(exc)  # keeps db_pool_exhausted / query_timeout when that is the cause
        raise (error if error.status_code == 503 else DatabaseError()) from exc
    return Health(status="ok")


@router.get("/version", response_model=VersionOut, responses=error_responses())
async def version_info(services: ServicesDep) -> VersionOut:
    """Package version, git commit (ENGINES_GIT_COMMIT), Python version, start time."""
    return VersionOut(
        version=package_version(),
        git_commit=services.settings.git_commit,
        python=platform.python_version(),
        started_at=services.started_at,
    )


def package_version() -> str:
    """The installed loadkit distribution's version ("unknown" when not installed)."""
    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:
        return "unknown"

"""GET /metrics: the service's Prometheus metrics (see ``service.metrics``)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from service.dependencies import ServicesDep
from service.metrics import CONTENT_TYPE
from service.openapi import error_responses

router = APIRouter(tags=["health"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {
            "description": "Prometheus text format.",
            "content": {CONTENT_TYPE: {"schema": {"type": "string"}}},
        },
        **error_responses(),
    },
)
async def metrics(services: ServicesDep) -> Response:
    """Request counts and durations, in-flight requests, storage lock and pool figures."""
    return Response(content=services.metrics.render(), media_type=CONTENT_TYPE)

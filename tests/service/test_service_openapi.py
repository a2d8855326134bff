"""The OpenAPI document tells the truth about errors and auth (schemathesis checks it against the
live service in test_service_fuzz.py; these pin what a reader of the document relies on)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.service.engines_api import assert_error, auth_headers

OPERATIONS = [
    ("post", "/api/auth/register", {409, 422, 503}),
    ("post", "/api/auth/login", {401, 422, 429, 503}),
    ("get", "/api/auth/me", {401, 503}),
    ("post", "/api/items", {401, 422, 503}),
    ("get", "/api/items", {401, 422, 503}),
    ("get", "/api/items/{item_id}", {401, 404, 422, 503}),
    ("delete", "/api/items/{item_id}", {401, 404, 422, 503}),
    ("get", "/health", {503}),
    ("get", "/version", set()),
    ("get", "/metrics", set()),
]
EDGE = {400, 408, 413, 431, 500}
SECURED = {"/api/auth/me", "/api/items", "/api/items/{item_id}"}


@pytest.fixture
async def document(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


async def test_every_operation_documents_its_errors_as_the_envelope(
    document: dict[str, Any],
) -> None:
    documented = {(method, path) for path, item in document["paths"].items() for method in item}
    assert documented == {(method, path) for method, path, _ in OPERATIONS}
    for method, path, statuses in OPERATIONS:
        responses = document["paths"][path][method]["responses"]
        errors = {int(code) for code in responses if int(code) >= 400}
        assert errors == statuses | EDGE, (method, path)
        for code in errors:
            schema = responses[str(code)]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorEnvelope"}, (path, code)
            if code in (429, 503):
                assert "Retry-After" in responses[str(code)]["headers"]
    envelope = document["components"]["schemas"]["ErrorEnvelope"]
    assert envelope["required"] == ["error"]
    body = document["components"]["schemas"]["ErrorBody"]
    assert set(body["required"]) == {"kind", "message", "trace_id"}
    # FastAPI's own 422 shape is gone: the service never answers {"detail": ...}.
    assert "HTTPValidationError" not in document["components"]["schemas"]


async def test_the_bearer_scheme_is_declared_on_the_operations_that_need_it(
    document: dict[str, Any],
) -> None:
    schemes = document["components"]["securitySchemes"]
    ((name, scheme),) = schemes.items()
    assert (scheme["type"], scheme["scheme"], scheme["bearerFormat"]) == ("http", "bearer", "JWT")
    for method, path, _ in OPERATIONS:
        security = document["paths"][path][method].get("security")
        assert security == ([{name: []}] if path in SECURED else None), (method, path)


async def test_a_422_is_sent_as_the_documented_envelope(client: httpx.AsyncClient) -> None:
    headers = await auth_headers(client, "doc@example.org")
    assert_error(await client.get("/api/items?limit=0", headers=headers), 422, "validation_error")
    refused = await client.get("/api/items", headers={"Authorization": "Basic abc"})
    assert_error(refused, 401, "unauthorized")  # the declared scheme changed no refusal

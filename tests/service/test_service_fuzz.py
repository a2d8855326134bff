"""schemathesis against the real service (``python -m service`` on a loopback port): every operation
of the OpenAPI document, positive and negative examples, with and without a bearer token, every
check schemathesis has (status codes, content types, headers and bodies as documented, 405 with
``Allow``, auth enforced, ...), and never a 5xx.

Bounded and deterministic so that CI cannot flake: a fixed number of examples per operation,
derandomized generation (the same inputs every run), no example database, no deadline.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode
from schemathesis.core.parameters import ParameterLocation

from loadkit.run.bundled_service import BundledService
from service.app import create_app
from service.idempotency import IDEMPOTENCY_HEADER, MAX_KEY_CHARS
from service.settings import Settings

FuzzCase = schemathesis.Case[Any]
"""A generated case; its operation type (four generic parameters deep) is never used here."""

EXAMPLES_PER_OPERATION = 40
"""Per operation, mode and auth variant: ~2 × 9 × 40 requests in all, well under a minute here."""


@pytest.fixture(scope="module")
def fuzzed_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BundledService]:
    """One service for the whole module (fresh database, low bcrypt rounds)."""
    workdir: Path = tmp_path_factory.mktemp("fuzzed")
    with BundledService(workdir=workdir, env={"ENGINES_BCRYPT_ROUNDS": "4"}) as service:
        yield service


@pytest.fixture(scope="module")
def bearer(fuzzed_service: BundledService) -> dict[str, str]:
    """A valid token's header, for the authenticated half of the fuzzing."""
    credentials = {"email": "fuzz@example.org", "password": "password123"}
    with httpx.Client(base_url=fuzzed_service.url) as client:
        assert client.post("/api/auth/register", json=credentials).status_code == 201
        token = client.post("/api/auth/login", json=credentials).json()["access_token"]
    return {"Authorization": f"Bearer {token}"}


def service_document() -> dict[str, Any]:
    """The OpenAPI document the service serves, built without serving it (it depends only on
    the code, not on the settings' values): schemathesis's lazy ``from_fixture`` loader does not
    work with pytest 9, so the schema is loaded at import and the requests go to the process."""
    app = create_app(Settings(database_url="sqlite+aiosqlite:///:memory:"))
    return app.openapi()


schema = schemathesis.openapi.from_dict(service_document())
schema.config.generation.update(
    modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
    max_examples=EXAMPLES_PER_OPERATION,
    deterministic=True,
    database="none",
)


@schema.hook
def filter_body(context: schemathesis.HookContext, body: Any) -> bool:
    """Skip passwords over bcrypt's 72 UTF-8 bytes: the one rule the document can only state in
    words (JSON Schema counts characters), refused with 422 as the description says."""
    password = body.get("password") if isinstance(body, dict) else None
    return not (isinstance(password, str) and len(password.encode("utf-8", "replace")) > 72)


FUZZ_SETTINGS = settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=EXAMPLES_PER_OPERATION,
    suppress_health_check=list(HealthCheck),
)


def one_key_per_body(case: FuzzCase) -> None:
    """Give each body its own ``Idempotency-Key``: the generator reuses a few short keys across
    different bodies, which the service rightly refuses (422 ``idempotency_conflict``: same key,
    other request) and schemathesis would take for valid data rejected. A key the document does
    not allow (empty, too long) is kept as generated, so the header's own limits stay fuzzed."""
    if case.headers is None:
        return
    key = case.headers.get(IDEMPOTENCY_HEADER)
    if isinstance(key, str) and 1 <= len(key) <= MAX_KEY_CHARS:
        case.headers[IDEMPOTENCY_HEADER] = hashlib.sha256(
            repr((key, case.body)).encode()
        ).hexdigest()


@schema.parametrize()
@FUZZ_SETTINGS
def test_the_api_without_a_token_keeps_its_contract(
    case: FuzzCase, fuzzed_service: BundledService
) -> None:
    one_key_per_body(case)
    response = case.call_and_validate(base_url=fuzzed_service.url)
    assert response.status_code < 500, response.text


def with_token(case: FuzzCase, bearer: dict[str, str]) -> dict[str, str] | None:
    """The token to add to ``case``, unless its headers are the negative part of the case: a
    case whose mutation dropped or broke ``Authorization`` must be sent as generated, or adding
    the token back would make it valid and its 2xx a false "schema-violating request accepted"."""
    headers = case.meta.components.get(ParameterLocation.HEADER) if case.meta else None
    if headers is not None and headers.mode == GenerationMode.NEGATIVE:
        return None
    return bearer


@schema.parametrize()
@FUZZ_SETTINGS
def test_the_api_with_a_token_keeps_its_contract(
    case: FuzzCase, fuzzed_service: BundledService, bearer: dict[str, str]
) -> None:
    one_key_per_body(case)
    response = case.call_and_validate(base_url=fuzzed_service.url, headers=with_token(case, bearer))
    assert response.status_code < 500, response.text

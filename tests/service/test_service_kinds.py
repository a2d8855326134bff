"""The service's error kinds agree with the harness's (DESIGN.md, contract 2)."""

from __future__ import annotations

from loadkit.measure.kinds import CLIENT_KINDS, SERVER_KINDS
from service.errors import RETRYABLE_KINDS, STATUS_BY_KIND, ErrorKind, ServiceError


def all_subclasses(cls: type[ServiceError]) -> set[type[ServiceError]]:
    found: set[type[ServiceError]] = set()
    for sub in cls.__subclasses__():
        found |= {sub, *all_subclasses(sub)}
    return found


def test_service_kinds_are_the_harness_server_kinds() -> None:
    assert {kind.value for kind in ErrorKind} == SERVER_KINDS
    assert not {kind.value for kind in ErrorKind} & CLIENT_KINDS


def test_every_kind_has_a_status_and_an_error_class() -> None:
    assert set(STATUS_BY_KIND) == set(ErrorKind)
    classes = {cls.kind for cls in all_subclasses(ServiceError)}
    assert classes == set(ErrorKind)


def test_retryable_kinds_are_the_429_and_503_ones() -> None:
    assert {kind for kind, status in STATUS_BY_KIND.items() if status in (429, 503)} == set(
        RETRYABLE_KINDS
    )

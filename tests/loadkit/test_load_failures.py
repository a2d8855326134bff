"""How a request Locust counted as failed becomes an error kind (no Locust imported here)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from loadkit.engines.locust.failures import classify_failure, client_kind


@dataclass
class FakeResponse:
    """What the plugin reads of Locust's FastResponse."""

    status_code: int
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)


class HTTPConnectionClosed(Exception):
    """Named as geventhttpclient's."""


class HTTPParseError(Exception):
    """Named as geventhttpclient's (HTTPConnectionClosed's base)."""


class Timeout(BaseException):
    """Named as gevent's (a BaseException there too)."""


class RetriesExceeded(Exception):
    """As geventhttpclient's: what FastHttpUser raises on its network_timeout, the cause kept
    only in ``original`` (no __cause__ or __context__)."""

    def __init__(self, url: str, retries: int, *, original: BaseException | None) -> None:
        super().__init__(url, retries)
        self.original = original


def test_kind_message_and_trace_id_come_from_the_error_body() -> None:
    body = (
        b'{"error": {"kind": "storage_lock_timeout", "message": "storage busy", "trace_id": "t-9"}}'
    )
    failure = classify_failure(FakeResponse(503, body), Exception("503 Service Unavailable"))
    assert (failure.kind, failure.status, failure.trace_id, failure.message) == (
        "storage_lock_timeout",
        503,
        "t-9",
        "storage busy",
    )


def test_a_failed_response_without_a_kind_is_unexpected_status_with_the_header_trace() -> None:
    response = FakeResponse(502, b"<html>bad gateway</html>", {"X-Trace-Id": "h-1"})
    failure = classify_failure(response, Exception("502"))
    assert (failure.kind, failure.status, failure.trace_id) == ("unexpected_status", 502, "h-1")


def test_a_2xx_the_scenario_failed_is_unexpected_status_with_its_reason() -> None:
    failure = classify_failure(FakeResponse(200, b"{}"), Exception("expected an item id"))
    assert failure.kind == "unexpected_status"
    assert failure.message == "Exception: expected an item id"


@pytest.mark.parametrize(
    ("exception", "kind"),
    [
        (ConnectionRefusedError(111, "Connection refused"), "connect_error"),
        (ConnectionResetError(104, "Connection reset by peer"), "connection_reset"),
        (TimeoutError("timed out"), "timeout"),
        (Timeout(), "timeout"),
        (HTTPConnectionClosed("connection closed"), "connection_reset"),
        (ValueError("garbled status line"), "protocol_error"),
        (HTTPParseError("connection closed before end of the headers"), "connection_reset"),
        (HTTPParseError(("Invalid EOF state", 14)), "connection_reset"),
        (HTTPParseError("invalid HTTP status line"), "protocol_error"),
        (RetriesExceeded("http://h/x", 0, original=TimeoutError("timed out")), "timeout"),
        (RetriesExceeded("http://h/x", 0, original=Timeout()), "timeout"),
        (RetriesExceeded("http://h/x", 0, original=None), "protocol_error"),
    ],
)
def test_failures_without_a_response_are_classified_by_exception(
    exception: BaseException, kind: str
) -> None:
    assert client_kind(exception) == kind
    failure = classify_failure(FakeResponse(0), exception)
    assert (failure.kind, failure.status) == (kind, None)
    assert classify_failure(None, exception).kind == kind


@dataclass
class NoAnswer:
    """Locust's response to a request that got no answer: status 0, the connection's error kept."""

    error: BaseException
    status_code: int = 0


@pytest.mark.parametrize(
    ("cause", "kind"),
    [
        (ConnectionResetError(104, "Connection reset by peer"), "connection_reset"),
        (ConnectionRefusedError(111, "Connection refused"), "connect_error"),
        (HTTPConnectionClosed("connection closed"), "connection_reset"),
    ],
)
def test_a_scenario_failing_a_request_with_no_answer_keeps_the_connections_kind(
    cause: BaseException, kind: str
) -> None:
    # scenarios/api.py's wrong login: response.failure("expected 401 ..., got 0") replaces the
    # exception Locust reports with the scenario's words; the response still holds the cause.
    said = Exception("expected 401 for a wrong password, got 0")
    failure = classify_failure(NoAnswer(cause), said)
    assert failure.kind == kind
    assert failure.status is None
    assert "expected 401" in failure.message and type(cause).__name__ in failure.message


def test_a_response_cut_short_after_its_status_line_is_a_lost_connection_not_a_status() -> None:
    # geventhttpclient read "200 OK" and part of the body, then the server closed: httpx and the
    # native engine call that connection_reset, and so must the Locust path.
    failure = classify_failure(FakeResponse(200, None), HTTPParseError("Incomplete response."))
    assert (failure.kind, failure.status) == ("connection_reset", 200)
    assert failure.message.startswith("connection closed mid-response")

"""Error classification: the body's kind, unexpected statuses, and each client-side kind from a
real loopback server that misbehaves in that way."""

from __future__ import annotations

import httpx
import orjson
import pytest

from loadkit.engines.locust.failures import classify_failure, client_kind
from loadkit.measure.classify import (
    classify_httpx_error,
    classify_os_error,
    classify_response,
    error_from_body,
    is_http2_internal_error,
    trace_id_from_headers,
)
from loadkit.measure.kinds import ErrorKind
from tests.loadkit.misbehaving_servers import (
    answers,
    closed_port,
    h2_server,
    hangs,
    hangs_up,
    resets,
    serve,
    speaks_garbage,
)


def envelope(kind: object, message: str = "it broke", trace_id: str = "t-123") -> bytes:
    return orjson.dumps({"error": {"kind": kind, "message": message, "trace_id": trace_id}})


# --- responses (pure) -----------------------------------------------------------------------


def test_expected_status_is_ok_even_when_it_is_an_error_status() -> None:
    verdict = classify_response(
        401, {"X-Trace-Id": "t"}, envelope("invalid_credentials"), expected_status=401
    )
    assert verdict.ok
    assert verdict.kind is None
    assert verdict.trace_id == "t"


def test_body_kind_is_the_kind_of_a_failed_response() -> None:
    verdict = classify_response(503, {}, envelope("storage_lock_timeout"))
    assert verdict.kind == ErrorKind.STORAGE_LOCK_TIMEOUT
    assert verdict.trace_id == "t-123"
    assert verdict.message == "it broke"


def test_unknown_body_kind_is_kept_as_the_server_said_it() -> None:
    verdict = classify_response(500, {}, envelope("disk_on_fire"))
    assert verdict.kind == "disk_on_fire"


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"<html>Bad Gateway</html>",
        b"{not json",
        b'{"detail": "Not Found"}',
        b'{"error": "a string, not an envelope"}',
        envelope(None),
        envelope(42),
        envelope("has spaces and; punctuation"),
        envelope("x" * 200),
        b"[1, 2, 3]",
    ],
)
def test_failed_response_without_a_usable_kind_is_unexpected_status(body: bytes) -> None:
    verdict = classify_response(502, {"x-trace-id": "from-header"}, body)
    assert verdict.kind == ErrorKind.UNEXPECTED_STATUS
    assert verdict.trace_id in {"from-header", "t-123"}


def test_wrong_success_status_is_unexpected_status() -> None:
    verdict = classify_response(200, {}, b'{"id": 1}', expected_status=201)
    assert verdict.kind == ErrorKind.UNEXPECTED_STATUS
    assert verdict.message == "status 200, expected 201"


def test_without_expectation_below_400_is_ok() -> None:
    assert classify_response(204, None, None).ok
    assert classify_response(302, None, None).ok
    assert not classify_response(404, None, None).ok


def test_huge_body_is_not_parsed() -> None:
    body = envelope("storage_lock_timeout", message="x" * 100_000)
    assert error_from_body(body) is None


def test_trace_id_header_lookup_ignores_case() -> None:
    assert trace_id_from_headers({"X-TRACE-ID": "abc"}) == "abc"
    assert trace_id_from_headers({"x-trace-id": "abc"}) == "abc"
    assert trace_id_from_headers({}) is None
    assert trace_id_from_headers(None) is None


def test_os_errors_map_without_httpx() -> None:
    assert classify_os_error(ConnectionRefusedError()) == ErrorKind.CONNECT_ERROR
    assert classify_os_error(ConnectionResetError()) == ErrorKind.CONNECTION_RESET
    assert classify_os_error(BrokenPipeError()) == ErrorKind.CONNECTION_RESET
    assert classify_os_error(TimeoutError()) == ErrorKind.TIMEOUT
    assert classify_os_error(ValueError()) is None
    wrapped = RuntimeError("wrapper")
    wrapped.__cause__ = ConnectionResetError()
    assert classify_os_error(wrapped) == ErrorKind.CONNECTION_RESET


def test_h2_internal_error_is_read_from_the_message_httpx_keeps() -> None:
    error = httpx.RemoteProtocolError("<StreamReset stream_id:1, error_code:2, remote_reset:True>")
    assert is_http2_internal_error(error)
    other = httpx.RemoteProtocolError("<StreamReset stream_id:1, error_code:8, remote_reset:True>")
    assert not is_http2_internal_error(other)
    # Other codes have kinds of their own (issue #16), never protocol_error.
    assert classify_httpx_error(other) == ErrorKind.HTTP2_STREAM_RESET


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("<StreamReset stream_id:3, error_code:2, remote_reset:True>", "http2_internal_error"),
        ("<StreamReset stream_id:3, error_code:ErrorCodes.INTERNAL_ERROR, remote_reset:True>",
         "http2_internal_error"),
        ("<StreamReset stream_id:3, error_code:7, remote_reset:True>", "http2_refused_stream"),
        ("<StreamReset stream_id:3, error_code:11, remote_reset:True>", "http2_stream_reset"),
        ("<ConnectionTerminated error_code:2, last_stream_id:1, additional_data:None>",
         "http2_internal_error"),
        ("<ConnectionTerminated error_code:ErrorCodes.NO_ERROR, last_stream_id:1, "
         "additional_data:None>", "http2_goaway"),
        ("<ConnectionTerminated error_code:7, last_stream_id:1, additional_data:None>",
         "http2_goaway"),
    ],
)  # fmt: skip
def test_each_http2_reset_or_goaway_code_has_its_kind(text: str, kind: str) -> None:
    assert classify_httpx_error(httpx.RemoteProtocolError(text)) == kind


class Http2StreamReset(ConnectionError):
    """As scenarios/http2_user.py raises it (importing it here would import Locust, which
    monkey-patches the test process): loadkit reads ``http2_frame`` and ``error_code``."""

    http2_frame = "RST_STREAM"

    def __init__(self, stream_id: int, error_code: int) -> None:
        self.error_code = error_code
        super().__init__(f"stream {stream_id} reset by the server: CANCEL ({error_code})")


class Http2GoAway(ConnectionError):
    """As scenarios/http2_user.py raises it."""

    http2_frame = "GOAWAY"

    def __init__(self, error_code: int, last_stream_id: int) -> None:
        self.error_code = error_code
        super().__init__(f"GOAWAY {error_code}, last stream {last_stream_id}")


def test_the_http2_users_own_errors_are_classified_by_frame_and_code() -> None:
    assert client_kind(Http2StreamReset(5, 2)) == ErrorKind.HTTP2_INTERNAL_ERROR
    assert client_kind(Http2StreamReset(5, 7)) == ErrorKind.HTTP2_REFUSED_STREAM
    assert client_kind(Http2StreamReset(5, 8)) == ErrorKind.HTTP2_STREAM_RESET
    assert client_kind(Http2GoAway(2, 1)) == ErrorKind.HTTP2_INTERNAL_ERROR
    assert client_kind(Http2GoAway(0, 1)) == ErrorKind.HTTP2_GOAWAY
    assert "CANCEL (8)" in classify_failure(None, Http2StreamReset(5, 8)).message


# --- real servers ---------------------------------------------------------------------------


async def kind_of_failure(url: str, *, http2: bool = False, timeout: float = 5.0) -> str:
    """The kind httpx's failure to get ``url`` is classified as (fails if it got a response)."""
    async with httpx.AsyncClient(http1=not http2, http2=http2, timeout=timeout) as client:
        with pytest.raises(httpx.HTTPError) as caught:
            await client.get(url + "/api/items")
    return classify_httpx_error(caught.value)


async def test_connect_error_from_a_closed_port() -> None:
    assert await kind_of_failure(closed_port()) == ErrorKind.CONNECT_ERROR


async def test_connection_reset_from_a_server_that_aborts() -> None:
    with serve(resets) as url:
        assert await kind_of_failure(url) == ErrorKind.CONNECTION_RESET


async def test_connection_reset_from_a_server_that_hangs_up_without_answering() -> None:
    with serve(hangs_up) as url:
        assert await kind_of_failure(url) == ErrorKind.CONNECTION_RESET


async def test_timeout_from_a_server_that_never_answers() -> None:
    with serve(hangs) as url:
        assert await kind_of_failure(url, timeout=0.3) == ErrorKind.TIMEOUT


async def test_protocol_error_from_a_server_that_speaks_garbage() -> None:
    with serve(speaks_garbage) as url:
        assert await kind_of_failure(url) == ErrorKind.PROTOCOL_ERROR


async def test_http2_internal_error_from_a_stream_reset() -> None:
    with serve(h2_server()) as url:
        assert await kind_of_failure(url, http2=True) == ErrorKind.HTTP2_INTERNAL_ERROR


async def test_http2_internal_error_from_a_goaway() -> None:
    with serve(h2_server(goaway=True)) as url:
        assert await kind_of_failure(url, http2=True) == ErrorKind.HTTP2_INTERNAL_ERROR


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [
        (500, b"Internal Server Error", ErrorKind.UNEXPECTED_STATUS),
        (503, envelope("storage_lock_timeout"), ErrorKind.STORAGE_LOCK_TIMEOUT),
        (418, envelope("teapot_overflow"), "teapot_overflow"),
    ],
)
async def test_responses_from_a_real_server(status: int, body: bytes, kind: str) -> None:
    with serve(answers(status, body)) as url:
        async with httpx.AsyncClient() as client:
            response = await client.get(url + "/api/items")
    verdict = classify_response(response.status_code, response.headers, response.content)
    assert verdict.kind == kind
    assert verdict.trace_id in {"t-123", "trace-from-header"}

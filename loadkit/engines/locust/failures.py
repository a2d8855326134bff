"""A request Locust counted as failed, as one error kind (DESIGN.md, contract 2).

The Locust plugin hands over what Locust's request event carries: the response object (a
``FastResponse``, a requests ``Response`` or None) and the exception. With a response, the kind is
the service's word from the body (``loadkit.measure.classify``); without one (status 0), it
comes from the exception: the connection's own, which Locust keeps on the response as ``error``
when a scenario failed the request with words of its own. geventhttpclient and gevent raise the
stdlib's socket errors, their own ``HTTPConnectionClosed`` and ``HTTPParseError``, and
``gevent.Timeout``. Pure and Locust-free, so it is tested without monkey-patching a test process.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from loadkit.measure.classify import (
    classify_http2_error,
    classify_os_error,
    classify_response,
    describe_error,
)
from loadkit.measure.error_reader import ErrorReader
from loadkit.measure.kinds import ErrorKind


@dataclass(frozen=True, slots=True)
class Failure:
    """What the recorder keeps of a failed request."""

    kind: str
    status: int | None
    trace_id: str | None
    message: str


def classify_failure(
    response: Any,
    exception: BaseException,
    reader: ErrorReader | None = None,
    sent_trace_id: str | None = None,
) -> Failure:
    """The kind, status, trace id and message of a request Locust counted as failed; ``reader``
    reads the kind where the target profile says (None: the bundled service's envelope); the
    trace id is the API's, else ``sent_trace_id``, the one the request carried."""
    failure = _classify(response, exception, reader)
    if failure.trace_id is None and sent_trace_id is not None:
        return replace(failure, trace_id=sent_trace_id)
    return failure


def _classify(response: Any, exception: BaseException, reader: ErrorReader | None) -> Failure:
    status = int(getattr(response, "status_code", 0) or 0) if response is not None else 0
    if status <= 0:
        cause = getattr(response, "error", None)
        if isinstance(cause, BaseException) and cause is not exception:
            # A scenario that failed a request with no answer itself (catch_response:
            # ``response.failure("expected 401, got 0")``) replaced the connection's error with
            # its words; Locust's response still holds that error, and it is the kind.
            message = f"{describe_error(exception)} ({describe_error(cause)})"
            return Failure(client_kind(cause), None, None, message)
        return Failure(client_kind(exception), None, None, describe_error(exception))
    headers = getattr(response, "headers", None)
    try:
        body = response.content
    except Exception:  # a body that cannot be read has no kind to give
        body = None
    verdict = classify_response(status, headers, body, reader=reader)
    if verdict.kind is None and _cut_short(exception):
        # The status line came, then the connection closed before the body's end: the response
        # was lost, as httpx (smoke) and the native engine say it, not an unexpected status.
        return Failure(
            ErrorKind.CONNECTION_RESET.value,
            status,
            verdict.trace_id,
            f"connection closed mid-response ({describe_error(exception)})",
        )
    if verdict.kind is None:
        # The status alone looks fine, yet the scenario failed it (catch_response): say why.
        return Failure(
            ErrorKind.UNEXPECTED_STATUS.value, status, verdict.trace_id, describe_error(exception)
        )
    return Failure(
        verdict.kind, status, verdict.trace_id, verdict.message or describe_error(exception)
    )


def client_kind(exception: BaseException) -> str:
    """The kind of a failure that got no response."""
    original = getattr(exception, "original", None)
    if isinstance(original, BaseException) and original is not exception:
        # geventhttpclient gives up on an error it retries (a read timeout above all) with
        # RetriesExceeded(url, retries, original=<the error>), a ConnectionError of its own
        # that chains nothing: FastHttpUser's network_timeout arrives so. The cause is the kind.
        return client_kind(original)
    # scenarios' Http2User: a reset stream or a GOAWAY (a ConnectionError, so checked first)
    kind = classify_http2_error(exception) or classify_os_error(exception)
    if kind is not None:
        return kind
    name = type(exception).__name__
    if "Timeout" in name:  # gevent.Timeout, requests' ReadTimeout/ConnectTimeout
        return ErrorKind.TIMEOUT.value
    if "ConnectionClosed" in name or _cut_short(exception):
        # geventhttpclient: the server closed without answering, or in the middle of its answer
        return ErrorKind.CONNECTION_RESET.value
    return ErrorKind.PROTOCOL_ERROR.value


_CUT_SHORT = ("incomplete response", "connection closed", "invalid eof state")
"""geventhttpclient's ``HTTPParseError`` words when the connection ended inside a response
("connection closed before end of the headers", "Incomplete response." mid-body, its C parser's
"Invalid EOF state" mid-headers); its other parse errors (garbage) stay ``protocol_error``."""


def _cut_short(exception: BaseException) -> bool:
    if type(exception).__name__ != "HTTPParseError":
        return False
    text = str(exception).lower()
    return any(words in text for words in _CUT_SHORT)

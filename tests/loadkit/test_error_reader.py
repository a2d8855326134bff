"""The target profile's error reader: kinds from a body path, a header, an RFC 7807 problem,
then the status."""

from __future__ import annotations

import orjson
import pytest

from loadkit.config import TargetProfile
from loadkit.measure.classify import classify_response
from loadkit.measure.error_reader import ErrorReader, problem_kind


def reader(**profile: object) -> ErrorReader:
    return ErrorReader(TargetProfile.model_validate(profile))


def test_a_body_path_a_header_and_the_status_fallback() -> None:
    by_body = reader(
        error_kind={"body": "err.code"},
        error_message="err.text",
        error_trace_id="trace",
        status_kinds={"5xx": "server_error", "503": "overloaded"},
    )
    body = orjson.dumps({"err": {"code": "OUT_OF_STOCK", "text": "none left"}, "trace": "t-1"})
    verdict = classify_response(409, {}, body, reader=by_body)
    assert (verdict.kind, verdict.message, verdict.trace_id) == ("OUT_OF_STOCK", "none left", "t-1")
    # No kind in the answer: the exact status wins over its class, then unexpected_status.
    assert classify_response(503, {}, b"<html>", reader=by_body).kind == "overloaded"
    assert classify_response(502, {}, b"", reader=by_body).kind == "server_error"
    assert classify_response(418, {}, b"", reader=by_body).kind == "unexpected_status"

    by_header = reader(error_kind={"header": "X-Error-Code"}, trace_response_header="X-Req")
    verdict = classify_response(
        429, {"x-error-code": "throttled", "x-req": "r-7"}, b"", reader=by_header
    )
    assert (verdict.kind, verdict.trace_id) == ("throttled", "r-7")


@pytest.mark.parametrize(
    ("problem", "kind"),
    [
        ({"type": "https://api.example/probs/out-of-stock", "title": "Gone"}, "out-of-stock"),
        ({"type": "about:blank", "title": "Payment Required"}, "payment_required"),
        ({"type": "about:blank"}, None),
    ],
)
def test_problem_kinds(problem: dict[str, str], kind: str | None) -> None:
    assert problem_kind(problem) == kind


def test_the_default_profile_is_the_bundled_envelope() -> None:
    assert TargetProfile().is_bundled
    body = orjson.dumps({"error": {"kind": "conflict", "message": "taken", "trace_id": "abc"}})
    assert reader().read(409, {}, body).kind == "conflict"
    assert classify_response(409, {}, body).kind == "conflict"

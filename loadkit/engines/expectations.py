"""What a smoke step's response must be, judged: headers, body fields (JMESPath), latency.

Pure: handed the response's parts, returns the first expectation that failed, as words with the
expected and the actual value (truncated, secrets masked). The status is judged before these,
with the error kinds (``measure.classify``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jmespath
import orjson

from loadkit.config import Expectation, SmokeRequest
from loadkit.engines.templates import Secrets, as_text, render, render_json

MAX_SHOWN_CHARS = 80
"""How much of an expected or actual value a message shows."""

_ABSENT = object()
_SYMBOLS = {"lt": "<", "le": "≤", "gt": ">", "ge": "≥"}


@dataclass(frozen=True)
class Response:
    """What came back, as the expectations read it."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    latency_ms: float


@dataclass(frozen=True)
class FailedExpectation:
    """One expectation not met: what was tested, what it wanted, what it got."""

    what: str
    expected: str
    actual: str

    @property
    def message(self) -> str:
        """``body `total`: expected ≥ 10, got 3``."""
        return f"{self.what}: expected {self.expected}, got {self.actual}"


def shown(value: object, secrets: Secrets) -> str:
    """A value for a message: JSON for data, masked, cut at ``MAX_SHOWN_CHARS``."""
    if value is _ABSENT or value is None:
        return "nothing" if value is _ABSENT else "null"
    text = secrets.mask(orjson.dumps(value).decode() if not isinstance(value, str) else repr(value))
    return text if len(text) <= MAX_SHOWN_CHARS else text[: MAX_SHOWN_CHARS - 1] + "…"


def body_document(body: bytes) -> Any:
    """The JSON body, or ``_ABSENT`` when it is empty or not JSON."""
    try:
        return orjson.loads(body) if body.strip() else _ABSENT
    except orjson.JSONDecodeError:
        return _ABSENT


def search(expression: str, document: Any) -> Any:
    """The JMESPath ``expression`` on a parsed body (None when absent or not JSON)."""
    if document is _ABSENT:
        return None
    return jmespath.search(expression, document)


def first_failure(
    request: SmokeRequest,
    response: Response,
    values: Mapping[str, object],
    secrets: Secrets,
) -> FailedExpectation | None:
    """The first of ``request``'s expectations (then its latency ceiling) that ``response``
    does not meet; None when all hold. Expected values are filled from ``values`` first."""
    document = body_document(response.body) if any(e.body for e in request.expect) else _ABSENT
    for expectation in request.expect:
        failure = _judge(expectation, response, document, values, secrets)
        if failure is not None:
            return failure
    ceiling = request.max_latency_ms
    if ceiling is not None and response.latency_ms > ceiling:
        return FailedExpectation("latency", f"≤ {ceiling:g} ms", f"{response.latency_ms:.1f} ms")
    return None


def _judge(
    expectation: Expectation,
    response: Response,
    document: Any,
    values: Mapping[str, object],
    secrets: Secrets,
) -> FailedExpectation | None:
    if expectation.body is not None:
        if document is _ABSENT:
            actual: Any = _ABSENT
            got = "a body that is not JSON"
        else:
            actual = jmespath.search(expectation.body, document)
            got = shown(actual, secrets)
    else:
        assert expectation.header is not None
        actual = _header(response.headers, expectation.header)
        got = shown(actual, secrets)
    test = expectation.test
    operand = render_json(expectation.operand, values, secrets)
    present = actual is not _ABSENT and actual is not None
    if test == "exists":
        if present == operand:
            return None
        return FailedExpectation(expectation.subject, "present" if operand else "absent", got)
    if test in ("equals", "not_equals"):
        same = _same(actual, operand)
        if same == (test == "equals"):
            return None
        wanted = shown(operand, secrets)
        return FailedExpectation(
            expectation.subject, wanted if test == "equals" else f"anything but {wanted}", got
        )
    if test == "matches":
        text = actual if isinstance(actual, str) else None
        if text is None and present and not isinstance(actual, dict | list):
            text = as_text(actual)  # a number or a boolean, matched as written
        # Saved values and secrets go into the pattern as literals (config.py checked the
        # pattern as written).
        pattern = render(str(expectation.operand), values, secrets, literal=re.escape)
        if text is not None and re.search(pattern, text):
            return None
        return FailedExpectation(
            expectation.subject, f"to match {secrets.mask(repr(pattern))}", got
        )
    number = _number(actual)
    bound = float(operand)
    holds = (
        number is not None
        and {
            "lt": number < bound,
            "le": number <= bound,
            "gt": number > bound,
            "ge": number >= bound,
        }[test]
    )
    if holds:
        return None
    return FailedExpectation(expectation.subject, f"{_SYMBOLS[test]} {bound:g}", got)


def _header(headers: Mapping[str, str], name: str) -> object:
    value = headers.get(name)
    if value is None:
        lowered = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lowered), None)
    return _ABSENT if value is None else value


def _same(actual: Any, expected: Any) -> bool:
    # JSON has one number type (1 == 1.0), but true is not 1.
    if isinstance(actual, bool) or isinstance(expected, bool):
        return type(actual) is type(expected) and actual == expected
    return bool(actual == expected)


def _number(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):  # a header, or a number sent as a string
        try:
            number = float(value)
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None

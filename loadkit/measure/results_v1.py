"""Reading ``loadkit.results/1`` files: their free-text validity, turned into coded reasons.

``/1`` kept validity three ways (``aborted``, ``generator.overloaded``, ``invalid_reasons`` as
strings). This is the one place where loadkit reads validity from text: the strings ``/1``
writers produced are recognised by their known prefixes; any other string still makes the run
invalid (code ``unspecified``, the text kept as detail). Everything else in ``/1`` has the same
form and meaning in ``/2``.
"""

from __future__ import annotations

from typing import Any

from loadkit.exceptions import InputError
from loadkit.measure.validity import InvalidCode, InvalidReason, aborted_reason, add_reason

# (prefix, the part of it that is not detail, code), most specific first. The texts are those
# loadkit wrote before /2: the load launcher and plugin ("aborted: ...", "generator overloaded:
# ...", "incomplete: ..."), smoke ("smoke aborted: ...") and the lock audit ("lock audit aborted:
# ...").
_V1_PREFIXES: tuple[tuple[str, str, InvalidCode], ...] = (
    ("incomplete: no final share from worker(s) ", "incomplete: ", "worker_share_missing"),
    ("incomplete: ", "incomplete: ", "incomplete"),
    ("generator overloaded: ", "generator overloaded: ", "generator_overloaded"),
    ("smoke aborted: ", "smoke aborted: ", "aborted"),
    ("lock audit aborted: ", "lock audit aborted: ", "aborted"),
    ("aborted: ", "aborted: ", "aborted"),
)


def reason_from_v1(text: str) -> InvalidReason:
    """The coded reason for one ``/1`` reason string."""
    for prefix, label, code in _V1_PREFIXES:
        if text.startswith(prefix):
            return InvalidReason(code=code, detail=text.removeprefix(label))
    return InvalidReason(code="unspecified", detail=text)


def upgrade_v1(data: dict[str, Any], *, source: str) -> dict[str, Any]:
    """A ``/1`` results document in the form of ``/2``, but for its ``schema`` (not validated).

    Reasons of an unexpected type are left as they are, for validation to name them.
    """
    flag = data.get("aborted", False)
    if not isinstance(flag, bool):
        raise InputError(
            f"{source}: invalid loadkit results file: aborted: {flag!r} is not true or false"
        )
    upgraded = {key: value for key, value in data.items() if key != "aborted"}
    texts = data.get("invalid_reasons", [])
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        return upgraded
    # Each text kept (two of one code say different things), a repeated one once, as /1 readers
    # showed it.
    reasons = [reason_from_v1(text) for text in dict.fromkeys(texts)]
    if flag is True:
        reasons = add_reason(reasons, aborted_reason("the run was stopped before its planned end"))
    upgraded["invalid_reasons"] = [reason.model_dump() for reason in reasons]
    # generator.overloaded needs nothing here: /2 results always carry its reason.
    return upgraded

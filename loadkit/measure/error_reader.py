"""How a failed response of the API under test says its error kind, message and trace id.

Pure. Built once from the target profile (``[target]`` in acceptance.toml): the kind from a body
field (JMESPath), a header, or an RFC 7807 problem (``type``'s last segment, else ``title``),
then ``status_kinds`` (exact status, then its class). The bundled service's profile never builds
one: ``classify.error_from_body`` reads its envelope the fast way.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import jmespath
import orjson

from loadkit.config import KIND_SYNTAX, TargetProfile
from loadkit.measure.classify import MAX_ERROR_BODY_BYTES, BodyError

_NOT_IN_KIND = re.compile(r"[^A-Za-z0-9_.:-]+")


class ErrorReader:
    """Reads a failed response's error the way the target profile says."""

    def __init__(self, profile: TargetProfile) -> None:
        self.profile = profile
        source = profile.error_kind
        self._kind = jmespath.compile(source.body) if source.body is not None else None
        self._header = source.header
        self._problem = source.problem
        message = profile.error_message
        if source.problem and "error_message" not in profile.model_fields_set:
            message = "detail || title"
        self._message = jmespath.compile(message) if message else None
        self._trace_id = (
            jmespath.compile(profile.error_trace_id) if profile.error_trace_id else None
        )
        self._by_status = dict(profile.status_kinds)
        self.trace_response_header = profile.trace_response_header

    def read(
        self, status: int, headers: Mapping[str, str] | None, body: bytes | str | None
    ) -> BodyError:
        """The error's kind (None when the response says none), message and trace id."""
        document = _document(body)
        kind: Any = None
        if self._kind is not None and document is not None:
            kind = self._kind.search(document)
        elif self._header is not None:
            kind = _header(headers, self._header)
        elif self._problem and isinstance(document, dict):
            kind = problem_kind(document)
        if not (isinstance(kind, str) and KIND_SYNTAX.fullmatch(kind)):
            kind = self.status_kind(status)
        message = self._message.search(document) if self._message and document is not None else None
        trace = self._trace_id.search(document) if self._trace_id and document is not None else None
        return BodyError(
            kind=kind,
            message=message if isinstance(message, str) else None,
            trace_id=trace if isinstance(trace, str) and trace else None,
        )

    def status_kind(self, status: int) -> str | None:
        """The kind ``status_kinds`` gives ``status``: its own entry, else its class's."""
        return self._by_status.get(str(status)) or self._by_status.get(f"{status // 100}xx")


def problem_kind(document: Mapping[str, Any]) -> str | None:
    """An RFC 7807 problem's kind: the last path segment of ``type`` (``.../out-of-stock`` ->
    ``out-of-stock``), else its ``title`` in snake_case; None for ``about:blank`` and no title."""
    kind_type = document.get("type")
    if isinstance(kind_type, str) and kind_type and kind_type != "about:blank":
        segment = kind_type.rstrip("/").rsplit("/", 1)[-1].rsplit("#", 1)[-1]
        cleaned = _NOT_IN_KIND.sub("_", segment).strip("_")
        if cleaned and KIND_SYNTAX.fullmatch(cleaned):
            return cleaned
    title = document.get("title")
    if isinstance(title, str):
        cleaned = _NOT_IN_KIND.sub("_", title.strip().lower()).strip("_")[:64]
        if cleaned and KIND_SYNTAX.fullmatch(cleaned):
            return cleaned
    return None


def _document(body: bytes | str | None) -> Any:
    if not body:
        return None
    raw = body.encode() if isinstance(body, str) else body
    if len(raw) > MAX_ERROR_BODY_BYTES:
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None


def _header(headers: Mapping[str, str] | None, name: str) -> str | None:
    if not headers:
        return None
    value = headers.get(name)
    if value is None:
        lowered = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lowered), None)
    return value

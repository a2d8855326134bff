"""A declarative scenario's request as the bytes the native engine sends: what is constant is
encoded once, and only the places where a template has a ``{name}`` are filled in per request.

Pure. What is sent is what the Locust path sends for the same request
(``scenarios/declarative_spec.py``'s ``prepare``): the path filled in, the query URL-encoded
(``urlencode``: booleans as ``true``/``false``) after it, the headers filled in, a ``json`` body
as ``json.dumps`` writes it (a string that is one ``{name}`` alone keeps the value's type; with
``Content-Type`` and ``Accept: application/json`` unless given) or a form URL-encoded (with its
``Content-Type`` unless given). A value that is not a string goes into text as JSON.
``${ENV_VAR}`` secrets are read once, before the run, and folded into the constant parts.

The trace header comes last in the head, so that a request is its head, the ids, and a tail
(``-01``, the blank line, the body): the ids' offset is the head's length (``Rendered``).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, quote_plus

from loadkit.engines.native.request_bytes import PATH_SAFE, TRACE_HEADER, USER_AGENT
from loadkit.exceptions import ConfigError

_TEMPLATE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\{([A-Za-z_][A-Za-z0-9_]*)\}")
FRESH_VALUES = frozenset({"new_email", "uuid"})
"""Values made anew at each use (``loadkit.engines.declarative.FRESH_VALUES``)."""
FORM_TYPE = "application/x-www-form-urlencoded"
JSON_TYPE = "application/json"
_UNSENDABLE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
"""Control characters (tab aside): no request line or header can carry them."""
_WRITTEN_BY_ENGINE = frozenset({"content-length", "connection", "transfer-encoding"})

Values = Mapping[str, Any]
"""A user's values by name: those it made (``email``, ``password``) and those it saved."""


class UnsendableValue(Exception):
    """A value filled into a path or a header cannot go on the wire (a line break, a character
    outside Latin-1): the request is not sent. The message names the place, never the value."""


def fresh_value(name: str) -> str:
    """A value made anew at each use, as the Locust path makes it."""
    if name == "uuid":
        return str(uuid.uuid4())
    return f"load-{uuid.uuid4().hex}@loadkit.test"  # new_email


def value_of(name: str, values: Values) -> Any:
    """A ``{name}``'s value: fresh ones made now, the others the user's."""
    if name in FRESH_VALUES:
        return fresh_value(name)
    return values[name]


def as_text(value: Any) -> str:
    """A value as it goes into text: a string as it is, anything else as ``json.dumps``
    writes it (the Locust path's ``Values.fill``)."""
    return value if isinstance(value, str) else json.dumps(value)


@dataclass(frozen=True)
class Text:
    """A template string, split once into constant runs (secrets already in them) and the
    names filled in per request."""

    parts: tuple[str | tuple[str], ...]
    """Constant text, or a 1-tuple holding a ``{name}``."""

    @property
    def constant(self) -> str | None:
        """The text when it has no ``{name}`` (None: it must be filled per request)."""
        if not self.parts:
            return ""
        if len(self.parts) == 1 and isinstance(self.parts[0], str):
            return self.parts[0]
        return None

    @property
    def names(self) -> frozenset[str]:
        """The ``{name}``s it uses."""
        return frozenset(part[0] for part in self.parts if isinstance(part, tuple))

    def fill(self, values: Values) -> str:
        """The text with its names filled in."""
        return "".join(
            part if isinstance(part, str) else as_text(value_of(part[0], values))
            for part in self.parts
        )


def split_text(text: str, secrets: Mapping[str, str]) -> Text:
    """``text`` as a ``Text``: every ``${VAR}`` replaced by its value from ``secrets`` (which must
    hold it), every ``{name}`` kept to be filled."""
    parts: list[str | tuple[str]] = []
    constant: list[str] = []
    at = 0
    for match in _TEMPLATE.finditer(text):
        constant.append(text[at : match.start()])
        at = match.end()
        if match.group(1) is not None:
            constant.append(secrets[match.group(1)])
        else:
            if "".join(constant):
                parts.append("".join(constant))
            constant = []
            parts.append((match.group(2),))
    constant.append(text[at:])
    if "".join(constant):
        parts.append("".join(constant))
    return Text(tuple(parts))


def _json_names(value: Any, secrets: Mapping[str, str]) -> Any:
    """A JSON body template: each string a ``Text`` (a string that is one ``{name}`` alone
    becomes a 1-tuple: the value itself goes there, keeping its type)."""
    if isinstance(value, str):
        whole = _TEMPLATE.fullmatch(value)
        if whole is not None and whole.group(2) is not None:
            return (whole.group(2),)
        return split_text(value, secrets)
    if isinstance(value, dict):
        return {key: _json_names(item, secrets) for key, item in value.items()}
    if isinstance(value, list):
        return [_json_names(item, secrets) for item in value]
    return value


def _fill_json(template: Any, values: Values) -> Any:
    if isinstance(template, Text):
        return template.fill(values)
    if isinstance(template, tuple):
        return value_of(template[0], values)
    if isinstance(template, dict):
        return {key: _fill_json(item, values) for key, item in template.items()}
    if isinstance(template, list):
        return [_fill_json(item, values) for item in template]
    return template


def _json_constant(template: Any) -> bool:
    if isinstance(template, Text):
        return template.constant is not None
    if isinstance(template, tuple):
        return False
    if isinstance(template, dict):
        return all(_json_constant(item) for item in template.values())
    if isinstance(template, list):
        return all(_json_constant(item) for item in template)
    return True


def _scalar(value: Any, secrets: Mapping[str, str]) -> Text:
    """A query or form value (booleans as ``true``/``false``, as in JSON)."""
    if isinstance(value, bool):
        return Text(("true" if value else "false",))
    if isinstance(value, str):
        return split_text(value, secrets)
    return Text((str(value),))


Rendered = tuple[bytes, int]
"""One request's bytes, and where its trace id starts in them (a plain tuple: one is made for
every request)."""


class RequestTemplate:
    """One request of a scenario: its constant parts encoded, its templates filled per request."""

    def __init__(
        self,
        *,
        where: str,
        method: str,
        path: str,
        query: Mapping[str, Any],
        headers: Mapping[str, str],
        json_body: Any = None,
        has_json: bool = False,
        form: Mapping[str, Any] | None = None,
        secrets: Mapping[str, str],
        host: str,
        trace_header: str = TRACE_HEADER,
        base_path: str = "",
    ) -> None:
        """``where`` names the request in errors; ``host`` is the Host header; ``base_path`` the
        target's path without its trailing slash, put before ``path`` once ``path`` is filled
        in (``scenario_base_path``; the Locust path gets the same base as ``--host``, which
        Locust prepends); ``secrets`` the values of the ``${VAR}``s
        it uses. A ``ConfigError`` for a header the engine writes itself
        or a secret that cannot be sent in a header."""
        self.where = where
        self.method = method
        self.w3c = trace_header.lower() == TRACE_HEADER
        self._base_path = base_path
        self._path = split_text(path, secrets)
        self._query = tuple((quote_plus(str(key)), _scalar(v, secrets)) for key, v in query.items())
        given = {name.lower() for name in headers}
        constant_lines: list[str] = []
        if "host" not in given:
            constant_lines.append(f"Host: {host}")
        self._headers: list[tuple[bytes, str, Text]] = []
        for name, text in headers.items():
            lowered = name.lower()
            if lowered in _WRITTEN_BY_ENGINE or lowered == trace_header.lower():
                raise ConfigError(
                    f"{where}: header {name}: the native engine writes this header itself "
                    "(framing, keep-alive, the trace header); leave it out, or use --engine locust"
                )
            split = split_text(text, secrets)
            value = split.constant
            if value is None:
                self._headers.append((f"{name}: ".encode("latin-1"), name, split))
                continue
            _check_header(where, name, value)
            constant_lines.append(f"{name}: {value}")
        body: bytes | None = b""
        self._json: Any = None
        self._form: tuple[tuple[str, Text], ...] | None = None
        if has_json:
            template = _json_names(json_body, secrets)
            if _json_constant(template):
                body = json.dumps(_fill_json(template, {})).encode()
            else:
                self._json, body = template, None
            if "content-type" not in given:
                constant_lines.append(f"Content-Type: {JSON_TYPE}")
            if "accept" not in given:
                constant_lines.append(f"Accept: {JSON_TYPE}")
        elif form is not None:
            self._form = tuple((quote_plus(str(k)), _scalar(v, secrets)) for k, v in form.items())
            if all(text.constant is not None for _, text in self._form):
                body, self._form = self._form_body({}), None
            else:
                body = None
            if "content-type" not in given:
                constant_lines.append(f"Content-Type: {FORM_TYPE}")
        if "user-agent" not in given:
            constant_lines.append(f"User-Agent: {USER_AGENT}")
        self._body = body
        """The body when constant; None: made per request."""
        self._sized = has_json or form is not None or method in {"POST", "PUT", "PATCH"}
        if body is not None and (body or self._sized):
            constant_lines.append(f"Content-Length: {len(body)}")
        self._constant_headers = "".join(line + "\r\n" for line in constant_lines).encode("latin-1")
        self._trace = f"{trace_header}: {'00-' if self.w3c else ''}".encode("latin-1")
        self._after_ids = b"-01\r\n\r\n" if self.w3c else b"\r\n\r\n"
        # The request line when constant (its path and query have no {name}).
        line = self._line({}) if self._line_constant() else None
        self._fixed_head = (line + self._constant_headers) if line is not None else None
        self._constant: tuple[bytes, bytes, int] | None = None
        """A request with no ``{name}`` at all: its head up to the ids, what follows them (the
        body too), and the ids' offset; only the ids are new for each request."""
        if self._fixed_head is not None and not self._headers and self._body is not None:
            head = self._fixed_head + self._trace
            self._constant = (head, self._after_ids + self._body, len(head))

    @property
    def names(self) -> frozenset[str]:
        """The ``{name}``s it fills in (those the user made or saved, and fresh ones)."""
        found = set(self._path.names)
        for _, text in self._query:
            found |= text.names
        for _, _, text in self._headers:
            found |= text.names
        for _, text in self._form or ():
            found |= text.names
        found |= _json_template_names(self._json)
        return frozenset(found)

    def _line_constant(self) -> bool:
        return self._path.constant is not None and all(
            text.constant is not None for _, text in self._query
        )

    def _line(self, values: Values) -> bytes:
        path = self._base_path + self._path.fill(values)
        if self._query:
            query = "&".join(f"{key}={quote_plus(text.fill(values))}" for key, text in self._query)
            path += ("&" if "?" in path else "?") + query
        if _UNSENDABLE.search(path):
            raise UnsendableValue(f"{self.where}: a value filled into its path holds a line break")
        return f"{self.method} {quote(path, safe=PATH_SAFE)} HTTP/1.1\r\n".encode("ascii")

    def _form_body(self, values: Values) -> bytes:
        assert self._form is not None
        return "&".join(
            f"{key}={quote_plus(text.fill(values))}" for key, text in self._form
        ).encode()

    def render(self, values: Values, ids: bytes) -> Rendered:
        """The request for a user with ``values``, carrying the trace ids ``ids`` (48 hex
        digits: a 32-digit trace id, then a 16-digit parent id). ``UnsendableValue`` when a value
        cannot go where its template puts it."""
        constant = self._constant
        if constant is not None:
            head, tail, at = constant
            if self.w3c:
                return b"".join((head, ids[:32], b"-", ids[32:48], tail)), at
            return b"".join((head, ids[:32], tail)), at
        parts = [self._fixed_head or self._line(values) + self._constant_headers]
        for prefix, name, text in self._headers:
            value = text.fill(values)
            parts.append(prefix + _header_bytes(self.where, name, value) + b"\r\n")
        body = self._body
        if body is None:
            if self._form is not None:
                body = self._form_body(values)
            else:
                body = json.dumps(_fill_json(self._json, values)).encode()
            parts.append(b"Content-Length: %d\r\n" % len(body))
        parts.append(self._trace)
        head = b"".join(parts)
        return self._with_ids(head, ids, body), len(head)

    def _with_ids(self, head: bytes, ids: bytes, body: bytes) -> bytes:
        if self.w3c:
            return b"".join((head, ids[:32], b"-", ids[32:48], self._after_ids, body))
        return b"".join((head, ids[:32], self._after_ids, body))


def _json_template_names(template: Any) -> set[str]:
    if isinstance(template, Text):
        return set(template.names)
    if isinstance(template, tuple):
        return {template[0]}
    if isinstance(template, dict):
        return set().union(*(_json_template_names(v) for v in template.values()))
    if isinstance(template, list):
        return set().union(*(_json_template_names(v) for v in template))
    return set()


def _check_header(where: str, name: str, value: str) -> None:
    """A ConfigError, before the run, for a constant header value (a secret filled in) that no
    request could carry; the variable's value is never quoted."""
    try:
        _header_bytes(where, name, value)
    except UnsendableValue as error:
        raise ConfigError(f"{error}; fix the environment variable it uses") from None


def _header_bytes(where: str, name: str, value: str) -> bytes:
    if _UNSENDABLE.search(value):
        raise UnsendableValue(
            f"{where}: header {name}: a value filled in holds a line break or another control "
            "character"
        )
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        raise UnsendableValue(
            f"{where}: header {name}: a value filled in holds a character outside Latin-1 "
            "(HTTP/1.1 headers are bytes)"
        ) from None

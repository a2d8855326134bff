"""Smoke flow templates: ``{name}`` values and ``${ENV_VAR}`` secrets in requests, and masking.

Pure: the environment is handed in. ``{name}`` is a value the run made or a step saved;
``${NAME}`` is read from the environment once, before any request, and every value read so is a
secret: ``Secrets.mask`` replaces it by ``${NAME}`` in anything shown or written.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from loadkit.exceptions import ConfigError

_TEMPLATE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\{([A-Za-z_][A-Za-z0-9_]*)\}")


def names_in(text: str) -> tuple[set[str], set[str]]:
    """The ``{name}`` placeholders and the ``${ENV_VAR}`` variables in ``text``."""
    placeholders: set[str] = set()
    variables: set[str] = set()
    for match in _TEMPLATE.finditer(text):
        if match.group(1) is not None:
            variables.add(match.group(1))
        else:
            placeholders.add(match.group(2))
    return placeholders, variables


def strings_in(value: Any) -> Iterator[str]:
    """Every string in a TOML value (tables' values and arrays' items, not table keys)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings_in(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from strings_in(item)


@dataclass(frozen=True)
class Secrets:
    """The ``${ENV_VAR}`` values of a run, and how they are hidden."""

    values: Mapping[str, str]

    def mask(self, text: str) -> str:
        """``text`` with every secret's value replaced by ``${NAME}``, also where it shows
        encoded: percent-encoded in a URL's query, escaped in JSON or in a Python repr."""
        forms = [
            (form, "${" + name + "}")
            for name, value in self.values.items()
            if value
            for form in _shown_forms(value)
        ]
        # Longest first: a secret that contains another is masked whole.
        for form, placeholder in sorted(forms, key=lambda item: -len(item[0])):
            text = text.replace(form, placeholder)
        return text


def _shown_forms(value: str) -> set[str]:
    """The ways ``value`` can appear in a message or a URL: as is, percent-encoded (``quote``,
    ``quote_plus``: httpx and browsers differ on spaces and slashes), JSON- and repr-escaped."""
    return {
        value,
        urllib.parse.quote(value, safe=""),
        urllib.parse.quote(value),
        urllib.parse.quote_plus(value),
        orjson.dumps(value).decode()[1:-1],
        repr(value)[1:-1],
    } - {""}


def read_secrets(wanted: Mapping[str, str], environ: Mapping[str, str]) -> Secrets:
    """The values of the variables in ``wanted`` (variable -> where it is used, for the error):
    a ``ConfigError`` naming the place and the variable when one is not set."""
    missing = sorted(name for name in wanted if name not in environ)
    if missing:
        name = missing[0]
        raise ConfigError(
            f"{wanted[name]} uses ${{{name}}}, but the environment variable {name} is not set; "
            f"export it (secrets are read from the environment, never from the file)"
        )
    return Secrets({name: environ[name] for name in wanted})


def render(
    text: str,
    values: Mapping[str, object],
    secrets: Secrets,
    *,
    literal: Callable[[str], str] = str,
) -> str:
    """``text`` with its placeholders and variables filled (saved values as text; a table or an
    array as JSON), each filled-in value passed through ``literal`` (``re.escape`` for a
    pattern: a value a server sent is matched as written, never read as a regex)."""

    def fill(match: re.Match[str]) -> str:
        if match.group(1) is not None:
            return literal(secrets.values[match.group(1)])
        return literal(as_text(values[match.group(2)]))

    return _TEMPLATE.sub(fill, text)


def render_json(value: Any, values: Mapping[str, object], secrets: Secrets) -> Any:
    """A JSON body filled in; a string that is one ``{name}`` alone becomes the value itself,
    keeping its type (``"{item_id}"`` -> ``42``)."""
    if isinstance(value, str):
        whole = _TEMPLATE.fullmatch(value)
        if whole is not None and whole.group(2) is not None:
            return values[whole.group(2)]
        return render(value, values, secrets)
    if isinstance(value, dict):
        return {key: render_json(item, values, secrets) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [render_json(item, values, secrets) for item in value]
    return value


def as_text(value: object) -> str:
    """A value as it goes into a path, a header or a message: strings as they are, the rest as
    JSON (``42``, ``true``, ``{"a":1}``)."""
    if isinstance(value, str):
        return value
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return str(value)

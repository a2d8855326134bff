"""Smoke flow templates: ``{name}`` values and ``${ENV_VAR}`` secrets in requests, and masking.

Pure: the environment is handed in. ``{name}`` is a value the run made or a step saved;
``${NAME}`` is read from the environment once, before any request, and every value read so is a
secret: ``Secrets.mask`` replaces it by ``${NAME}`` in anything shown or written.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
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
        """``text`` with every secret's value replaced by ``${NAME}``."""
        # Longest first: a secret that contains another is masked whole.
        for name, value in sorted(self.values.items(), key=lambda item: -len(item[1])):
            if value:
                text = text.replace(value, "${" + name + "}")
        return text


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


def render(text: str, values: Mapping[str, object], secrets: Secrets) -> str:
    """``text`` with its placeholders and variables filled (saved values as text; a table or an
    array as JSON)."""

    def fill(match: re.Match[str]) -> str:
        if match.group(1) is not None:
            return secrets.values[match.group(1)]
        return as_text(values[match.group(2)])

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

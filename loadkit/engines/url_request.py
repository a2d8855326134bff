"""``loadkit load URL --method M --header 'Name: value' --body TEXT|@file``, as one
``RequestSpec`` (``engines/http_request.py``): parsed and checked once, for either engine.

A header that is not ``Name: value`` with a token name, or a value with a line break, is a
ConfigError naming it; ``--body @path`` reads the file (a missing one is named); a method is an
HTTP token, upper-cased.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from loadkit.engines.http_request import DEFAULT_METHOD, RequestSpec, TlsOptions
from loadkit.engines.target import parse_target
from loadkit.exceptions import ConfigError

# RFC 9110 token: what a method and a header name may be made of.
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
BODY_FILE_PREFIX = "@"


def parse_header(text: str) -> tuple[str, str]:
    """``"Name: value"`` as (name, value), surrounding spaces of the value dropped."""
    name, sep, value = text.partition(":")
    if not sep:
        name = ""  # refused as a name below, with the text as given
    value = value.strip(" \t")
    check_header(name, value, shown=text)
    return name, value


def check_header(name: str, value: str, *, shown: str | None = None) -> None:
    """A ConfigError naming the header (``shown``: as typed) unless ``name`` is an HTTP token
    and ``value`` holds no line break or NUL: the one check of every engine's headers."""
    shown = shown if shown is not None else f"{name}: {value}"
    if not _TOKEN.fullmatch(name):
        raise ConfigError(
            f"--header {shown!r}: must look like 'Name: value' (a name of letters, digits and "
            "-, then a colon)"
        )
    if any(c in value for c in "\r\n\0"):
        raise ConfigError(f"--header {shown!r}: a value cannot hold a line break or NUL")


def check_method(method: str) -> str:
    """``method`` upper-cased, as sent; a ConfigError unless it is an HTTP token (RFC 9110:
    ``M-SEARCH`` is one): the one check of every engine's method."""
    verb = method.upper()
    if not _TOKEN.fullmatch(verb):
        raise ConfigError(f"--method {method!r}: not an HTTP method (e.g. GET, POST, PUT)")
    return verb


def read_body(text: str) -> bytes:
    """``--body``: the text itself (UTF-8), or ``@path``'s bytes."""
    if not text.startswith(BODY_FILE_PREFIX):
        return text.encode()
    path = Path(text.removeprefix(BODY_FILE_PREFIX))
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"--body @{path}: cannot read the file ({exc.strerror or type(exc).__name__})"
        ) from None


def request_spec(
    url: str,
    *,
    method: str | None = None,
    headers: Sequence[str] = (),
    body: str | None = None,
    tls: TlsOptions | None = None,
) -> RequestSpec:
    """The request of a URL run, from the CLI's options as typed (the URL checked as every
    target is: ``engines/target.py``)."""
    parse_target(url, option="target")
    verb = check_method(method or DEFAULT_METHOD)
    return RequestSpec(
        url=url,
        method=verb,
        headers=tuple(parse_header(h) for h in headers),
        body=read_body(body) if body is not None else b"",
        tls=tls or TlsOptions(),
    )

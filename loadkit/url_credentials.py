"""Credentials in a target URL (``http://bob:Pa55word@host``): sent as the user wrote them,
never recorded or shown. Pure."""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit

MASK = "***"

_USERINFO = re.compile(r"^(?P<head>\s*[A-Za-z][A-Za-z0-9+.-]*://[^/?#@:]*):(?P<password>[^/?#]*)@")
"""A URL's ``scheme://user:`` then the password up to the last ``@`` of the authority (an
unencoded ``@`` in a password belongs to it, as urlsplit reads it)."""


def mask_password(url: str) -> str:
    """``url`` with the password of its user info replaced by ``***`` (``http://bob:***@host``),
    the rest exactly as written; ``url`` itself when it has no password."""
    match = _USERINFO.match(url)
    if match is None:
        return url
    return f"{match['head']}:{MASK}@{url[match.end() :]}"


def has_password(url: str) -> bool:
    """Whether ``url`` carries a password other than the mask itself (``http://bob:x@h``)."""
    match = _USERINFO.match(url)
    return match is not None and match["password"] != MASK


def userinfo(url: str) -> tuple[str, str] | None:
    """The user info of ``url`` as written, with its password and masked (``bob:Pa55word@``,
    ``bob:***@``): what a page quoting the URL shows, to be replaced; None without a password."""
    match = _USERINFO.match(url)
    if match is None or match["password"] == MASK:
        return None
    user = match["head"].split("://", 1)[1]
    return f"{user}:{match['password']}@", f"{user}:{MASK}@"


def unmask(url: str, known: Iterable[str]) -> str:
    """``url`` with the password of a URL of ``known`` in place of its ``***``, else ``url``
    itself. A form that showed ``http://bob:***@host`` and came back unchanged means the host it
    masked (the last such of ``known``); came back with another path or query
    (``http://bob:***@host/v2``), the same user on the same scheme, host and port: that user's
    password there (the last such), the rest as edited. Another user, host, port or scheme, or a
    password typed in, is the user's own."""
    match = _USERINFO.match(url)
    if match is None or has_password(url):
        return url
    candidates = [candidate for candidate in known if has_password(candidate)]
    for candidate in reversed(candidates):
        if mask_password(candidate) == url:
            return candidate
    where = _authority(url)
    for candidate in reversed(candidates):
        found = _USERINFO.match(candidate)
        if found is not None and where is not None and _authority(candidate) == where:
            return f"{match['head']}:{found['password']}@{url[match.end() :]}"
    return url


def _authority(url: str) -> tuple[str, str | None, str | None, int | None] | None:
    """The scheme, user, host and port of ``url`` as a browser compares them (scheme and host
    without case); None when they cannot be read (a port that is no number)."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    return parts.scheme.lower(), parts.username, parts.hostname, port

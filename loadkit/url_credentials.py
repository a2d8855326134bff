"""Credentials in a target URL (``http://bob:Pa55word@host``): sent as the user wrote them,
never recorded or shown. Pure."""

from __future__ import annotations

import re
from collections.abc import Iterable

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
    """The URL of ``known`` whose masked form ``url`` is (the last such), else ``url`` itself:
    a form that showed ``http://bob:***@host`` and came back unchanged means the host it
    masked, with its password."""
    found = url
    if _USERINFO.match(url) is not None and not has_password(url):
        for candidate in known:
            if has_password(candidate) and mask_password(candidate) == url:
                found = candidate
    return found

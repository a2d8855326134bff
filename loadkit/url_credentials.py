"""Credentials in a target URL (``http://bob:Pa55word@host``): sent as the user wrote them,
never recorded or shown. Pure."""

from __future__ import annotations

import re

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

"""``--loadkit-http2`` (``loadkit load --http2``): the locustfile's HTTP users speak HTTP/2.

The HTTP/2 user lives in ``scenarios/http2_user.py`` (DESIGN: scenarios stay plain locustfiles
and never import loadkit), so loadkit knows its classes by the class attribute
``http2_capable``: ``Http2User`` speaks HTTP/2 always, ``FastOrHttp2User`` (the bundled
scenarios' base) when its ``http2`` attribute is true, which this sets. A locustfile written on
FastHttpUser or HttpUser (HTTP/1.1 only) cannot: the run is refused before any user starts,
saying how to switch it. Users that are no HTTP users (a plain ``User``) are left alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from locust import FastHttpUser, HttpUser

HTTP2_USER_MODULE = "scenarios/http2_user.py"


def apply_http2(user_classes: Iterable[type[Any]]) -> str | None:
    """Switch every HTTP/2-capable class in ``user_classes`` to HTTP/2; the refusal's message
    when a class speaks HTTP/1.1 only (None when every class can run)."""
    classes = list(user_classes)
    http1_only = sorted(
        cls.__name__
        for cls in classes
        if issubclass(cls, FastHttpUser | HttpUser) and not getattr(cls, "http2_capable", False)
    )
    if http1_only:
        return (
            f"--http2: user class{'es' if len(http1_only) > 1 else ''} "
            f"{', '.join(http1_only)} {'speak' if len(http1_only) > 1 else 'speaks'} HTTP/1.1 "
            "only (FastHttpUser or HttpUser). Base it on Http2User, or on "
            f"FastOrHttp2User to keep HTTP/1.1 without --http2, from {HTTP2_USER_MODULE} "
            "(copy it beside your locustfile: `from http2_user import FastOrHttp2User`); "
            "its client has FastHttpUser's API. Or run without --http2"
        )
    for cls in classes:
        if getattr(cls, "http2_capable", False):
            cls.http2 = True
    return None

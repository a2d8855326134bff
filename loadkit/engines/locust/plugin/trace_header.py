"""A fresh trace header on every request of the locustfile's HTTP users (DESIGN.md, "Trace
header"): W3C ``traceparent`` unless the target profile names another (``X-Request-Id``: the
trace id alone), the id handed to the plugin's request listener in the request's ``context``
(``TRACE_CONTEXT_KEY``), so that a failure with no trace id of its own (a timeout, a reset, an API
that echoes none) carries the one its request was sent with.

Applied once, at ``init``, to the ``HttpUser`` and ``FastHttpUser`` classes Locust will run (and
the HTTP/2 users of ``scenarios/http2_user.py``, known by ``http2_capable``): their
client's ``request`` (which ``get``, ``post``… call) is wrapped on each user built. A header the
scenario sets itself on a request wins: the request keeps it and no id is recorded for it.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterable
from typing import Any

from locust import FastHttpUser, HttpUser

TRACE_CONTEXT_KEY = "loadkit_trace_id"
"""Where a request's trace id travels to the request listener (Locust's request ``context``)."""
_IDS_PER_DRAW = 256
"""Random bytes are drawn for this many ids at once: one ``os.urandom`` call, not one a request."""


class TraceIds:
    """Fresh trace ids (32 hex digits) and span ids (16), drawn in blocks."""

    def __init__(self) -> None:
        self._block = ""
        self._at = 0

    def next(self) -> tuple[str, str]:
        """A trace id and a span id, never given before."""
        if self._at >= len(self._block):
            self._block = os.urandom(24 * _IDS_PER_DRAW).hex()
            self._at = 0
        ids = self._block[self._at : self._at + 48]
        self._at += 48
        return ids[:32], ids[32:]


def header_value(header: str, trace_id: str, span_id: str) -> str:
    """The trace header's value: W3C ``traceparent`` (sampled), else the trace id alone."""
    if header.lower() == "traceparent":
        return f"00-{trace_id}-{span_id}-01"
    return trace_id


class _Header:
    """The trace header this process sends, set at ``init`` and again when a worker learns its
    master's (``--loadkit-target`` arrives with the spawn message, after init)."""

    def __init__(self) -> None:
        self.name = "traceparent"
        self.lowered = "traceparent"

    def set(self, name: str) -> None:
        self.name, self.lowered = name, name.lower()


_HEADER = _Header()


def apply_trace_header(user_classes: Iterable[type[Any]], header: str) -> None:
    """Make every HTTP user class in ``user_classes`` send ``header`` fresh on each request
    (again for classes already traced: the header changes, the wrapping stays)."""
    _HEADER.set(header)
    ids = TraceIds()
    for cls in user_classes:
        # http2_capable: scenarios/http2_user.py's users (their client has the same request()).
        http = issubclass(cls, FastHttpUser | HttpUser) or getattr(cls, "http2_capable", False)
        if http and not getattr(cls, "_loadkit_traced", False):
            _trace_after_init(cls, ids)


def _trace_after_init(cls: type[Any], ids: TraceIds) -> None:
    original = cls.__init__

    @functools.wraps(original)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        client = getattr(self, "client", None)
        if client is not None:
            client.request = _traced(client.request, ids)

    cls.__init__ = __init__
    cls._loadkit_traced = True  # a subclass of a traced class is traced by its base's __init__


def _traced(request: Callable[..., Any], ids: TraceIds) -> Callable[..., Any]:
    @functools.wraps(request)
    def traced_request(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        header, lowered = _HEADER.name, _HEADER.lowered
        headers = kwargs.get("headers")
        if len(args) > 1 or (headers and any(k.lower() == lowered for k in headers)):
            # Headers given by position, or the scenario's own trace header: left as they are.
            return request(method, url, *args, **kwargs)
        trace_id, span_id = ids.next()
        kwargs["headers"] = {**(headers or {}), header: header_value(header, trace_id, span_id)}
        kwargs["context"] = {**(kwargs.get("context") or {}), TRACE_CONTEXT_KEY: trace_id}
        return request(method, url, *args, **kwargs)

    return traced_request

"""The HTTP/2 spike's app (docs/http2.md): a bare ASGI app whose routes stall or crash.

``/stuck`` sleeps 30 s before its response starts (a handler frozen on the lock); ``/cut`` sends
its headers and one body byte, then sleeps 30 s; ``/crash`` sends them, then raises; anything
else answers 200 ``ok``. Served by hypercorn, or by uvicorn behind nginx's ``http2`` listener.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
HEAD = {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]}


async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    """The ASGI app."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    path = scope["path"]
    if path == "/stuck":
        await asyncio.sleep(30)
    elif path in ("/cut", "/crash"):
        await send(HEAD)
        await send({"type": "http.response.body", "body": b"{", "more_body": True})
        if path == "/crash":
            raise RuntimeError("crashed after its headers")
        await asyncio.sleep(30)
    await send(HEAD)
    await send({"type": "http.response.body", "body": b"ok"})

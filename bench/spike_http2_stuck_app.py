import asyncio
async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            m = await receive()
            if m["type"] == "lifespan.startup": await send({"type": "lifespan.startup.complete"})
            else: await send({"type": "lifespan.shutdown.complete"}); return
    path = scope["path"]
    if path == "/stuck":          # handler frozen before its response starts (lock held)
        await asyncio.sleep(30)
    if path == "/cut":            # headers sent, then the body never ends
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": b"{", "more_body": True})
        await asyncio.sleep(30)
    if path == "/crash":          # headers sent, then the handler raises
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": b"{", "more_body": True})
        raise RuntimeError("boom")
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"ok"})

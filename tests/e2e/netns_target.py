"""The target of the namespace tests: ``python -m tests.e2e.netns_target HOST PORT HOLD_MS``.

Answers every HTTP/1.1 request on a kept-alive connection with a small 200 after ``HOLD_MS``
(so that a few connections make a known, modest load). One JSON object a line on stdout:
``{"listening": ADDRESS}`` once it listens, ``{"first": PEER}`` when a peer address's first
request is answered (a generator on that host is running), and on SIGTERM ``{"served": {PEER:
COUNT}}`` before it exits: what the target served, and to whom, to hold the generators' merged
count against.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\nok\n"


async def serve(host: str, port: int, hold_s: float) -> dict[str, int]:
    answered: dict[str, int] = {}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = str(writer.get_extra_info("peername")[0])
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                await asyncio.sleep(hold_s)
                writer.write(RESPONSE)
                await writer.drain()
                answered[peer] = answered.get(peer, 0) + 1
                if answered[peer] == 1:
                    say({"first": peer})
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    server = await asyncio.start_server(handle, host, port)
    say({"listening": host})
    async with server:
        await stop.wait()
    return answered


def say(message: dict[str, object]) -> None:
    print(json.dumps(message), flush=True)


def main() -> None:
    host, port, hold_ms = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    say({"served": asyncio.run(serve(host, port, hold_ms / 1000))})


if __name__ == "__main__":
    main()

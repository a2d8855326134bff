"""The bundled service over HTTP/2 (nginx's ``http2`` listener in front of uvicorn, as ``loadkit
serve --http2`` runs it) beside uvicorn alone over HTTP/1.1: requests per second, one client.

h2load (Debian's ``nghttp2-client``) drives both, so the client is the same program: ``--h1``
against uvicorn directly, h2c against the edge; 10 connections, one request in flight on each
(``-m 1``: the same concurrency as HTTP/1.1), ``GET /version`` (no database) for ``--seconds``,
interleaved A B A B. Also prints the CPU seconds per request of the service and (edge only)
nginx, read from /proc, so that the edge's own cost shows::

    python bench/bench_http2_server.py --rounds 3 --seconds 8
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from loadkit.run.bundled_service import BundledService
from loadkit.run.http2_edge import Http2Edge

PATH = "/version"


def cpu_s(pids: list[int]) -> float:
    """User + system CPU seconds of these processes and their children."""
    total = 0.0
    for pid in pids:
        process = psutil.Process(pid)
        for each in [process, *process.children(recursive=True)]:
            times = each.cpu_times()
            total += times.user + times.system
    return total


def h2load(url: str, seconds: int, *, h1: bool) -> tuple[int, float]:
    """(requests answered 2xx, req/s) of one h2load run."""
    args = ["h2load", "-c", "10", "-m", "1", "-D", str(seconds), url]
    out = subprocess.run(
        [*args[:1], "--h1", *args[1:]] if h1 else args, capture_output=True, text=True, check=True
    ).stdout
    found = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out)
    status = re.search(r"status codes: (\d+) 2xx", out)
    if found is None or status is None:
        raise SystemExit(f"h2load said: {out[-1500:]}")
    return int(status.group(1)), float(found.group(1))


def main() -> None:
    """Interleaved rounds; prints a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=8)
    args = parser.parse_args()
    rows: dict[str, list[tuple[float, float]]] = {"uvicorn HTTP/1.1": [], "nginx h2c → uvicorn": []}
    with tempfile.TemporaryDirectory() as tmp, BundledService(workdir=Path(tmp) / "s") as service:
        upstream = f"{service.host}:{service.port}"
        with Http2Edge(workdir=Path(tmp) / "edge", upstream=upstream) as edge:
            nginx = psutil.Process(edge._process.pid)  # type: ignore[union-attr]
            for round_no in range(args.rounds):
                for name in rows:
                    h1 = name.startswith("uvicorn")
                    pids = [service.process.pid] + ([] if h1 else [nginx.pid])
                    before = cpu_s(pids)
                    url = f"{service.url if h1 else edge.url}{PATH}"
                    answered, rps = h2load(url, args.seconds, h1=h1)
                    per_request = (cpu_s(pids) - before) / max(answered, 1) * 1e6
                    rows[name].append((rps, per_request))
                    print(f"round {round_no + 1} {name}: {rps:,.0f} req/s, "
                          f"{per_request:.0f} µs server CPU/req", flush=True)  # fmt: skip
    print(f"\nGET {PATH}, h2load -c 10 -m 1, {args.seconds} s, {args.rounds} rounds (medians)")
    print("| server | req/s | server CPU µs/req (service + nginx) |")
    print("|---|---|---|")
    for name, figures in rows.items():
        rps = statistics.median(f[0] for f in figures)
        cpu = statistics.median(f[1] for f in figures)
        print(f"| {name} | {rps:,.0f} | {cpu:.0f} |")


if __name__ == "__main__":
    main()

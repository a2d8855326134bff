"""Which HTTP/2 client for Locust: CPU per request against an h2c target, beside FastHttpUser.

One nginx (Debian's ``nginx-light``, built with ``http_v2``) on two free loopback ports serves
one small static file: one listener HTTP/1.1, one ``http2`` (h2c by prior knowledge). Plain
Locust (no loadkit) runs each client with the same users for the same time, interleaved A B C
A B C ...: FastHttpUser over HTTP/1.1; ``scenarios/http2_user.Http2User`` (the ``h2`` state
machine on gevent sockets); a User holding ``httpx.Client(http1=False, http2=True)`` firing
Locust's request event itself. Prints requests, req/s and the Locust process's CPU µs per
request (user + system, start-up included), and each HTTP/2 client's ratio to FastHttpUser
within its round::

    python bench/bench_http2.py --users 10 --seconds 8 --rounds 3
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from loadkit.run.bundled_service import free_port

from bench_load import STATIC_PATH, rps_from_locust_json

ROOT = Path(__file__).resolve().parent.parent

NGINX_CONF = """\
user root;
worker_processes 1;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    keepalive_requests 1000000;
    server {{
        listen 127.0.0.1:{h1};
        listen 127.0.0.1:{h2} http2;
        root {prefix}/www;
        location / {{ }}
    }}
}}
"""

LOCUSTFILES = {
    "fasthttp-h1": f"""
from locust import FastHttpUser, constant, task
class U(FastHttpUser):
    wait_time = constant(0)
    @task
    def t(self):
        self.client.get("{STATIC_PATH}", name="{STATIC_PATH}")
""",
    "h2-gevent": f"""
from locust import constant, task
from scenarios.http2_user import Http2User
class U(Http2User):
    wait_time = constant(0)
    @task
    def t(self):
        self.client.get("{STATIC_PATH}", name="{STATIC_PATH}")
""",
    "httpx-h2": f"""
import time
import httpx
from locust import User, constant, task
class U(User):
    wait_time = constant(0)
    def on_start(self):
        self.http = httpx.Client(base_url=self.host, http1=False, http2=True)
    @task
    def t(self):
        start = time.perf_counter()
        exception = None
        response = None
        try:
            response = self.http.get("{STATIC_PATH}")
            length = len(response.content)
        except Exception as error:
            exception, length = error, 0
        self.environment.events.request.fire(
            request_type="GET", name="{STATIC_PATH}",
            response_time=(time.perf_counter() - start) * 1000,
            response_length=length, response=response, context={{}}, exception=exception,
        )
""",
}


@contextmanager
def nginx_h1_h2() -> Iterator[tuple[str, str]]:
    """nginx on two loopback ports: (HTTP/1.1 base URL, h2c base URL)."""
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    with tempfile.TemporaryDirectory(prefix="bench-h2-") as tmp:
        prefix = Path(tmp)
        (prefix / "www").mkdir()
        (prefix / "www" / STATIC_PATH.lstrip("/")).write_text("hello from nginx\n")
        h1, h2 = free_port(), free_port()
        conf = prefix / "nginx.conf"
        conf.write_text(NGINX_CONF.format(prefix=prefix, h1=h1, h2=h2))
        process = subprocess.Popen([binary, "-c", str(conf), "-p", str(prefix)])
        try:
            deadline = time.monotonic() + 10
            for port in (h1, h2):
                while True:
                    try:
                        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                        break
                    except OSError:
                        if time.monotonic() > deadline or process.poll() is not None:
                            raise SystemExit("nginx did not start; see its error.log") from None
                        time.sleep(0.05)
            yield f"http://127.0.0.1:{h1}", f"http://127.0.0.1:{h2}"
        finally:
            process.terminate()
            process.wait(timeout=10)


def children_cpu_s() -> float:
    """CPU seconds (user + system) of every child process waited for so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_client(
    client: str, url: str, *, users: int, seconds: int, folder: Path
) -> tuple[int, float, float]:
    """One plain Locust run of ``client``: (requests, req/s, CPU µs per request)."""
    locustfile = folder / f"{client.replace('-', '_')}.py"
    locustfile.write_text(LOCUSTFILES[client])
    prefix = folder / f"{client}-{time.monotonic_ns()}"
    command = [
        sys.executable, "-m", "locust", "-f", str(locustfile), "--headless", "--host", url,
        "--users", str(users), "--spawn-rate", str(users), "--run-time", f"{seconds}s",
        "--json-file", str(prefix), "--only-summary", "--loglevel", "WARNING",
    ]  # fmt: skip
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    before = children_cpu_s()
    done = subprocess.run(command, check=False, capture_output=True, text=True, env=env, cwd=folder)
    if done.returncode != 0:  # 1: some request failed: not the cost of a served request
        raise SystemExit(f"{client}: Locust exited {done.returncode}: {done.stderr[-2000:]}")
    cpu = children_cpu_s() - before
    requests, rps = rps_from_locust_json(Path(f"{prefix}.json"))
    return requests, rps, cpu / max(requests, 1) * 1e6


def main() -> None:
    """Run the interleaved rounds and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    clients = ["fasthttp-h1", "h2-gevent", "httpx-h2"]
    figures: dict[str, list[tuple[int, float, float]]] = {c: [] for c in clients}
    ratios: dict[str, list[float]] = {c: [] for c in clients[1:]}
    with nginx_h1_h2() as (h1, h2), tempfile.TemporaryDirectory() as tmp:
        for round_no in range(args.rounds):
            cost: dict[str, float] = {}
            for client in clients:
                url = h1 if client.endswith("h1") else h2
                result = run_client(
                    client, url, users=args.users, seconds=args.seconds, folder=Path(tmp)
                )
                figures[client].append(result)
                cost[client] = result[2]
                print(
                    f"round {round_no + 1} {client}: {result[0]} req, {result[1]:.0f}/s, "
                    f"{result[2]:.0f} µs CPU/req",
                    flush=True,
                )
            for client in clients[1:]:
                ratios[client].append(cost[client] / cost["fasthttp-h1"])
    print(f"\n{args.users} users, {args.seconds} s, {args.rounds} rounds (medians)")
    print("| client | protocol | req/s | CPU µs/req | × FastHttpUser's CPU/req (same round) |")
    print("|---|---|---|---|---|")
    for client in clients:
        rps = statistics.median(f[1] for f in figures[client])
        cpu = statistics.median(f[2] for f in figures[client])
        ratio = f"{statistics.median(ratios[client]):.2f}" if client in ratios else "1"
        protocol = "HTTP/1.1" if client.endswith("h1") else "h2c"
        print(f"| {client} | {protocol} | {rps:,.0f} | {cpu:.0f} | {ratio} |")


if __name__ == "__main__":
    main()

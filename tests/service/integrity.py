"""Data integrity under faults: drive creates at a real service, record every answer, reconcile
the database against them (issue 13). Shared by tests/service/test_service_integrity.py (a small
matrix in CI) and bench/bench_integrity.py (a larger one); see docs/reliability.md.

A run: start the service with one fault on ``/api/items``; register users; each user
creates items (unique names) for ``duration_s``, half of them with an ``Idempotency-Key``, while a
reader keeps the storage lock busy with reads; SIGTERM (short grace) or SIGKILL mid-run for the
signal faults. Then, on a clean service over the same database (restarted for the signal faults),
every keyed create that got no success is retried with its key until it succeeds. The database is
read before and after the retries and ``reconcile`` lists what breaks the promises:

- every 2xx answer's item exists, with its id and name, exactly once;
- no name is stored twice, and nothing is stored that nobody sent;
- an error answer's write does not exist, except where the answer was in doubt (a request cut
  by the shutdown grace or by SIGKILL, or one the client stopped waiting for) and then...
- ...a keyed retry gets the same item back (replayed), or creates it once when nothing was saved.
"""

from __future__ import annotations

import asyncio
import itertools
import signal
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import uvicorn
from sqlalchemy import select
from sqlalchemy.ext.asyncio import create_async_engine

from loadkit.run.bundled_service import BundledService, free_port
from service.app import create_app
from service.models import Item
from service.settings import Settings

PASSWORD = "integrity password"


@dataclass(frozen=True)
class Fault:
    """One fault the service is put under, on ``/api/items`` only."""

    name: str
    env: dict[str, str]
    signal: signal.Signals | None = None
    """Sent to the service halfway through the run; it is then restarted clean."""
    client_timeout_s: float = 5.0


FAULTS: dict[str, Fault] = {
    f.name: f
    for f in (
        Fault(
            "lock_hold",
            # Readers hold the storage lock 300 ms; anyone waiting > 100 ms gives up (503).
            {"ENGINES_FAULT_LOCK_HOLD_MS": "300", "ENGINES_STORAGE_LOCK_TIMEOUT_S": "0.1"},
        ),
        Fault(
            "slow_query",
            # Every session holds one of only 2 connections 60 ms: the pool runs dry (503).
            {
                "ENGINES_FAULT_SLOW_QUERY_MS": "60",
                "ENGINES_DB_POOL_SIZE": "2",
                "ENGINES_DB_MAX_OVERFLOW": "0",
                "ENGINES_DB_POOL_TIMEOUT_S": "0.1",
            },
        ),
        Fault(
            "error_share",
            {"ENGINES_FAULT_ERROR_SHARE": "0.3", "ENGINES_FAULT_ERROR_KIND": "database_error"},
        ),
        Fault(
            "stall",
            # Clients stop waiting long before the stall ends; the service then goes on.
            {"ENGINES_FAULT_STALL_AT_S": "0.8", "ENGINES_FAULT_STALL_S": "1.0"},
            client_timeout_s=0.4,
        ),
        Fault(
            "sigterm",
            # Slow requests; the grace (1 s) cuts those still running at shutdown.
            {"ENGINES_FAULT_LATENCY_MS": "0", "ENGINES_FAULT_LATENCY_JITTER_MS": "2500"}
            | {"ENGINES_FAULT_LATENCY_SHARE": "0.3", "ENGINES_SHUTDOWN_GRACE_S": "1"},
            signal=signal.SIGTERM,
        ),
        Fault("sigkill", {}, signal=signal.SIGKILL),
    )
}


@dataclass
class Attempt:
    """One create as the client saw it."""

    name: str
    key: str | None
    status: int | None = None
    """None: no answer (connection refused or reset, or the client stopped waiting)."""
    item_id: int | None = None
    kind: str | None = None
    """The error kind of an enveloped error, or the exception's class name."""

    @property
    def succeeded(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    def in_doubt(self, *, shutdown: bool) -> bool:
        """Whether the write may or may not have happened: no answer (refused, reset, or the
        client stopped waiting), or, when the service was shut down or killed mid-run, a 5xx
        (what a request cut by the shutdown grace is answered)."""
        return self.status is None or (shutdown and self.status >= 500)


@dataclass
class Retry:
    """The keyed retry of a create that got no success."""

    attempt: Attempt
    status: int
    item_id: int | None
    replayed: bool
    tries: int


@dataclass
class Outcome:
    """A run's record: answers, retries and the database before and after the retries."""

    fault: str
    backend: str
    shutdown: bool
    attempts: list[Attempt]
    retries: list[Retry]
    rows_before: list[tuple[int, str]]
    rows_after: list[tuple[int, str]]
    reads: int = 0
    violations: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, object]:
        """Counts for a report line."""
        statuses = Counter(
            "no answer" if a.status is None else f"{a.status} {a.kind or ''}".strip()
            for a in self.attempts
        )
        return {
            "fault": self.fault,
            "backend": self.backend,
            "creates": len(self.attempts),
            "answers": dict(sorted(statuses.items())),
            "keyed_retries": len(self.retries),
            "replayed": sum(r.replayed for r in self.retries),
            "in_doubt_unkeyed_saved": self.in_doubt_unkeyed_saved(),
            "rows": len(self.rows_after),
            "violations": len(self.violations),
        }

    def in_doubt_unkeyed_saved(self) -> int:
        """Unkeyed creates answered in doubt whose item was saved (allowed; counted)."""
        names = {name for _, name in self.rows_after}
        return sum(
            1
            for a in self.attempts
            if a.key is None and a.in_doubt(shutdown=self.shutdown) and a.name in names
        )


def reconcile(
    attempts: list[Attempt],
    retries: list[Retry],
    rows_before: list[tuple[int, str]],
    rows_after: list[tuple[int, str]],
    *,
    shutdown: bool,
) -> list[str]:
    """Every broken promise, one line each (empty: the database agrees with every answer).
    ``shutdown``: the service was stopped or killed mid-run (see ``Attempt.in_doubt``)."""
    problems: list[str] = []
    sent = {a.name for a in attempts}
    for rows, when in ((rows_before, "before"), (rows_after, "after")):
        counts = Counter(name for _, name in rows)
        problems += [
            f"{name!r} stored {n} times ({when} retries)" for name, n in counts.items() if n > 1
        ]
        problems += [
            f"row {i} {name!r} was never sent ({when} retries)"
            for i, name in rows
            if name not in sent
        ]
    before = {name: item_id for item_id, name in rows_before}
    after = {name: item_id for item_id, name in rows_after}
    for a in attempts:
        if a.succeeded:
            if before.get(a.name) != a.item_id or after.get(a.name) != a.item_id:
                problems.append(
                    f"{a.name!r} answered {a.status} id {a.item_id} but stored as "
                    f"{before.get(a.name)} / {after.get(a.name)}"
                )
        elif not a.in_doubt(shutdown=shutdown) and a.name in before:
            problems.append(
                f"{a.name!r} answered {a.status} {a.kind} but was saved (id {before[a.name]})"
            )
        elif a.key is None and a.name in after and a.name not in before:
            problems.append(f"{a.name!r} (no key) appeared after the answers were in")
    retried = {r.attempt.name: r for r in retries}
    for a in attempts:
        if a.key is None or a.succeeded:
            continue
        r = retried.get(a.name)
        if r is None or not 200 <= r.status < 300:
            problems.append(f"{a.name!r}: its keyed retry never succeeded")
            continue
        if after.get(a.name) != r.item_id:
            problems.append(
                f"{a.name!r}: retry answered id {r.item_id}, stored {after.get(a.name)}"
            )
        if a.name in before and (before[a.name] != r.item_id or not r.replayed):
            problems.append(
                f"{a.name!r}: saved as {before[a.name]} but the retry gave "
                f"{r.item_id} (replayed: {r.replayed})"
            )
    return problems


async def read_rows(database_url: str) -> list[tuple[int, str]]:
    """(id, name) of every item, read straight from the database."""
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            result = await conn.execute(select(Item.id, Item.name).order_by(Item.id))
            return [(int(i), str(n)) for i, n in result.all()]
    finally:
        await engine.dispose()


async def _token(client: httpx.AsyncClient, email: str) -> str:
    body = {"email": email, "password": PASSWORD}
    registered = await client.post("/api/auth/register", json=body)
    assert registered.status_code == 201, registered.text
    response = await client.post("/api/auth/login", json=body)
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def _error_kind(response: httpx.Response) -> str | None:
    try:
        kind = response.json()["error"]["kind"]
    except (ValueError, KeyError, TypeError):
        return None
    return kind if isinstance(kind, str) else None


async def _creator(
    url: str, token: str, user: int, keyed: bool, until: float, timeout_s: float
) -> list[Attempt]:
    attempts: list[Attempt] = []
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=url, timeout=timeout_s) as client:
        for n in itertools.count():
            if time.monotonic() >= until:
                break
            attempt = Attempt(name=f"u{user}-{n}", key=uuid.uuid4().hex if keyed else None)
            attempts.append(attempt)
            extra = {"Idempotency-Key": attempt.key} if attempt.key else {}
            try:
                response = await client.post(
                    "/api/items", json={"name": attempt.name}, headers=headers | extra
                )
            except httpx.HTTPError as exc:
                attempt.kind = type(exc).__name__
                await asyncio.sleep(0.05)  # the service may be gone: do not spin
                continue
            attempt.status = response.status_code
            if response.is_success:
                attempt.item_id = int(response.json()["id"])
            else:
                attempt.kind = _error_kind(response)
            await asyncio.sleep(0.02)
    return attempts


async def _reader(url: str, token: str, until: float) -> int:
    """Reads items (each read takes the storage lock) so the lock-hold fault has holders."""
    reads = 0
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=url, timeout=2.0) as client:
        while time.monotonic() < until:
            try:
                await client.get(f"/api/items/{1 + reads % 50}", headers=headers)
            except httpx.HTTPError:
                await asyncio.sleep(0.05)
            reads += 1
    return reads


async def _retry(url: str, token: str, attempt: Attempt, *, deadline: float) -> Retry:
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": attempt.key or ""}
    tries = 0
    async with httpx.AsyncClient(base_url=url, timeout=10.0) as client:
        while True:
            tries += 1
            try:
                response = await client.post(
                    "/api/items", json={"name": attempt.name}, headers=headers
                )
            except httpx.HTTPError:
                response = None
            if response is not None and (response.is_success or time.monotonic() > deadline):
                item_id = int(response.json()["id"]) if response.is_success else None
                replayed = response.headers.get("Idempotent-Replayed") == "true"
                return Retry(attempt, response.status_code, item_id, replayed, tries)
            if time.monotonic() > deadline:
                return Retry(attempt, 0, None, False, tries)
            await asyncio.sleep(0.05)


def settings_from(env: dict[str, str]) -> Settings:
    """The service's settings for these ``ENGINES_*`` values (as ``python -m service`` reads)."""
    values = {name.removeprefix("ENGINES_").lower(): value for name, value in env.items()}
    # Strings, as in the environment: pydantic parses them into the typed fields.
    return Settings(**values)  # type: ignore[arg-type]


IDLE = "engines_http_requests_in_flight 1.0"
"""/metrics when the only request the service is serving is the scrape that asks."""


async def _until_idle(url: str, *, bound_s: float) -> None:
    """Until the service serves no request but the scrape asking (its /metrics), or ``bound_s``
    (then the reconciliation names whatever was still being written)."""
    deadline = time.monotonic() + bound_s
    async with httpx.AsyncClient(base_url=url, timeout=2) as client:
        while IDLE not in (await client.get("/metrics")).text and time.monotonic() < deadline:
            await asyncio.sleep(0.05)


@asynccontextmanager
async def serve_in_process(env: dict[str, str]) -> AsyncIterator[str]:
    """The app under uvicorn in this event loop, on a loopback port: real HTTP (so clients
    really time out) without the second or more a process takes to start. Yields its URL."""
    port = free_port()
    config = uvicorn.Config(
        create_app(settings_from(env)),
        host="127.0.0.1",
        port=port,
        access_log=False,
        log_level="warning",
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()  # start-up failed: raise why
            await asyncio.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def run_fault(
    fault: Fault,
    *,
    workdir: Path,
    database_url: str,
    backend: str,
    users: int = 6,
    duration_s: float = 2.0,
) -> Outcome:
    """One run under ``fault`` (see the module docstring). The signal faults run the service as
    a process (``python -m service``, really signalled) and retry on a clean one in this
    process; the others run it in this process throughout."""
    base = {
        "ENGINES_DATABASE_URL": database_url,
        "ENGINES_BCRYPT_ROUNDS": "4",
        "ENGINES_LOG_LEVEL": "warning",
    }
    env = {**base, "ENGINES_FAULT_PATHS": "/api/items", **fault.env}
    if fault.signal is None:
        async with serve_in_process(env) as url:
            return await _run(fault, url, None, base, database_url, backend, users, duration_s)
    service = BundledService(workdir=workdir, env=env).start()
    try:
        return await _run(
            fault, service.url, service, base, database_url, backend, users, duration_s
        )
    finally:
        service.stop()


async def _run(
    fault: Fault,
    url: str,
    process: BundledService | None,
    clean_env: dict[str, str],
    database_url: str,
    backend: str,
    users: int,
    duration_s: float,
) -> Outcome:
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        tokens = [await _token(client, f"user{i}@example.org") for i in range(users + 1)]
    until = time.monotonic() + duration_s
    load = asyncio.gather(
        *(
            _creator(url, tokens[i], i, i % 2 == 0, until, fault.client_timeout_s)
            for i in range(users)
        )
    )
    reader = asyncio.create_task(_reader(url, tokens[users], until))
    if process is not None and fault.signal is not None:
        await asyncio.sleep(duration_s * 0.6)
        process.process.send_signal(fault.signal)
    attempts = [a for per_user in await load for a in per_user]
    reads = await reader
    if process is not None:
        await asyncio.to_thread(process.process.wait, 30)
    else:
        # Requests the clients stopped waiting for may still be running: let them end.
        await _until_idle(url, bound_s=5.0)
    rows_before = await read_rows(database_url)
    to_retry = [a for a in attempts if a.key is not None and not a.succeeded]

    async def retry_all(retry_url: str) -> list[Retry]:
        # One retrying client per user, each retrying its creates in turn, as the clients would.
        deadline = time.monotonic() + 20

        async def retry_user(user: int) -> list[Retry]:
            mine = [a for a in to_retry if _user_of(a) == user]
            return [await _retry(retry_url, tokens[user], a, deadline=deadline) for a in mine]

        per_user = await asyncio.gather(*(retry_user(user) for user in range(users)))
        return [r for retries in per_user for r in retries]

    if process is not None:
        async with serve_in_process(clean_env) as clean_url:
            retries = await retry_all(clean_url)
    else:
        retries = await retry_all(url)
    rows_after = await read_rows(database_url)
    shutdown = fault.signal is not None
    outcome = Outcome(
        fault.name, backend, shutdown, attempts, retries, rows_before, rows_after, reads
    )
    outcome.violations = reconcile(attempts, retries, rows_before, rows_after, shutdown=shutdown)
    return outcome


def _user_of(attempt: Attempt) -> int:
    return int(attempt.name.removeprefix("u").split("-")[0])

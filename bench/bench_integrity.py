"""Data integrity under faults, the larger matrix: every fault × backend, more clients, longer, in
several rounds (CI runs one short round: tests/service/test_service_integrity.py).

Each run drives concurrent creates at the service under one fault, records every answer, retries
the keyed ones that got no success, and reconciles the database against the answers (see
tests/service/integrity.py and docs/reliability.md). PostgreSQL is a throwaway cluster
(tests/service/postgres_cluster.py), or ENGINES_TEST_POSTGRES_URL's server.

    .venv/bin/python bench/bench_integrity.py                       # 3 rounds, 12 users, 5 s
    .venv/bin/python bench/bench_integrity.py --rounds 1 --faults sigkill --backends sqlite
    .venv/bin/python bench/bench_integrity.py --write-docs          # table into docs/reliability.md

Not a test: it prints one line per run and a table; it exits 1 if any run broke a promise.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the tests' helpers, as a package of the checkout

from tests.service.integrity import FAULTS, Outcome, run_fault  # noqa: E402
from tests.service.postgres_cluster import (  # noqa: E402
    PostgresCluster,
    create_database,
    drop_database,
    find_bindir,
)

DOCS = ROOT / "docs" / "reliability.md"
SECTION = "### Larger matrix (bench/bench_integrity.py)"


@asynccontextmanager
async def postgres_server() -> AsyncIterator[str]:
    """ENGINES_TEST_POSTGRES_URL, or a throwaway cluster for the bench's lifetime."""
    given = os.environ.get("ENGINES_TEST_POSTGRES_URL")
    if given:
        yield given
        return
    cluster = PostgresCluster(find_bindir())
    try:
        cluster.start()
        yield cluster.url()
    finally:
        cluster.stop()


async def one_run(
    fault: str, backend: str, server: str | None, users: int, duration_s: float
) -> Outcome:
    with tempfile.TemporaryDirectory(prefix="loadkit-integrity-") as tmp:
        workdir = Path(tmp)
        async with database_url(backend, server, workdir) as url:
            return await run_fault(
                FAULTS[fault],
                workdir=workdir,
                database_url=url,
                backend=backend,
                users=users,
                duration_s=duration_s,
            )


@asynccontextmanager
async def database_url(backend: str, server: str | None, workdir: Path) -> AsyncIterator[str]:
    """A fresh, empty database for one run: a SQLite file in ``workdir``, or a database of its
    own on the throwaway PostgreSQL ``server``, dropped afterwards."""
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{workdir / 'engines.db'}"
        return
    assert server is not None
    name = f"loadkit_integrity_{uuid.uuid4().hex[:12]}"
    url = await create_database(server, name)
    try:
        yield url
    finally:
        await drop_database(server, name)


def table(outcomes: list[Outcome]) -> str:
    """A markdown table: per fault and backend, summed over the rounds."""
    rows = [
        "| fault | backend | runs | creates | 2xx | error answers | no answer | keyed retries "
        "| replayed | in-doubt unkeyed saved | violations |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    keys = sorted(
        {(o.fault, o.backend) for o in outcomes}, key=lambda k: (list(FAULTS).index(k[0]), k[1])
    )
    for fault, backend in keys:
        mine = [o for o in outcomes if (o.fault, o.backend) == (fault, backend)]
        attempts = [a for o in mine for a in o.attempts]
        ok = sum(a.succeeded for a in attempts)
        none = sum(a.status is None for a in attempts)
        rows.append(
            f"| {fault} | {backend} | {len(mine)} | {len(attempts)} | {ok} "
            f"| {len(attempts) - ok - none} | {none} | {sum(len(o.retries) for o in mine)} "
            f"| {sum(r.replayed for o in mine for r in o.retries)} "
            f"| {sum(o.in_doubt_unkeyed_saved() for o in mine)} "
            f"| {sum(len(o.violations) for o in mine)} |"
        )
    return "\n".join(rows)


def write_docs(text: str, command: str) -> None:
    """Replace (or add) the bench's section in docs/reliability.md."""
    today = datetime.now(UTC).date().isoformat()
    section = f"{SECTION}\n\nMeasured {today} on 2 cores with `{command}`.\n\n{text}\n"
    doc = DOCS.read_text()
    pattern = re.compile(re.escape(SECTION) + r".*?(?=\n#{2,3} |\Z)", re.S)
    doc = (
        pattern.sub(lambda _: section.rstrip("\n"), doc)
        if pattern.search(doc)
        else (doc.rstrip("\n") + "\n\n" + section)
    )
    DOCS.write_text(doc if doc.endswith("\n") else doc + "\n")


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--users", type=int, default=12)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds of load per run")
    parser.add_argument("--faults", nargs="+", default=list(FAULTS), choices=list(FAULTS))
    parser.add_argument(
        "--backends", nargs="+", default=["sqlite", "postgres"], choices=["sqlite", "postgres"]
    )
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args(argv)
    outcomes: list[Outcome] = []
    async with postgres_server() if "postgres" in args.backends else _no_server() as server:
        for round_no in range(1, args.rounds + 1):
            for fault in args.faults:
                for backend in args.backends:
                    outcome = await one_run(fault, backend, server, args.users, args.duration)
                    outcomes.append(outcome)
                    print(f"round {round_no}: {outcome.summary()}", flush=True)
                    for problem in outcome.violations[:10]:
                        print(f"  VIOLATION: {problem}", flush=True)
    text = table(outcomes)
    print(text)
    if args.write_docs:
        write_docs(text, "python bench/bench_integrity.py " + " ".join(argv or sys.argv[1:]))
    return 1 if any(o.violations for o in outcomes) else 0


@asynccontextmanager
async def _no_server() -> AsyncIterator[None]:
    yield None


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))

"""Login timing as an enumeration signal: is the first login for an email nobody registered
measurably slower or faster than a login for a cached account? (Issue 13: ~2 ms slower, z = -5.3
over 100 tries, because the unknown email read the database and took the lock twice.)

The app runs in this process (httpx ASGITransport, SQLite file), bcrypt at 4 rounds by default so
that bcrypt's own spread does not hide a difference of a fraction of a millisecond. Each try
times, in random order, a wrong-password login for one registered, cached account and the first
login for a fresh unknown email. The paired differences give a z score: |z| < 3 is no signal.

    .venv/bin/python bench/bench_login_timing.py                  # 400 tries
    .venv/bin/python bench/bench_login_timing.py --tries 1000 --write-docs

Not a test (a timing assertion on a shared machine would flake): it prints the figures and, with
--write-docs, puts them in docs/reliability.md under its own heading.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

from service.app import create_app
from service.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "reliability.md"
SECTION = "### Login timing (bench/bench_login_timing.py)"
PASSWORD = "timing password 1"


async def measure(tries: int, rounds: int, seed: int) -> tuple[list[float], list[float]]:
    """(cached account, first login for an unknown email) durations in ms, one pair per try."""
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            database_url=f"sqlite+aiosqlite:///{Path(tmp) / 'engines.db'}",
            bcrypt_rounds=rounds,
            log_level="error",
            access_log_level="debug",
        )
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                known = {"email": "known@example.org", "password": PASSWORD}
                assert (await client.post("/api/auth/register", json=known)).status_code == 201
                assert (await client.post("/api/auth/login", json=known)).status_code == 200
                wrong = {"email": known["email"], "password": "not the password"}

                async def timed(body: dict[str, str]) -> float:
                    started = time.perf_counter()
                    response = await client.post("/api/auth/login", json=body)
                    assert response.status_code == 401, response.text
                    return (time.perf_counter() - started) * 1000

                for _ in range(20):  # warm up both paths
                    await timed(wrong)
                    await timed({"email": f"warm{rng.random()}@example.org", "password": "x" * 8})
                cached: list[float] = []
                unknown: list[float] = []
                for i in range(tries):
                    fresh = {"email": f"nobody-{i}-{rng.random()}@example.org", "password": "x" * 8}
                    if rng.random() < 0.5:
                        cached.append(await timed(wrong))
                        unknown.append(await timed(fresh))
                    else:
                        unknown.append(await timed(fresh))
                        cached.append(await timed(wrong))
    return cached, unknown


def report(cached: list[float], unknown: list[float], rounds: int) -> str:
    """The figures as a markdown table."""
    diffs = [u - c for u, c in zip(unknown, cached, strict=True)]
    mean = statistics.fmean(diffs)
    se = statistics.stdev(diffs) / len(diffs) ** 0.5
    z = mean / se if se else 0.0
    return "\n".join(
        [
            f"bcrypt rounds {rounds}, {len(diffs)} paired tries (unknown minus cached).",
            "",
            "| | cached account | first login, unknown email |",
            "|---|---:|---:|",
            f"| median | {statistics.median(cached):.3f} ms "
            f"| {statistics.median(unknown):.3f} ms |",
            f"| mean | {statistics.fmean(cached):.3f} ms | {statistics.fmean(unknown):.3f} ms |",
            "",
            f"Mean difference {mean:+.3f} ms (standard error {se:.3f} ms): z = {z:+.1f} "
            f"({'no signal' if abs(z) < 3 else 'a SIGNAL'} at |z| < 3).",
        ]
    )


def write_docs(text: str, command: str) -> None:
    """Replace (or add) the bench's section in docs/reliability.md."""
    today = datetime.now(UTC).date().isoformat()
    section = f"{SECTION}\n\nMeasured {today} on 2 cores with `{command}`.\n\n{text}\n"
    doc = DOCS.read_text()
    pattern = re.compile(re.escape(SECTION) + r".*?(?=\n#{2,3} |\Z)", re.S)
    if pattern.search(doc):
        doc = pattern.sub(lambda _: section.rstrip("\n"), doc)
    else:
        doc = doc.rstrip("\n") + "\n\n" + section
    DOCS.write_text(doc if doc.endswith("\n") else doc + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tries", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=4, help="bcrypt cost factor")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args(argv)
    cached, unknown = asyncio.run(measure(args.tries, args.rounds, args.seed))
    text = report(cached, unknown, args.rounds)
    print(text)
    if args.write_docs:
        write_docs(text, "python bench/bench_login_timing.py " + " ".join(argv or sys.argv[1:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark of ``loadkit errors``: lines per second and peak memory on a generated service log.

Generates a log shaped like the service's stdout (structlog JSON lines in its key order: mostly
request lines, a realistic share of errors over several kinds and endpoints, pool lines every so
often, and uvicorn's plain-text lines mixed in), then reads and breaks it down in a fresh child
process per size, so that each peak RSS (``ru_maxrss`` of that child) is its own. Memory must be
flat in the number of lines: compare the sizes.

    .venv/bin/python bench/bench_errors.py                 # 100k and 1M lines
    .venv/bin/python bench/bench_errors.py --lines 1000000 --gzip --write-docs

Not a test: it asserts nothing, it prints figures (and, with --write-docs, puts them in
docs/benchmarks.md under its own heading).
"""

from __future__ import annotations

import argparse
import gzip
import os
import platform
import random
import subprocess
import sys
import tempfile
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path

import orjson

from benchmarks_page import PAGE, write_section

ROOT = Path(__file__).resolve().parent.parent
SECTION = "## loadkit errors: log scan and breakdown (bench/bench_errors.py)"
TARGET_LINES_PER_S = 200_000

ENDPOINTS = [
    ("POST", "/api/auth/login", 0.30),
    ("POST", "/api/auth/register", 0.10),
    ("GET", "/api/auth/me", 0.15),
    ("GET", "/api/items", 0.20),
    ("POST", "/api/items", 0.10),
    ("GET", "/api/items/{item_id}", 0.10),
    ("DELETE", "/api/items/{item_id}", 0.05),
]
ERRORS = [
    ("storage_lock_timeout", 503, 0.45),
    ("invalid_credentials", 401, 0.20),
    ("db_pool_exhausted", 503, 0.15),
    ("unauthorized", 401, 0.10),
    ("not_found", 404, 0.05),
    ("validation_error", 422, 0.05),
]
ERROR_SHARE = 0.17


def generate(path: Path, lines: int, *, compress: bool, seed: int = 8) -> None:
    """Write ``lines`` lines of service-like log to ``path`` (gzip when ``compress``)."""
    rng = random.Random(seed)
    t0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC).timestamp()
    ep_weights = [w for *_, w in ENDPOINTS]
    err_weights = [w for *_, w in ERRORS]
    opener = gzip.open if compress else open
    with opener(path, "wb") as out:
        batch: list[bytes] = []
        for i in range(lines):
            ts = datetime.fromtimestamp(t0 + i * 0.0005, tz=UTC).isoformat().replace("+00:00", "Z")
            roll = rng.random()
            if roll < 0.005:
                batch.append(b'INFO:     127.0.0.1:52144 - "POST /api/auth/login HTTP/1.1" 503\n')
                continue
            if roll < 0.01:
                pool = {
                    "size": 5,
                    "max_size": 15,
                    "checked_out": rng.randint(0, 15),
                    "checked_in": rng.randint(0, 5),
                    "overflow": rng.randint(-5, 10),
                    "waited": rng.choice([0, 0, 0, 2, 7]),
                    "timed_out": rng.choice([0, 0, 0, 0, 1]),
                    "event": "db_pool",
                    "level": "info",
                    "ts": ts,
                }
                batch.append(orjson.dumps(pool) + b"\n")
                continue
            method, endpoint, _ = rng.choices(ENDPOINTS, ep_weights)[0]
            record: dict[str, object] = {
                "method": method,
                "endpoint": endpoint,
                "status_code": 200,
                "error_kind": None,
                "duration_ms": round(rng.lognormvariate(2.0, 0.8), 3),
            }
            level = "info"
            if rng.random() < ERROR_SHARE:
                kind, status, _ = rng.choices(ERRORS, err_weights)[0]
                record.update(status_code=status, error_kind=kind, message=f"{kind} happened")
                level = "error" if status >= 500 else "warning"
            record.update(event="request", trace_id=f"{rng.getrandbits(128):032x}", level=level)
            record["ts"] = ts
            batch.append(orjson.dumps(record) + b"\n")
            if len(batch) >= 10_000:
                out.write(b"".join(batch))
                batch.clear()
        out.write(b"".join(batch))


def child(path: str) -> None:
    """Scan and break down one log; print lines, seconds and lines/s as JSON."""
    sys.path.insert(0, str(ROOT))
    from loadkit.logs.breakdown import BreakdownBuilder
    from loadkit.logs.scan import LogSource

    started = time.perf_counter()
    source = LogSource(path)
    builder = BreakdownBuilder()
    builder.add_all(source)
    breakdown = builder.result(top=5, counts=source.counts, sources=[path])
    elapsed = time.perf_counter() - started
    print(
        orjson.dumps(
            {
                "lines": source.counts.lines,
                "errors": breakdown.totals.errors,
                "seconds": elapsed,
                "lines_per_s": source.counts.lines / elapsed,
            }
        ).decode()
    )


def measure(path: Path) -> dict[str, float]:
    """Run ``child`` in a fresh process; its figures plus its own peak RSS in MiB."""
    output, rss_mib, _ = _run([sys.executable, __file__, "--child", str(path)])
    figures: dict[str, float] = orjson.loads(output)
    figures["peak_rss_mib"] = rss_mib
    return figures


def measure_cli(path: Path, lines: int) -> dict[str, float]:
    """The whole command, start-up and rendering included: ``python -m loadkit errors``."""
    argv = [sys.executable, "-m", "loadkit", "errors", str(path), "--format", "json"]
    _, rss_mib, seconds = _run(argv)
    return {"seconds": seconds, "lines_per_s": lines / seconds, "peak_rss_mib": rss_mib}


def _run(argv: list[str]) -> tuple[bytes, float, float]:
    """Output, peak RSS (MiB) and wall seconds of one child process."""
    started = time.perf_counter()
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, cwd=ROOT)
    assert process.stdout is not None
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(argv)} failed with {os.waitstatus_to_exitcode(status)}")
    return output, usage.ru_maxrss / 1024, seconds  # ru_maxrss is in KiB on Linux


def main() -> None:
    """Generate, measure, print; optionally write the docs section."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, nargs="*", default=[100_000, 1_000_000])
    parser.add_argument("--gzip", action="store_true", help="also measure a gzipped log")
    parser.add_argument("--write-docs", action="store_true", help="update docs/benchmarks.md")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-errors-") as tmp:
        for lines in args.lines:
            variants = [False, True] if args.gzip else [False]
            for compress in variants:
                path = Path(tmp) / f"service-{lines}.log{'.gz' if compress else ''}"
                generate(path, lines, compress=compress)
                size_mib = path.stat().st_size / 2**20
                figures = measure(path)
                row = (
                    f"| {lines:,} | {'gzip' if compress else 'plain'} | {size_mib:,.0f} MiB | "
                    f"{figures['seconds']:.2f} s | {figures['lines_per_s']:,.0f} | "
                    f"{figures['peak_rss_mib']:.0f} MiB |"
                )
                print(row, flush=True)
                rows.append(row)
                if not compress and lines == max(args.lines):
                    cli = measure_cli(path, lines)
                    row = (
                        f"| {lines:,} | plain, whole CLI | {size_mib:,.0f} MiB | "
                        f"{cli['seconds']:.2f} s | {cli['lines_per_s']:,.0f} | "
                        f"{cli['peak_rss_mib']:.0f} MiB |"
                    )
                    print(row, flush=True)
                    rows.append(row)
    command = "bench/bench_errors.py " + " ".join(sys.argv[1:]).replace(" --write-docs", "")
    about = (
        f"Measured {datetime.now(tz=UTC):%Y-%m-%d} on {os.cpu_count()} cores (shared with other "
        f"work: figures move by a third from run to run), Python {platform.python_version()}, "
        f"with `.venv/bin/python {command.strip()}`. A log shaped like the service's stdout "
        f"({ERROR_SHARE * 100:.0f} % errors over {len(ERRORS)} kinds and {len(ENDPOINTS)} "
        "endpoints, 0.5 % pool lines, 0.5 % uvicorn text lines) is read and broken down "
        "(no --since, no --results) in a fresh process per row; peak RSS is that process's. "
        "The whole-CLI row times `python -m loadkit errors LOG --format json` from start to "
        "exit. "
        f"Target: >= {TARGET_LINES_PER_S:,} lines/s, memory flat in the number of lines."
    )
    text = "\n".join(
        [
            SECTION,
            "",
            textwrap.fill(about, width=100, break_on_hyphens=False),
            "",
            "| lines | file | size | time | lines/s | peak RSS |",
            "|------:|------|-----:|-----:|--------:|---------:|",
            *rows,
            "",
        ]
    )
    if args.write_docs:
        write_section(text)
        print(f"wrote {PAGE.relative_to(ROOT)}")


if __name__ == "__main__":
    main()

"""Benchmark of ``loadkit errors --preset nginx``: lines per second and memory on a generated log.

Generates an nginx ``combined`` access log of N lines with known counts (endpoints whose ids are
numbers, UUIDs and hex object ids, some with a query string; 12 % errors over 499, 5xx and 4xx;
a second's timestamp shared by ~2,000 lines, as on a busy proxy; 0.2 % lines in other formats),
then reads and breaks it down in a fresh child process per run, so each peak RSS is its own.
The child checks its counts against the generator's (a wrong fold or parse fails the benchmark)
and reports lines/s and its RSS growth over the read (peak RSS after minus RSS before). Sizes
are measured interleaved (N, 5N, N, 5N, ...): memory must not grow with the number of lines.

    .venv/bin/python bench/bench_errors_nginx.py                      # 200k and 1M lines, 3 rounds
    .venv/bin/python bench/bench_errors_nginx.py --lines 200000 --rounds 3 --write-docs

Not a test: it prints figures (and with --write-docs puts them in docs/benchmarks.md under its
own heading). The scratch logs go to --dir (default: a temporary folder), deleted afterwards.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import orjson

from benchmarks_page import PAGE, write_section

ROOT = Path(__file__).resolve().parent.parent
SECTION = "## loadkit errors --preset nginx: access log scan (bench/bench_errors_nginx.py)"
TARGET_LINES_PER_S = 200_000

# (method, template, id kind, weight); the template's {id} is what the reader must fold back.
ENDPOINTS = [
    ("GET", "/api/items", None, 0.25),
    ("GET", "/api/items/{id}", "number", 0.25),
    ("PUT", "/api/items/{id}", "uuid", 0.10),
    ("GET", "/api/users/{id}/orders", "hex", 0.10),
    ("POST", "/api/auth/login", None, 0.15),
    ("GET", "/static/app.js", None, 0.10),
    ("DELETE", "/api/orders/{id}", "number", 0.05),
]
STATUSES = [  # (status, kind the preset gives it, weight among errors)
    (502, "bad_gateway", 0.30),
    (504, "gateway_timeout", 0.20),
    (499, "client_closed_request", 0.15),
    (503, "service_unavailable", 0.10),
    (404, "not_found", 0.10),
    (500, "internal_error", 0.05),
    (401, "unauthorized", 0.05),
    (418, "client_error", 0.05),
]
ERROR_SHARE = 0.12
OTHER_SHARE = 0.002
AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36"
)
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


def generate(path: Path, lines: int, *, seed: int = 18) -> dict[str, object]:
    """Write ``lines`` lines of nginx combined log to ``path``; return the counts it holds."""
    rng = random.Random(seed)
    t0 = datetime(2026, 12, 2, 9, 0, tzinfo=UTC).timestamp()
    ep_weights = [w for *_, w in ENDPOINTS]
    st_weights = [w for *_, w in STATUSES]
    groups: Counter[str] = Counter()
    requests = errors = other = 0
    with path.open("wb") as out:
        batch: list[bytes] = []
        for i in range(lines):
            if rng.random() < OTHER_SHARE:
                batch.append(b"2026/12/02 09:00:01 [error] 7#7: *1 upstream prematurely closed\n")
                other += 1
                continue
            method, template, id_kind, _ = rng.choices(ENDPOINTS, ep_weights)[0]
            ident = ""
            if id_kind == "number":
                ident = str(rng.randint(1, 10**7))
            elif id_kind == "uuid":
                ident = str(uuid.UUID(int=rng.getrandbits(128)))
            elif id_kind == "hex":
                ident = f"{rng.getrandbits(96):024x}"
            target = template.replace("{id}", ident)
            if rng.random() < 0.2:
                target += f"?page={rng.randint(1, 9)}&sort=name"
            status, kind = 200, None
            if rng.random() < ERROR_SHARE:
                status, kind, _ = rng.choices(STATUSES, st_weights)[0]
                errors += 1
                groups[f"{method} {template} {kind}"] += 1
            requests += 1
            moment = datetime.fromtimestamp(t0 + i // 2000, tz=UTC)
            stamp = f"{moment:%d}/{MONTHS[moment.month - 1]}/{moment:%Y:%H:%M:%S} +0000"
            batch.append(
                f'10.0.{i % 250}.{i % 200} - - [{stamp}] "{method} {target} HTTP/1.1" {status} '
                f'{rng.randint(0, 5000)} "-" "{AGENT}"\n'.encode()
            )
            if len(batch) >= 10_000:
                out.write(b"".join(batch))
                batch.clear()
        out.write(b"".join(batch))
    return {"requests": requests, "errors": errors, "other": other, "groups": dict(groups)}


def child(path: str, expected_path: str) -> None:
    """Read and break down one log; check its counts; print figures as JSON."""
    sys.path.insert(0, str(ROOT))
    from loadkit.logs.breakdown import BreakdownBuilder
    from loadkit.logs.formats import NGINX
    from loadkit.logs.scan import LogSource

    expected = orjson.loads(Path(expected_path).read_bytes())
    rss_before = _rss_mib()
    started = time.perf_counter()
    cpu_started = time.process_time()
    source = LogSource(path, reader=NGINX.reader)
    builder = BreakdownBuilder()
    builder.add_all(source)
    breakdown = builder.result(top=100, counts=source.counts, sources=[path], log_format="nginx")
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    groups = {f"{row.endpoint} {row.kind}": row.count for row in breakdown.top}
    if (
        breakdown.totals.requests != expected["requests"]
        or breakdown.totals.errors != expected["errors"]
        or source.counts.unmatched != expected["other"]
        or groups != expected["groups"]
    ):
        raise SystemExit(f"counts differ from the generator's: {breakdown.totals}, {groups}")
    print(
        orjson.dumps(
            {
                "lines": source.counts.lines,
                "seconds": elapsed,
                "lines_per_s": source.counts.lines / elapsed,
                "lines_per_cpu_s": source.counts.lines / cpu,
                "rss_growth_mib": peak - rss_before,
                "peak_rss_mib": peak,
            }
        ).decode()
    )


def _rss_mib() -> float:
    """The current RSS (not the peak) of this process, in MiB."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def measure(path: Path, expected: Path) -> dict[str, float]:
    """Run ``child`` in a fresh process and return its figures."""
    output = subprocess.run(
        [sys.executable, __file__, "--child", str(path), str(expected)],
        cwd=ROOT,
        check=True,
        stdout=subprocess.PIPE,
    ).stdout
    figures: dict[str, float] = orjson.loads(output)
    return figures


def measure_cli(path: Path, lines: int) -> dict[str, float]:
    """The whole command from start to exit: ``python -m loadkit errors LOG --preset nginx``."""
    argv = [sys.executable, "-m", "loadkit", "errors", str(path), "--preset", "nginx"]
    argv += ["--format", "json"]
    started = time.perf_counter()
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, cwd=ROOT)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(argv)} failed with {os.waitstatus_to_exitcode(status)}")
    return {
        "seconds": seconds,
        "lines_per_s": lines / seconds,
        "peak_rss_mib": usage.ru_maxrss / 1024,
    }


def main() -> None:
    """Generate, measure interleaved, print; optionally write the docs section."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=200_000, help="N: measured at N and 5N")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=None, help="scratch folder for the logs")
    parser.add_argument("--write-docs", action="store_true", help="update docs/benchmarks.md")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    sizes = [args.lines, 5 * args.lines]
    load_before = os.getloadavg()[0]
    results: dict[int, list[dict[str, float]]] = {size: [] for size in sizes}
    with tempfile.TemporaryDirectory(prefix="bench-errors-nginx-", dir=args.dir) as tmp:
        files = {}
        for size in sizes:
            path = Path(tmp) / f"access-{size}.log"
            expected = Path(tmp) / f"access-{size}.json"
            expected.write_bytes(orjson.dumps(generate(path, size)))
            files[size] = (path, expected)
        for round_no in range(1, args.rounds + 1):
            for size in sizes:
                figures = measure(*files[size])
                results[size].append(figures)
                print(
                    f"round {round_no}: {size:,} lines {figures['lines_per_s']:,.0f} lines/s, "
                    f"{figures['lines_per_cpu_s']:,.0f} per CPU s, "
                    f"RSS growth {figures['rss_growth_mib']:.1f} MiB, "
                    f"peak {figures['peak_rss_mib']:.0f} MiB",
                    flush=True,
                )
        cli = measure_cli(files[sizes[-1]][0], sizes[-1])
        size_mib = {size: files[size][0].stat().st_size / 2**20 for size in sizes}
    rows = []
    for size in sizes:
        runs = results[size]
        rates = [r["lines_per_s"] for r in runs]
        cpu_rate = statistics.median(r["lines_per_cpu_s"] for r in runs)
        rows.append(
            f"| {size:,} | {size_mib[size]:,.0f} MiB | in-process | "
            f"{statistics.median(rates):,.0f} ({min(rates):,.0f}–{max(rates):,.0f}) | "
            f"{cpu_rate:,.0f} | "
            f"{statistics.median(r['rss_growth_mib'] for r in runs):.1f} MiB | "
            f"{statistics.median(r['peak_rss_mib'] for r in runs):.0f} MiB |"
        )
    rows.append(
        f"| {sizes[-1]:,} | {size_mib[sizes[-1]]:,.0f} MiB | whole CLI | "
        f"{cli['lines_per_s']:,.0f} | — | — | {cli['peak_rss_mib']:.0f} MiB |"
    )
    # Per CPU second: the wall clock of a shared machine moves with the other work on it.
    ratio = statistics.median(r["lines_per_cpu_s"] for r in results[sizes[-1]]) / statistics.median(
        r["lines_per_cpu_s"] for r in results[sizes[0]]
    )
    for row in rows:
        print(row)
    print(f"lines per CPU s at 5N / at N: {ratio:.2f}")
    command = "bench/bench_errors_nginx.py " + " ".join(sys.argv[1:]).replace(" --write-docs", "")
    about = (
        f"Measured {datetime.now(tz=UTC):%Y-%m-%d} on {os.cpu_count()} cores (shared with other "
        f"work: load average {load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end), "
        f"Python {platform.python_version()}, with `.venv/bin/python {command.strip()}`. "
        f"An nginx combined access log of N and 5N lines ({ERROR_SHARE * 100:.0f} % errors over "
        f"{len(STATUSES)} statuses, {len(ENDPOINTS)} endpoints with numeric, UUID and hex ids, "
        f"20 % with a query string, {OTHER_SHARE * 100:.1f} % lines of nginx's error log mixed "
        "in) is read and broken down in a fresh process per run, sizes interleaved over "
        f"{args.rounds} rounds; each run checks its counts and top offenders against the "
        "generator's. lines/s: wall clock, median (min–max); lines per CPU s: the same lines over "
        "the process's CPU time for the read (what the code costs, whatever else the shared "
        "machine runs); RSS growth: peak RSS after the read minus RSS "
        "before it (median). The whole-CLI row times `python -m loadkit errors LOG --preset "
        f"nginx --format json` from start to exit. Lines per CPU s at 5N / at N: {ratio:.2f}. "
        "Target: "
        f">= {TARGET_LINES_PER_S:,} lines/s, memory flat in the number of lines."
    )
    text = "\n".join(
        [
            SECTION,
            "",
            textwrap.fill(about, width=100, break_on_hyphens=False),
            "",
            "| lines | size | run | lines/s | lines per CPU s | RSS growth | peak RSS |",
            "|------:|-----:|-----|--------:|----------------:|-----------:|---------:|",
            *rows,
            "",
        ]
    )
    if args.write_docs:
        write_section(text)
        print(f"wrote {PAGE.relative_to(ROOT)}")


if __name__ == "__main__":
    main()

"""Peers and engines on one target: requests per second and CPU µs per request of each tool.

One nginx (Debian's ``nginx-light``) on a free loopback port serves one small static file; every
tool hits it with the same connections for the same seconds, interleaved round by round (wrk,
ab, hey, autocannon, plain Locust, ``loadkit load --engine locust``, ``loadkit load --engine
native``, then again), so that a slow spell of the shared machine hits every tool alike. CPU is
that of each tool's whole process tree (``RUSAGE_CHILDREN`` deltas: every tool here waits for
its own children, so their CPU is counted), start-up included; it is the robust figure on a
shared machine, where req/s also depends on what else runs.

A tool that is not installed is skipped with a line saying so (wrk, ab from ``apache2-utils``,
hey: Debian packages; autocannon: installed with npm into a cache folder for this benchmark only,
never a project dependency). A tool that fails in a round is reported for that round and the
benchmark goes on.

    .venv/bin/python bench/bench_engines.py [--seconds 15] [--rounds 3] [--connections 10] \\
        [--tools wrk,ab,...] [--write]

Prints a table (median of the rounds, ratio to wrk) with each tool's exact command;
``--write`` replaces its section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench_load import STATIC_PATH, URL_SCENARIO, nginx, rps_from_locust_json
from benchmarks_page import write_section

SECTION = "## Engines and peers: req/s and CPU per request (bench/bench_engines.py)"
NPM_CACHE = Path.home() / ".cache" / "loadkit-bench" / "npm"
"""Where autocannon is installed for this benchmark (not a project dependency)."""
TOOLS = ("wrk", "ab", "hey", "autocannon", "locust", "loadkit-locust", "loadkit-native")


@dataclass(frozen=True)
class Run:
    """What one tool's run gave: requests, its own req/s, CPU µs per request of its tree."""

    requests: int
    rps: float
    cpu_us: float


@dataclass(frozen=True)
class Tool:
    """A peer or engine: the command for (url, connections, seconds, folder), and how to read
    (requests, req/s) from its output and folder."""

    name: str
    command: Callable[[str, int, int, Path], list[str]]
    parse: Callable[[str, Path, int], tuple[int, float]]


def children_cpu_s() -> float:
    """CPU seconds (user + system) of every child process waited for so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _number(pattern: str, text: str) -> float:
    found = re.search(pattern, text)
    if found is None:
        raise ValueError(f"no {pattern!r} in the output: {text[-400:]!r}")
    return float(found.group(1))


# --- the tools ----------------------------------------------------------------------------------


def _wrk(url: str, connections: int, seconds: int, _folder: Path) -> list[str]:
    return ["wrk", "-t", "2", "-c", str(connections), "-d", f"{seconds}s", url]


def _wrk_parse(out: str, _folder: Path, _seconds: int) -> tuple[int, float]:
    return int(_number(r"(\d+) requests in", out)), _number(r"Requests/sec:\s+([\d.]+)", out)


def _ab(url: str, connections: int, seconds: int, _folder: Path) -> list[str]:
    # -n: more than any run sends, or ab stops at its default 50,000 before -t is up.
    return ["ab", "-k", "-q", "-c", str(connections), "-t", str(seconds), "-n", "100000000", url]


def _ab_parse(out: str, _folder: Path, _seconds: int) -> tuple[int, float]:
    requests = int(_number(r"Complete requests:\s+(\d+)", out))
    return requests, _number(r"Requests per second:\s+([\d.]+)", out)


def _hey(url: str, connections: int, seconds: int, _folder: Path) -> list[str]:
    return ["hey", "-z", f"{seconds}s", "-c", str(connections), url]


def _hey_parse(out: str, _folder: Path, _seconds: int) -> tuple[int, float]:
    requests = sum(int(n) for n in re.findall(r"\[\d{3}\]\s+(\d+) responses", out))
    return requests, _number(r"Requests/sec:\s+([\d.]+)", out)


def _autocannon_bin() -> Path:
    return NPM_CACHE / "node_modules" / ".bin" / "autocannon"


def _autocannon(url: str, connections: int, seconds: int, _folder: Path) -> list[str]:
    return [str(_autocannon_bin()), "-c", str(connections), "-d", str(seconds), "--json", url]


def _autocannon_parse(out: str, _folder: Path, _seconds: int) -> tuple[int, float]:
    report = json.loads(out[out.index("{") :])
    requests = int(report["requests"]["total"])
    return requests, requests / (float(report["duration"]) or 1.0)


def _locust(url: str, connections: int, seconds: int, folder: Path) -> list[str]:
    base, path = url.split(STATIC_PATH)[0], STATIC_PATH
    return [
        sys.executable, "-m", "locust", "-f", str(URL_SCENARIO), "--headless",
        "--users", str(connections), "--spawn-rate", str(connections), "--run-time", f"{seconds}s",
        "--host", base, "--url-path", path, "--only-summary",
        "--json-file", str(folder / "locust"),
    ]  # fmt: skip


def _locust_parse(_out: str, folder: Path, _seconds: int) -> tuple[int, float]:
    return rps_from_locust_json(folder / "locust.json")


def _loadkit(engine: str) -> Callable[[str, int, int, Path], list[str]]:
    def command(url: str, connections: int, seconds: int, folder: Path) -> list[str]:
        return [
            sys.executable, "-m", "loadkit", "load", url, "--engine", engine,
            "--concurrency", str(connections), "--duration", str(seconds),
            "--out", str(folder / "load.json"), "--quiet",
        ]  # fmt: skip

    return command


def _loadkit_parse(_out: str, folder: Path, _seconds: int) -> tuple[int, float]:
    results = json.loads((folder / "load.json").read_text())
    if not results["totals"]["requests"]:
        raise ValueError(f"no requests measured: {results.get('invalid_reasons')}")
    return int(results["totals"]["requests"]), float(results["totals"]["rps"])


ALL_TOOLS = {
    "wrk": Tool("wrk", _wrk, _wrk_parse),
    "ab": Tool("ab -k", _ab, _ab_parse),
    "hey": Tool("hey", _hey, _hey_parse),
    "autocannon": Tool("autocannon", _autocannon, _autocannon_parse),
    "locust": Tool("plain Locust (FastHttpUser, url.py)", _locust, _locust_parse),
    "loadkit-locust": Tool("loadkit load --engine locust", _loadkit("locust"), _loadkit_parse),
    "loadkit-native": Tool("loadkit load --engine native", _loadkit("native"), _loadkit_parse),
}


def available(name: str) -> str | None:
    """Why ``name`` cannot run here (None: it can); installs autocannon into the cache."""
    binary = {"wrk": "wrk", "ab": "ab", "hey": "hey"}.get(name)
    if binary is not None and shutil.which(binary) is None:
        return f"{binary} not installed (Debian: wrk, apache2-utils, hey)"
    if name == "autocannon" and not _autocannon_bin().exists():
        if shutil.which("npm") is None:
            return "npm not installed"
        NPM_CACHE.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            ["npm", "install", "--no-save", "--no-audit", "--no-fund", "--prefix", str(NPM_CACHE),
             "autocannon"],
            capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        if done.returncode != 0 or not _autocannon_bin().exists():
            return f"npm could not install autocannon: {done.stderr.strip()[-200:]}"
    return None


def run_tool(tool: Tool, url: str, connections: int, seconds: int) -> Run | str:
    """One run of ``tool``: its figures, or why it failed (a string)."""
    with tempfile.TemporaryDirectory(prefix="bench-engines-") as tmp:
        folder = Path(tmp)
        command = tool.command(url, connections, seconds, folder)
        before = children_cpu_s()
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=seconds + 120, check=False
            )
        except subprocess.TimeoutExpired:
            return "timed out"
        cpu_s = children_cpu_s() - before
        try:
            requests, rps = tool.parse(done.stdout + done.stderr, folder, seconds)
        except (ValueError, KeyError, OSError) as exc:
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or [""]
            return f"exit {done.returncode}: {tail[0][:160]} ({type(exc).__name__})"
        if requests <= 0:
            return f"exit {done.returncode}: no requests"
        return Run(requests=requests, rps=rps, cpu_us=cpu_s / requests * 1e6)


def shown_command(tool: Tool, connections: int, seconds: int) -> str:
    """The command as it ran, with the target and temp paths shown symbolically."""
    words = tool.command(f"http://127.0.0.1:PORT{STATIC_PATH}", connections, seconds, Path("TMP"))
    words = [w.replace(sys.executable, "python") for w in words]
    words = [w.replace(str(NPM_CACHE), "~/.cache/loadkit-bench/npm") for w in words]
    return " ".join(w.replace(str(URL_SCENARIO.parent.parent) + "/", "") for w in words)


def render(
    results: dict[str, list[Run | str]],
    skipped: dict[str, str],
    args: argparse.Namespace,
    started: datetime,
) -> str:
    """The section: one row per tool (medians over the rounds that worked), ratio to wrk."""
    medians: dict[str, tuple[float, float, int]] = {}
    for name, runs in results.items():
        good = [r for r in runs if isinstance(r, Run)]
        if good:
            medians[name] = (
                statistics.median(r.rps for r in good),
                statistics.median(r.cpu_us for r in good),
                len(good),
            )
    wrk = medians.get("wrk")
    lines = [
        SECTION,
        "",
        f"Measured {started:%Y-%m-%d %H:%M} UTC on {platform.node() or 'this machine'} "
        f"({os.cpu_count()} cores, Python {platform.python_version()}): nginx-light static "
        f"file on loopback, {args.connections} connections, {args.seconds} s per run, "
        f"{args.rounds} interleaved rounds; median of the rounds that worked. CPU: each tool's "
        "whole process tree (RUSAGE_CHILDREN), start-up included.",
        "",
        "    .venv/bin/python bench/bench_engines.py "
        + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in _argv(args).items()),
        "",
        "| tool | req/s | CPU µs/request | req/s ÷ wrk | CPU ÷ wrk | rounds ok | command |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for name, runs in results.items():
        tool = ALL_TOOLS[name]
        command = f"`{shown_command(tool, args.connections, args.seconds)}`"
        if name not in medians:
            why = next((r for r in runs if isinstance(r, str)), "no run")
            lines.append(f"| {tool.name} | failed | | | | 0/{len(runs)} | {command}: {why} |")
            continue
        rps, cpu, ok = medians[name]
        ratio_rps = f"{rps / wrk[0]:.3f}" if wrk else ""
        ratio_cpu = f"{cpu / wrk[1]:.1f}" if wrk else ""
        lines.append(
            f"| {tool.name} | {rps:,.0f} | {cpu:.1f} | {ratio_rps} | {ratio_cpu} | "
            f"{ok}/{len(runs)} | {command} |"
        )
    for name, why in skipped.items():
        lines.append(f"| {ALL_TOOLS[name].name} | skipped | | | | | {why} |")
    return "\n".join(lines) + "\n"


def _argv(args: argparse.Namespace) -> dict[str, object]:
    return {
        "seconds": args.seconds,
        "rounds": args.rounds,
        "connections": args.connections,
        "tools": ",".join(args.tools),
    }


def main(argv: list[str] | None = None) -> int:
    """Run every available tool, interleaved, and print (and with --write, record) the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=10)
    parser.add_argument(
        "--tools", type=lambda s: s.split(","), default=list(TOOLS), help=",".join(TOOLS)
    )
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args(argv)
    unknown = [t for t in args.tools if t not in ALL_TOOLS]
    if unknown:
        parser.error(f"unknown tool(s) {', '.join(unknown)}; known: {', '.join(TOOLS)}")
    skipped = {name: why for name in args.tools if (why := available(name)) is not None}
    for name, why in skipped.items():
        print(f"skip {name}: {why}", flush=True)
    tools = [name for name in args.tools if name not in skipped]
    results: dict[str, list[Run | str]] = {name: [] for name in tools}
    started = datetime.now(UTC)
    with nginx() as base:
        url = base + STATIC_PATH
        for round_no in range(1, args.rounds + 1):
            for name in tools:
                run = run_tool(ALL_TOOLS[name], url, args.connections, args.seconds)
                results[name].append(run)
                shown = (
                    f"{run.rps:,.0f} req/s, {run.cpu_us:.1f} µs CPU/request ({run.requests:,})"
                    if isinstance(run, Run)
                    else f"FAILED: {run}"
                )
                print(f"round {round_no} {name:15} {shown}", flush=True)
                time.sleep(0.5)  # let the previous tool's sockets close
    text = render(results, skipped, args, started)
    print()
    print(text)
    if args.write:
        write_section(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

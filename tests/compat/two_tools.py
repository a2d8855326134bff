"""One locustfile, run at the same time through plain Locust and through ``loadkit load``.

The two are separate runs, so they agree only because every compatibility locustfile does a
bounded, deterministic amount of work against ``answering_server`` and then idles well inside
the run's time. Plain Locust's figures come from its own ``--json-file`` (and its ``--html``
report for its exceptions table: written once at the end, where the CSV table is rewritten every
second and may lag), loadkit's from its results file, read as JSON: the suite compares what each
tool says, not what loadkit's model would make of it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
LOCUSTFILES = Path(__file__).resolve().with_name("locustfiles")
TIMEOUT_S = 90
PLAIN_EXTRA_S = 1
"""Plain Locust's ``-t`` is this much longer than loadkit's ``--duration``: Locust's timer starts
on a loop clock left stale by its imports and was seen firing a whole second early here, while
loadkit's plugin times the run exactly from ``test_start``. Either is well past the work."""
"""Either tool still running after this long is killed: a hang fails the test, not the suite."""


@dataclass(frozen=True)
class Counts:
    """Requests and failures of one endpoint."""

    requests: int
    failures: int


@dataclass(frozen=True)
class LocustException:
    """One row of plain Locust's exceptions table: the same traceback, counted."""

    count: int
    msg: str
    """``str()`` of the exception."""
    traceback: str
    """The stack only: Locust's table has no line with the exception's type."""


@dataclass(frozen=True)
class ToolRun:
    """One tool's run: its exit code, its output (for messages), its endpoint counts."""

    tool: str
    workdir: Path
    """The folder it ran in (its working directory, ``$COMPAT_OUT``)."""
    exit_code: int
    output: str
    endpoints: dict[str, Counts]
    """By loadkit's endpoint name (``"GET /items"``), for both tools."""

    def tail(self, chars: int = 3000) -> str:
        """The end of the output, for an assertion message."""
        return f"--- {self.tool} (exit {self.exit_code}) ---\n{self.output[-chars:]}"


@dataclass(frozen=True)
class PlainRun(ToolRun):
    """Plain Locust's run, with the exceptions it counted (when ``--html`` asked for them)."""

    exceptions: list[LocustException] | None


@dataclass(frozen=True)
class LoadkitRun(ToolRun):
    """``loadkit load``'s run, with its whole results file."""

    results: dict[str, Any]

    @property
    def invalid_codes(self) -> list[str]:
        """The codes of the run's validity reasons (empty for a valid run)."""
        return [str(reason["code"]) for reason in self.results.get("invalid_reasons", [])]


def endpoint_name(method: str, name: str) -> str:
    """loadkit's name for Locust's (method, name): ``"METHOD name"`` (docs/results.md), the
    method not repeated when a custom client already put it in front of the name."""
    return name if name.startswith(f"{method} ") else f"{method} {name}"


def run_both(
    locustfile: str,
    host: str,
    tmp_path: Path,
    *,
    users: int,
    seconds: int,
    extra_args: Sequence[str] = (),
    plain_exceptions: bool = False,
) -> tuple[PlainRun, LoadkitRun]:
    """Run ``locustfiles/<locustfile>`` through both tools at once; wait for both.

    ``extra_args`` are Locust's own arguments (``--tags X``, a locustfile's ``--my-arg``): given
    as they are to plain Locust, after ``--`` to loadkit. Each tool runs in a folder of its own
    (no ``locust.conf`` or ``acceptance.toml`` around), with ``COMPAT_OUT`` naming that folder
    for locustfiles that write what their hooks saw. ``plain_exceptions`` adds ``--html`` so that
    Locust's exceptions table is written too (in its HTML report). ``seconds`` is loadkit's
    ``--duration``; plain Locust gets ``PLAIN_EXTRA_S`` more.
    """
    scenario = LOCUSTFILES / locustfile
    plain_dir, loadkit_dir = tmp_path / "plain", tmp_path / "loadkit"
    plain_dir.mkdir()
    loadkit_dir.mkdir()
    plain_command = [
        sys.executable, "-m", "locust", "-f", str(scenario), "--headless",
        "-u", str(users), "-r", str(users), "-t", f"{seconds + PLAIN_EXTRA_S}s", "--host", host,
        "--json-file", str(plain_dir / "stats"),
    ]  # fmt: skip
    if plain_exceptions:
        plain_command += ["--html", str(plain_dir / "report.html")]
    plain_command += extra_args
    loadkit_command = [
        sys.executable, "-m", "loadkit", "load", "--scenario", str(scenario), "--host", host,
        "--concurrency", str(users), "--duration", str(seconds),
        "--out", str(loadkit_dir / "results.json"), "-q",
    ]  # fmt: skip
    if extra_args:
        loadkit_command += ["--", *extra_args]
    codes, outputs = _wait(_start(plain_command, plain_dir), _start(loadkit_command, loadkit_dir))
    plain = _plain_run(codes[0], outputs[0], plain_dir, plain_exceptions)
    loadkit = _loadkit_run(codes[1], outputs[1], loadkit_dir / "results.json")
    return plain, loadkit


def _start(command: list[str], workdir: Path) -> tuple[subprocess.Popen[bytes], Path]:
    log = workdir / "output.log"
    environment = {**os.environ, "COMPAT_OUT": str(workdir)}
    # The child (and loadkit's own Locust child) must load this checkout's code.
    environment["PYTHONPATH"] = os.pathsep.join(
        [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]
    )
    with log.open("wb") as sink:
        process = subprocess.Popen(
            command, cwd=workdir, env=environment, stdout=sink, stderr=subprocess.STDOUT
        )
    return process, log


def _wait(*started: tuple[subprocess.Popen[bytes], Path]) -> tuple[list[int], list[str]]:
    """Both exit codes and outputs; a tool past the deadline (or left by a failing test) is
    killed (loadkit's Locust child quits when loadkit is gone)."""
    deadline = time.monotonic() + TIMEOUT_S
    codes: list[int] = []
    try:
        for process, _log in started:
            try:
                codes.append(process.wait(timeout=max(0.1, deadline - time.monotonic())))
            except subprocess.TimeoutExpired:
                process.kill()
                codes.append(process.wait())
    finally:
        for process, _log in started:
            if process.poll() is None:
                process.kill()
                process.wait()
    return codes, [log.read_text(errors="replace") for _process, log in started]


def _plain_run(code: int, output: str, workdir: Path, with_exceptions: bool) -> PlainRun:
    stats_file = workdir / "stats.json"
    endpoints: dict[str, Counts] = {}
    if stats_file.is_file():
        for entry in json.loads(stats_file.read_text()):
            endpoints[endpoint_name(str(entry["method"]), str(entry["name"]))] = Counts(
                requests=int(entry["num_requests"]), failures=int(entry["num_failures"])
            )
    report = workdir / "report.html"
    exceptions = _report_exceptions(report) if with_exceptions and report.is_file() else None
    run = PlainRun(
        tool="plain Locust", workdir=workdir, exit_code=code, output=output, endpoints=endpoints,
        exceptions=exceptions,
    )  # fmt: skip
    assert stats_file.is_file(), f"plain Locust wrote no --json-file\n{run.tail()}"
    return run


def _report_exceptions(report: Path) -> list[LocustException]:
    """The exceptions table of Locust's HTML report (the page carries its data as JSON)."""
    text = report.read_text()
    marker = "window.templateArgs = "
    data, _end = json.JSONDecoder().raw_decode(text, text.index(marker) + len(marker))
    return [
        LocustException(
            count=int(row["count"]), msg=str(row["msg"]), traceback=str(row["traceback"])
        )
        for row in data["exceptions_statistics"]
    ]


def _loadkit_run(code: int, output: str, out: Path) -> LoadkitRun:
    results: dict[str, Any] = json.loads(out.read_text()) if out.is_file() else {}
    endpoints = {
        str(e["name"]): Counts(requests=int(e["requests"]), failures=int(e["errors"]))
        for e in results.get("endpoints", [])
    }
    run = LoadkitRun(
        tool="loadkit load", workdir=out.parent, exit_code=code, output=output,
        endpoints=endpoints, results=results,
    )  # fmt: skip
    assert results, f"loadkit load wrote no results file\n{run.tail()}"
    return run


def counts_table(
    left: Mapping[str, Counts],
    right: Mapping[str, Counts],
    titles: tuple[str, str] = ("Locust", "loadkit"),
) -> str:
    """Two sets of counts side by side, one endpoint a line, for an assertion message."""
    lines = [f"{'endpoint':<32} {titles[0] + ' req/fail':>18} {titles[1] + ' req/fail':>18}"]
    for name in sorted(set(left) | set(right)):
        pair = (left.get(name), right.get(name))
        shown = [f"{c.requests}/{c.failures}" if c else "-" for c in pair]
        mark = "" if pair[0] == pair[1] else "   <-- differs"
        lines.append(f"{name:<32} {shown[0]:>18} {shown[1]:>18}{mark}")
    return "\n".join(lines)


def assert_plain_counts(
    plain: PlainRun, expected: Mapping[str, Counts], *, exit_code: int | None = None
) -> None:
    """Plain Locust did exactly the locustfile's bounded work (else the comparison is moot) and
    exited as Locust does for it: ``exit_code``, by default 1 when a request failed, else 0."""
    assert plain.endpoints == expected, (
        "plain Locust did not do the locustfile's planned work\n"
        f"{counts_table(expected, plain.endpoints, ('planned', 'Locust'))}\n{plain.tail()}"
    )
    if exit_code is None:
        exit_code = 1 if any(counts.failures for counts in expected.values()) else 0
    assert plain.exit_code == exit_code, f"expected plain Locust's exit {exit_code}\n{plain.tail()}"


def assert_same_counts(plain: PlainRun, loadkit: LoadkitRun) -> None:
    """Same endpoint names, same requests and failures per endpoint, same totals."""
    assert loadkit.endpoints == plain.endpoints, (
        "Locust and loadkit disagree on what was sent in the same locustfile's run\n"
        f"{counts_table(plain.endpoints, loadkit.endpoints)}\n{loadkit.tail()}"
    )
    totals = loadkit.results["totals"]
    requests = sum(c.requests for c in plain.endpoints.values())
    failures = sum(c.failures for c in plain.endpoints.values())
    assert (totals["requests"], totals["errors"]) == (requests, failures), (
        f"loadkit's totals {totals['requests']}/{totals['errors']} (requests/errors) are not "
        f"Locust's {requests}/{failures}"
    )


def assert_valid(loadkit: LoadkitRun, exit_code: int = 0) -> None:
    """loadkit called the run a valid measurement and exited as plain Locust's run warrants."""
    assert (loadkit.invalid_codes, loadkit.exit_code) == ([], exit_code), (
        f"loadkit: invalid_reasons {loadkit.results.get('invalid_reasons')}, "
        f"exit {loadkit.exit_code} (expected a valid run, exit {exit_code})\n{loadkit.tail()}"
    )

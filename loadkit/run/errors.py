"""``loadkit errors``: the error breakdown of the service's logs (and loadkit's runs) as a report.

Reads the inputs (log files, gzip too, or stdin; results files of smoke and load runs), keeps
the lines of the time window, builds the breakdown (``loadkit.logs``) and renders it in the
format asked for (``loadkit.report.errors``), written to ``out`` when one is given.

No printing here: the CLI shows the report or says where it went, and maps errors to exit codes.
"""

from __future__ import annotations

import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from loadkit.config import load_config
from loadkit.exceptions import InputError
from loadkit.files import write_output
from loadkit.logs.breakdown import BreakdownBuilder, ErrorBreakdown, iso, parse_time_bound
from loadkit.logs.formats import log_format
from loadkit.logs.join import ClientView
from loadkit.logs.scan import STDIN, ScanCounts, sources_from
from loadkit.measure.results_histograms import read_checked_results
from loadkit.report.errors import empty_input_message, parse_format, render_errors


@dataclass(frozen=True)
class ErrorsReport:
    """What ``run_errors`` produced: the breakdown, the rendered report, and where it went."""

    breakdown: ErrorBreakdown
    text: str
    written_to: Path | None
    """``out``, when the report was written there rather than left for the caller to show."""


def run_errors(
    *,
    log_files: Sequence[str],
    results: Sequence[Path],
    since: str | None,
    until: str | None,
    top: int,
    fmt: str,
    out: Path | None,
    config: Path | None = None,
    preset: str | None = None,
    now: float | None = None,
) -> ErrorsReport:
    """Break the errors of ``log_files`` (``-`` for stdin) and ``results`` down, and render it.

    With neither, stdin is read (unless it is a terminal: nothing would ever come). ``since``
    and ``until`` take ISO 8601 times or ages (``15m``, ``2h``, ``1d``, before ``now``). Raises
    ConfigError for a bad option, InputError for an input that cannot be read or holds no
    service log line.

    The log format is ``preset`` (``--preset``) if given, else ``[logs]`` of ``config``, else
    the bundled service's JSON log.
    """
    report_format = parse_format(fmt)
    logs = log_format(load_config(config).logs if config is not None else None, preset=preset)
    now = time.time() if now is None else now
    since_s = parse_time_bound(since, now=now, option="--since") if since else None
    until_s = parse_time_bound(until, now=now, option="--until") if until else None
    names = list(log_files)
    if not names and not results:
        if sys.stdin.isatty():
            raise InputError("no input: give service log files, '-' for stdin, or --results")
        names = [STDIN]
    client = ClientView(read_checked_results(path) for path in results) if results else None
    builder = BreakdownBuilder(since=since_s, until=until_s, client=client)
    counts = ScanCounts()
    for source in sources_from(names, reader=logs.reader):
        builder.add_all(source)
        counts.add(source.counts)
    breakdown = builder.result(top=top, counts=counts, sources=names, log_format=logs.name)
    if names and breakdown.inputs.log_lines == 0:
        raise InputError(empty_input_message(breakdown.inputs))
    # The Markdown and JSON reports say how they were made, as a command to run again.
    command = ["loadkit", "errors", *names]
    for path in results:
        command += ["--results", str(path)]
    options = (("--config", config), ("--preset", preset), ("--since", since), ("--until", until))
    for flag, value in (*options, ("--out", out)):
        command += [flag, str(value)] if value is not None else []
    command += ["--top", str(top), "--format", report_format]
    text = render_errors(
        breakdown, report_format, command=shlex.join(command), generated_at=iso(now)
    )
    if out is not None:
        write_output(out, text.encode(), option="--out")
    return ErrorsReport(breakdown=breakdown, text=text, written_to=out)

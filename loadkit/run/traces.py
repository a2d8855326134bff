"""``loadkit traces``: read span files into where the time went (and the requests behind it).

Reads each file in turn through one ``TraceAssembler`` (a trace's spans may sit in two files of
one service), and builds the breakdown. Used by the CLI and by ``loadkit accept`` on the span
file of the bundled service. No printing here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from loadkit.exceptions import InputError
from loadkit.traces.breakdown import TOP_TRACES, BreakdownBuilder, TracesBreakdown
from loadkit.traces.read import ReadCounts, iter_spans
from loadkit.traces.requests import AssembleCounts, RequestTimes, TraceAssembler


@dataclass(frozen=True)
class SpanReading:
    """The breakdown of some span files, the requests it was made of, and what was read."""

    breakdown: TracesBreakdown
    requests: tuple[RequestTimes, ...]
    """Every request, without its critical path (the tails of the gate's evidence)."""
    read: ReadCounts
    assembled: AssembleCounts
    sources: tuple[Path, ...]


def read_span_files(paths: Sequence[Path], *, top: int = TOP_TRACES) -> SpanReading:
    """Read ``paths`` (span files, gzip too) into a breakdown. Raises ``InputError`` naming the
    file that cannot be read or holds no OTLP-JSON record, or the files when none of them holds
    a SERVER span (no request to break down)."""
    if not paths:
        raise InputError(
            "no span file given: give ENGINES_TRACE_FILE's file or an OTLP-JSON export"
        )
    read = ReadCounts()
    assembler = TraceAssembler()
    builder = BreakdownBuilder(top=top)
    for path in paths:
        for span in iter_spans(path, read):
            for request in assembler.add(span):
                builder.add(request)
    for request in assembler.finish():
        builder.add(request)
    if not builder.requests:
        names = ", ".join(str(p) for p in paths)
        raise InputError(
            f"{names}: no SERVER span (kind 2) among {read.spans} span(s): no request to break "
            "down; was the service traced with its server instrumentation on?"
        )
    return SpanReading(
        breakdown=builder.result(),
        requests=tuple(builder.requests),
        read=read,
        assembled=assembler.counts,
        sources=tuple(paths),
    )

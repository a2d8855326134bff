"""Every encoded histogram of a results file, decoded once up front: a damaged one is refused
naming the file, its key (``endpoints[1].histogram``) and what it measures (an endpoint, a
second of the timeline, a stage).

``read_results`` validates a file's shape but leaves the histograms encoded: most readers need
few of them, and the gate, compare and the HTML report decode theirs when they need them, deep
inside, where a damaged one could only say "histogram data cannot be decoded". The commands
that read results files (report, gate, compare, errors) read them through ``read_checked_results``
instead. Decoding costs about 0.3 ms a histogram (docs/benchmarks.md): about a second for
the timeline of an hour of run.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from pydantic import BaseModel

from loadkit.exceptions import InputError
from loadkit.measure.histogram import LatencyHistogram
from loadkit.measure.results import (
    EncodedHistogram,
    EndpointResults,
    LoadResults,
    LockAuditResults,
    SmokeResults,
    StageResults,
    TimelinePoint,
    read_results,
)


def read_checked_results(path: Path) -> SmokeResults | LoadResults | LockAuditResults:
    """``read_results``, then ``check_histograms``: an ``InputError`` naming the file and the
    histogram when one is damaged."""
    results = read_results(path)
    check_histograms(str(path), results)
    return results


def check_histograms(source: str, results: BaseModel) -> None:
    """Decode every histogram of ``results`` (read from ``source``), so that a damaged one is an
    ``InputError`` naming the file, the key (``timeline[3].histogram``) and what it measures,
    before anything is judged or rendered, rather than an error deep inside that names none."""
    for key, what, histogram in _histograms(results, "", None):
        try:
            LatencyHistogram.decode(histogram)
        except InputError as exc:
            about = f" ({what})" if what else ""
            raise InputError(
                f"{source}: {key}{about}: {exc}; the file is damaged: run again to write it "
                "anew, or restore the file as loadkit wrote it"
            ) from None


def _histograms(
    value: object, key: str, what: str | None
) -> Iterator[tuple[str, str | None, EncodedHistogram]]:
    """Each histogram under ``value`` at ``key``: its key path and what it measures."""
    if isinstance(value, EncodedHistogram):
        yield key, what, value
    elif isinstance(value, BaseModel):
        what = _what(value) or what
        for name, field in value:
            yield from _histograms(field, f"{key}.{name}" if key else name, what)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _histograms(item, f"{key}[{index}]", what)


def _what(part: BaseModel) -> str | None:
    """What a part of a results file measures, as a user finds it in the file."""
    if isinstance(part, EndpointResults):
        return f"endpoint {part.name[:80]!r}"
    if isinstance(part, TimelinePoint):
        return f"second {part.t_s} of the timeline"
    if isinstance(part, StageResults):
        return f"stage {part.index}" + (f" {part.name[:80]!r}" if part.name else "")
    return None

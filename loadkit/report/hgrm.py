"""HdrHistogram's percentile distribution: the points of its plot and the ``.hgrm`` text file.

The ``.hgrm`` file is what HdrHistogram's own plotter (``plotFiles.html``) and its many readers
take: a header, one line per percentile tick (``Value Percentile TotalCount 1/(1-Percentile)``),
and a footer of ``#[...]`` lines. hdrh writes it (``output_percentile_distribution``); loadkit
only corrects the footer's standard deviation, which hdrh 0.10 prints unscaled (µs under a
heading in ms).

Pure: histograms in, points or bytes out. Values are in milliseconds, as everywhere in reports.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePath

from loadkit.measure.histogram import LatencyHistogram
from loadkit.measure.results import EncodedHistogram

TICKS_PER_HALF_DISTANCE = 5
"""Percentile ticks per halving of the distance to 100 % (HdrHistogram's default)."""
US_PER_MS = 1000.0
HGRM_SUFFIX = ".hgrm"
_MEAN_LINE = re.compile(rb"^#\[Mean .*$", re.MULTILINE)
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class PercentilePoint:
    """One tick of the distribution: ``percentile`` % of the values are at or below
    ``value_ms``."""

    percentile: float
    value_ms: float
    total_count: int

    @property
    def inverse_tail(self) -> float:
        """``1/(1-p)``, the plot's x axis (10 = 90 %, 1000 = 99.9 %); infinite at 100 %."""
        tail = 1.0 - self.percentile / 100.0
        return float("inf") if tail <= 0 else 1.0 / tail


def percentile_distribution(
    encoded: EncodedHistogram, *, ticks_per_half_distance: int = TICKS_PER_HALF_DISTANCE
) -> list[PercentilePoint]:
    """The distribution's ticks, from hdrh's percentile iterator (as the ``.hgrm`` lists them);
    empty for an empty histogram."""
    if encoded.count == 0:
        return []
    hdr = LatencyHistogram.decode(encoded).as_hdr()
    return [
        PercentilePoint(
            percentile=item.percentile_level_iterated_to,
            value_ms=item.value_iterated_to / US_PER_MS,
            total_count=item.total_count_to_this_value,
        )
        for item in hdr.get_percentile_iterator(ticks_per_half_distance)
    ]


def render_hgrm(encoded: EncodedHistogram) -> bytes:
    """The ``.hgrm`` text of one histogram, values in milliseconds (hdrh's own writer; the
    footer's mean and standard deviation in milliseconds too, the mean exact)."""
    histogram = LatencyHistogram.decode(encoded)
    hdr = histogram.as_hdr()
    out = io.BytesIO()
    if encoded.count:
        hdr.output_percentile_distribution(out, US_PER_MS, TICKS_PER_HALF_DISTANCE)
    else:
        # hdrh divides by the count for the mean: an empty histogram is a header alone.
        out.write(
            b"%12s %14s %10s %14s\n\n"
            % (b"Value", b"Percentile", b"TotalCount", b"1/(1-Percentile)")
        )
        return out.getvalue()
    mean_ms = encoded.sum_us / encoded.count / US_PER_MS
    stddev_ms = hdr.get_stddev() / US_PER_MS
    digits = hdr.significant_figures
    footer = f"#[Mean    = {mean_ms:12.{digits}f}, StdDeviation   = {stddev_ms:12.{digits}f}]"
    return _MEAN_LINE.sub(footer.encode(), out.getvalue(), count=1)


def hgrm_folder_names(sources: Sequence[str]) -> list[str]:
    """A subfolder name per results file, unique among them so that none overwrites another:
    its stem (``runs/r.json`` → ``r``); files of one stem get as many of their folders' names
    before it as tell them apart (``a/r.json``, ``b/r.json`` → ``a_r``, ``b_r``), then a number
    (the same file given twice: ``r``, ``r-2``)."""
    tails = [PurePath(source).with_suffix("").parts for source in sources]

    def tail(parts: tuple[str, ...], depth: int) -> str:
        return _UNSAFE.sub("_", "_".join(parts[-depth:])).strip("_.")[:100] or "results"

    depths = [1] * len(tails)
    while True:
        names = [tail(parts, depth) for parts, depth in zip(tails, depths, strict=True)]
        clashing = [i for i, name in enumerate(names) if names.count(name) > 1]
        deeper = [i for i in clashing if depths[i] < len(tails[i])]
        if not deeper:
            break
        for i in deeper:
            depths[i] += 1
    unique: list[str] = []
    for name in names:
        chosen, index = name, 2
        while chosen in unique:
            chosen, index = f"{name}-{index}", index + 1
        unique.append(chosen)
    return unique


def hgrm_file_names(endpoints: list[str]) -> dict[str, str]:
    """A file name per endpoint (``GET /api/items/{id}`` → ``GET_api_items_id.hgrm``), unique
    among them; the whole run is ``all.hgrm``."""
    names: dict[str, str] = {}
    taken = {"all" + HGRM_SUFFIX}
    for endpoint in endpoints:
        stem = _UNSAFE.sub("_", endpoint).strip("_.")[:100] or "endpoint"
        name = stem + HGRM_SUFFIX
        index = 2
        while name in taken:
            name = f"{stem}-{index}{HGRM_SUFFIX}"
            index += 1
        taken.add(name)
        names[endpoint] = name
    return names

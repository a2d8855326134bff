"""An HDR histogram of latencies with the exact count, sum, min and max beside it.

The unit is the integer microsecond, 1 µs to 60 s, 3 significant digits (DESIGN.md, measurement
rules). Values outside that range are clamped to it and counted, never dropped. Histograms merge
exactly (``add``) and travel between processes encoded (``encode``/``decode``).
"""

from __future__ import annotations

import itertools
import math
from bisect import bisect_left
from collections import Counter
from collections.abc import Collection, Iterator
from fractions import Fraction
from itertools import accumulate, islice

from hdrh.histogram import HdrHistogram

from loadkit.exceptions import InputError
from loadkit.measure.results import EncodedHistogram, LatencySummary

LOWEST_US = 1
HIGHEST_US = 60_000_000
SIGNIFICANT_DIGITS = 3
PERCENTILES = (50.0, 90.0, 95.0, 99.0, 99.9)
PENDING_LIMIT = 4096
"""Distinct values a histogram counts in one Counter outside its HDR counts; past it the Counter
is set aside whole (no work: a bigger one took 0.3-0.5 ms to grow) for its owner to add in, off
the per-request path (``LatencyRecorder`` does it at each second's close: ``backlog``)."""
PENDING_HARD_LIMIT = 32_768
"""Distinct values set aside past which the per-request path adds them in itself, all at once
(several milliseconds): memory flat even for an owner that never does it (about 3 MB at most)."""
RAW_LIMIT = 256
"""Values a histogram holds as recorded before it folds them into its figures: memory flat, and
a fold short (about 0.05-0.1 ms: it runs inside the generator's per-request call, so it holds an
event loop that long; 4,096 values held it for 1-2.5 ms, docs/benchmarks.md)."""
_FOLD_PHASES = itertools.count()
"""Each new histogram's first batch is shorter by a step of this count (see ``_fold_at``)."""
_FOLD_PHASE_STEP = 97
"""Coprime with RAW_LIMIT: histograms made one after the other fold on different requests."""
SYNC_CHUNK = 128
"""Distinct values added into the HDR counts by one ``sync_part``: about 0.05 ms of hdrh index
arithmetic (all 4,096 at once held the generator for 1-2 ms)."""

SCAN_BLOCK = 1024
"""Counters a percentile scan sums at a time (the scan stops at the block holding the last rank)."""

_TO_NS = (1000.0).__mul__


class LatencyHistogram:
    """An HDR histogram of latencies (µs) with the exact count, sum, min and max beside it."""

    __slots__ = (
        "_clamped",
        "_count",
        "_fold_at",
        "_hist",
        "_max_us",
        "_min_us",
        "_moving",
        "_moving_left",
        "_moving_values",
        "_pending",
        "_raw",
        "_sum_ns",
        "_waiting",
        "_waiting_left",
    )

    def __init__(self) -> None:
        self._hist = HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)
        # Values as recorded, not yet in any figure: ``record_us`` runs once per request in the
        # load generator, so it only appends, and ``_fold`` takes a batch at a time in loops
        # that run in C (min, max, sum, a Counter's update): the same figures, a third the cost.
        self._raw: list[float] = []
        # A request records into several histograms at once (an endpoint's response and service
        # times, its second's), which would fill their batches on the same request and fold
        # them all in one call (0.5 ms at 256 values each): the first batch of each is shorter
        # by its own phase, so their folds fall on different requests.
        self._fold_at = RAW_LIMIT - next(_FOLD_PHASES) * _FOLD_PHASE_STEP % RAW_LIMIT
        # Folded values (integer µs, already clamped) not yet in ``_hist``, with their counts:
        # hdrh's record_value is pure Python and costs more than the rest of a record, so values
        # wait here and go into ``_hist`` in bulk: a chunk at a time when the owner asks
        # (``sync_part``, off the per-request path), the rest before anything reads it.
        self._pending: Counter[int] = Counter()
        # Full pending Counters set aside (PENDING_LIMIT), oldest first, and the one on its way
        # into ``_hist`` a chunk at a time (``sync_part``), its values read by one iterator (a
        # pass over all of them at once, for a total or a min, took 1-2 ms).
        self._waiting: list[Counter[int]] = []
        self._waiting_left = 0
        self._moving: Counter[int] | None = None
        self._moving_values: Iterator[int] = iter(())
        self._moving_left = 0
        self._count = 0
        # The sum is kept in integer nanoseconds so that adding shares in any order gives the
        # same total (float sums depend on the order), hence the same mean after a merge.
        self._sum_ns = 0
        self._min_us: float | None = None
        self._max_us: float | None = None
        self._clamped = 0

    @property
    def count(self) -> int:
        """How many values were recorded."""
        self._fold()
        return self._count

    @property
    def min_us(self) -> float | None:
        """The exact smallest value recorded (None: none yet)."""
        self._fold()
        return self._min_us

    @property
    def max_us(self) -> float | None:
        """The exact largest value recorded (None: none yet)."""
        self._fold()
        return self._max_us

    @property
    def clamped(self) -> int:
        """How many values were outside 1 µs to 60 s (counted at the nearest end)."""
        self._fold()
        return self._clamped

    @property
    def sum_us(self) -> float:
        """The exact sum of the recorded latencies, in microseconds (to the nanosecond)."""
        self._fold()
        return self._sum_ns / 1000.0

    def record_us(self, value_us: float) -> None:
        """Record one latency in microseconds (clamped into range, and counted if it was)."""
        # The generator's hot path (once per request): an append; the figures follow in bulk.
        raw = self._raw
        raw.append(value_us)
        if len(raw) >= self._fold_at:
            self._fold()

    def _fold(self) -> None:
        """Add the values recorded since the last fold to the count, sum, min, max and buckets."""
        raw = self._raw
        if not raw:
            return
        self._raw = []
        self._fold_at = RAW_LIMIT
        low = min(raw)
        if low < 0.0:
            raw = [value if value >= 0.0 else 0.0 for value in raw]
            low = 0.0
        high = max(raw)
        self._count += len(raw)
        self._sum_ns += sum(map(round, map(_TO_NS, raw)))
        if self._min_us is None or low < self._min_us:
            self._min_us = low
        if self._max_us is None or high > self._max_us:
            self._max_us = high
        # hdrh wants ints (a float is accepted silently and mis-bucketed) and drops values out
        # of range by returning False: clamp first so that nothing is lost without a trace.
        # Rounding up keeps every bucket's upper end at or above the true value, so a reported
        # percentile is never below the true one.
        pending = self._pending
        pending.update(map(math.ceil, raw))
        if low < LOWEST_US:
            # Only a value of 0 rounds up below 1 µs (negatives were made 0 above).
            below = pending.pop(0, 0)
            if below:
                pending[LOWEST_US] += below
                self._clamped += below
        if high > HIGHEST_US:
            for value in [value for value in pending if value > HIGHEST_US]:
                above = pending.pop(value)
                pending[HIGHEST_US] += above
                self._clamped += above
        if len(pending) > PENDING_LIMIT:
            self._waiting.append(pending)
            self._waiting_left += len(pending)
            self._pending = Counter()
            if self._waiting_left + self._moving_left > PENDING_HARD_LIMIT:
                self._synced()

    @property
    def backlog(self) -> int:
        """Distinct values waiting outside the HDR counts (folded ones only): past
        ``PENDING_LIMIT``, time for the owner to add them in (``sync_part``)."""
        return len(self._pending) + self._waiting_left + max(self._moving_left, 0)

    def sync_part(self, limit: int = SYNC_CHUNK) -> bool:
        """Fold the values recorded since the last fold and add up to ``limit`` distinct values
        into the HDR counts; whether every value is in them now.

        For a caller that spreads a histogram's bookkeeping over several turns of an event loop
        (closing a second of the timeline): each call costs at most a fold of ``RAW_LIMIT``
        values and ``limit`` values' index arithmetic. Reading the histogram does the rest at
        once, so the figures are the same either way."""
        self._fold()
        moving = self._moving
        if moving is None:
            if self._waiting:
                moving = self._waiting.pop(0)
                self._waiting_left -= len(moving)
            else:
                pending = self._pending
                if len(pending) <= limit:
                    if pending:
                        _add_counts(self._hist, pending.keys(), pending.values())
                        pending.clear()
                    return True
                moving, self._pending = pending, Counter()
            self._moving = moving
            self._moving_values = iter(moving)
            self._moving_left = len(moving)
        values = list(islice(self._moving_values, limit))
        _add_counts(self._hist, values, list(map(moving.__getitem__, values)))
        self._moving_left -= len(values)
        if self._moving_left > 0:
            return False
        self._moving = None
        return not self._waiting and not self._pending

    def _synced(self) -> HdrHistogram:
        """The HDR histogram with every recorded value in it."""
        self._fold()
        moving = self._moving
        if moving is not None:
            values = list(self._moving_values)
            if values:
                _add_counts(self._hist, values, list(map(moving.__getitem__, values)))
            self._moving = None
            self._moving_left = 0
        for waiting in self._waiting:
            _add_counts(self._hist, waiting.keys(), waiting.values())
        self._waiting = []
        self._waiting_left = 0
        pending = self._pending
        if pending:
            _add_counts(self._hist, pending.keys(), pending.values())
            pending.clear()
        return self._hist

    def as_hdr(self) -> HdrHistogram:
        """The HdrHistogram itself, every value in it, for hdrh's own readers (its percentile
        iterator, the ``.hgrm`` writer); read it, never record into it."""
        return self._synced()

    def clone(self) -> LatencyHistogram:
        """A histogram holding the same values (exact; this one is left as it is)."""
        twin = LatencyHistogram()
        twin.add(self)
        return twin

    def add(self, other: LatencyHistogram) -> None:
        """Add another histogram's values to this one (exact)."""
        if other.count == 0:
            return
        self._hist.add(other._synced())
        self._fold()
        self._count += other._count
        self._sum_ns += other._sum_ns
        self._clamped += other._clamped
        low, high = other._min_us, other._max_us
        if low is not None and (self._min_us is None or low < self._min_us):
            self._min_us = low
        if high is not None and (self._max_us is None or high > self._max_us):
            self._max_us = high

    def count_above_us(self, bound_us: float) -> int:
        """How many recorded values are above ``bound_us`` for certain: those whose HDR bucket
        lies wholly above it (a value in the bucket that holds the bound is not counted)."""
        hist = self._synced()
        return sum(
            item.count_at_value_iterated_to
            for item in hist.get_recorded_iterator()
            if hist.get_lowest_equivalent_value(item.value_iterated_to) > bound_us
        )

    def percentiles_us(self, percentiles: tuple[float, ...] = PERCENTILES) -> dict[float, float]:
        """Values at the given percentiles by nearest rank, to HDR precision.

        The value at percentile p is the one at rank ceil(p/100 * count) in sorted order (so at
        least p % of the values are at or below it). It is reported as the upper end of its HDR
        bucket: never below the true value, at most one bucket width (under 0.1 %) plus 1 µs above
        it, and capped at the exact maximum, so no percentile is ever above max.
        """
        if self.count == 0 or self.max_us is None:
            return {}
        hist = self._synced()
        total_count = hist.get_total_count()
        # hdrh's own percentile functions round the rank half up (int(x + 0.5)): with 11 values
        # its P95 is the 10th, which only 91 % of the values are at or below. Nearest rank
        # instead, computed exactly (99.9 % of 1000 is 999, not 999.0000000000001).
        targets = sorted(
            (max(math.ceil(Fraction(str(p)) * total_count / 100), 1), p) for p in percentiles
        )
        values: dict[float, float] = {}
        if total_count == 0:
            return values
        # The counters as plain integers to C code (hdrh keeps them in a ctypes array, whose
        # type code is struct's), without copying them out.
        counts = memoryview(hist.counts).cast("B").cast(hist.counts._type_._type_)
        seen = 0
        next_target = 0
        # One scan for all percentiles, up to the highest bucket in use, a block of counters at
        # a time summed in C (a loop over each counter in Python cost about 1 ms a call).
        top_value = min(max(math.ceil(self.max_us), LOWEST_US), HIGHEST_US)
        top_index = min(hist.get_counts_array_index(top_value) + 1, hist.counts_len)
        for first in range(0, top_index, SCAN_BLOCK):
            block = counts[first : min(first + SCAN_BLOCK, top_index)]
            cumulative = list(accumulate(block, initial=seen))
            seen = cumulative[-1]
            while next_target < len(targets) and seen >= targets[next_target][0]:
                # The first counter at which the running count reaches the rank.
                index = first + bisect_left(cumulative, targets[next_target][0], 1) - 1
                value = hist.get_highest_equivalent_value(hist.get_value_from_index(index))
                values[targets[next_target][1]] = float(value)
                next_target += 1
            if next_target == len(targets):
                break
        top = self.max_us
        bottom = self.min_us if self.min_us is not None else 0.0
        return {p: max(min(values.get(p, top), top), bottom) for p in percentiles}

    def summary(self) -> LatencySummary:
        """Latency in milliseconds: exact count, min, mean, max; percentiles to HDR precision."""
        if self.count == 0:
            return LatencySummary(count=0)
        values = self.percentiles_us()
        # The sum is kept to the ns, min and max as recorded: the mean of values a fraction of
        # a ns apart can land a hair outside [min, max]. Readers refuse that as impossible.
        mean_us = self.sum_us / self.count
        if self.min_us is not None and self.max_us is not None:
            mean_us = min(max(mean_us, self.min_us), self.max_us)
        return LatencySummary(
            count=self.count,
            min=us_to_ms(self.min_us),
            mean=us_to_ms(mean_us),
            p50=us_to_ms(values.get(50.0)),
            p90=us_to_ms(values.get(90.0)),
            p95=us_to_ms(values.get(95.0)),
            p99=us_to_ms(values.get(99.0)),
            p999=us_to_ms(values.get(99.9)),
            max=us_to_ms(self.max_us),
        )

    def encode(self) -> EncodedHistogram:
        """The histogram in its portable, mergeable form."""
        return EncodedHistogram(
            lowest_us=LOWEST_US,
            highest_us=HIGHEST_US,
            significant_digits=SIGNIFICANT_DIGITS,
            count=self.count,
            sum_us=self.sum_us,
            min_us=self.min_us,
            max_us=self.max_us,
            clamped=self.clamped,
            data=self._synced().encode().decode("ascii"),
        )

    @classmethod
    def decode(cls, encoded: EncodedHistogram) -> LatencyHistogram:
        """Rebuild a histogram from ``encode()``; refuses another layout (it would not merge)."""
        layout = (encoded.lowest_us, encoded.highest_us, encoded.significant_digits)
        if layout != (LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS):
            raise InputError(
                f"histogram layout {layout} differs from loadkit's "
                f"{(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)}; it cannot be merged exactly"
            )
        histogram = cls()
        try:
            decoded = HdrHistogram.decode(encoded.data.encode("ascii"))
        except Exception as exc:  # hdrh raises TypeError, zlib.error and its own cookie errors
            why = str(exc) or type(exc).__name__
            raise InputError(f"histogram data cannot be decoded ({why})") from None
        if decoded.get_total_count() != encoded.count:
            raise InputError(
                f"histogram data holds {decoded.get_total_count()} values but says {encoded.count}"
            )
        if encoded.count:
            histogram._hist.add(decoded)
        histogram._count = encoded.count
        histogram._sum_ns = round(encoded.sum_us * 1000.0)
        histogram._min_us = encoded.min_us
        histogram._max_us = encoded.max_us
        histogram._clamped = encoded.clamped
        return histogram


def _add_counts(hist: HdrHistogram, values: Collection[int], counts: Collection[int]) -> None:
    """Add ``counts[i]`` of ``values[i]`` (distinct, not empty, every one in range) to ``hist``,
    as its ``record_value(value, count)`` would one by one, at a fifth of the cost.

    hdrh's record_value is pure Python (1.6 µs, FACTS.md): an open run's spread of response
    times gives thousands of distinct values a second, and this ran in the generator's hot
    path. The index is hdrh's own ``_counts_index_for``, with ``int.bit_length`` for its
    ``64 - _clz(...)``; ``LatencyHistogram``'s tests compare the encodings exactly."""
    array = hist.counts
    half_magnitude = hist.sub_bucket_half_count_magnitude
    half_count = hist.sub_bucket_half_count
    mask = hist.sub_bucket_mask
    unit = hist.unit_magnitude
    base = unit + half_magnitude + 1
    for value, count in zip(values, counts, strict=True):
        bucket = (value | mask).bit_length() - base
        array[((bucket + 1) << half_magnitude) + (value >> (bucket + unit)) - half_count] += count
    hist.total_count += sum(counts)
    hist.min_value = min(hist.min_value, min(values))
    hist.max_value = max(hist.max_value, max(values))


def us_to_ms(value_us: float | None) -> float | None:
    """Microseconds to milliseconds, rounded to the µs (None stays None)."""
    # Microsecond resolution is all the input has; more digits would be noise.
    return None if value_us is None else round(value_us / 1000.0, 3)

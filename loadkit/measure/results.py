"""The results file, ``loadkit.results/2``: what smoke, load and the lock audit hand to the gate.

DESIGN.md, contract 1; the schema is documented in docs/results.md. Files are written atomically
(temp file + rename, so a crash or Ctrl-C never leaves half a file) and validated when read.
``/1`` files are still read (``loadkit.measure.results_v1`` turns them into ``/2``).
"""

from __future__ import annotations

import itertools
import math
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, TypeVar

import orjson
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic_core import ErrorDetails

from loadkit.exceptions import InputError
from loadkit.files import write_file
from loadkit.measure.kinds import NOT_SENT_ENDPOINT, ErrorKind
from loadkit.measure.results_v1 import upgrade_v1
from loadkit.measure.user_exceptions import UserException
from loadkit.measure.validity import (
    LAG_MIN_OVER_BOUND,
    LAG_P99_BOUND_MS,
    LOOP_DELAY_MIN_OVER_BOUND,
    LOOP_DELAY_P90_BOUND_MS,
    InvalidReason,
    add_reason,
    has_code,
    loop_lagged_reason,
    overload_reason,
    timetable_missed_reason,
)
from loadkit.url_credentials import mask_password

SCHEMA_PREFIX = "loadkit.results/"
SCHEMA_VERSION = 2
OLDEST_SCHEMA_VERSION = 1
SCHEMA = f"{SCHEMA_PREFIX}{SCHEMA_VERSION}"

MAX_RESULTS_BYTES = 64 << 20
"""The largest results file read (64 MiB). A day-long run with a thousand endpoints writes a
few MB; a path that never ends (``/dev/zero``, a pipe) must not be read until memory runs out."""

_VERSION = re.compile(r"[0-9]{1,9}", re.ASCII)
"""A schema version as loadkit writes it. ``str.isdigit`` also takes "²", and ``int`` refuses
more than 4,300 digits: neither may reach ``int`` unchecked."""


class _Model(BaseModel):
    # NaN compares False with everything, so a NaN P95 would pass `p95_ms < 1000`; infinity is
    # no latency either. Strings such as "nan" would otherwise be coerced to those floats.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class _OmitsEmptyOptionals(BaseModel):
    """A model whose optional fields added to ``/2`` later are left out of the JSON while empty,
    so that a run that has none of them (every closed-model run) writes the file it always did,
    which earlier ``/2`` readers still read."""

    OMITTED_WHEN_NONE: ClassVar[frozenset[str]] = frozenset()

    @model_serializer(mode="wrap")
    def _omit_empty(self, handler: SerializerFunctionWrapHandler) -> Any:
        data = handler(self)
        if isinstance(data, dict):
            for name in self.OMITTED_WHEN_NONE:
                if name in data and data[name] is None:
                    del data[name]
        return data


class LatencySummary(_Model):
    """Latency in milliseconds, from an HDR histogram (3 significant digits).

    Percentile p is the value at nearest rank ceil(p/100 * count), reported as the upper end of
    its HDR bucket (never below the true value, at most 0.1 % + 1 µs above it), capped at the
    exact maximum, so that no percentile is ever reported above max. ``mean``, ``min`` and
    ``max`` are exact (to the µs shown). All are None when nothing was recorded.
    """

    count: int = Field(ge=0)
    min: float | None = Field(default=None, ge=0)
    mean: float | None = Field(default=None, ge=0)
    p50: float | None = Field(default=None, ge=0)
    p90: float | None = Field(default=None, ge=0)
    p95: float | None = Field(default=None, ge=0)
    p99: float | None = Field(default=None, ge=0)
    p999: float | None = Field(default=None, ge=0)
    max: float | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _possible(self) -> LatencySummary:
        # The gate reads these figures one at a time: a file whose P95 is above its max, or
        # whose P99 is below its P95, was not written by a histogram and must not be judged.
        figures = {name: getattr(self, name) for name in _ORDERED_FIGURES}
        present = [(name, value) for name, value in figures.items() if value is not None]
        if self.count == 0 and (present or self.mean is not None):
            name, value = present[0] if present else ("mean", self.mean)
            raise ValueError(f"count is 0 but {name} is {value:g}: no latency without a request")
        for (low_name, low), (high_name, high) in itertools.pairwise(present):
            if low > high:
                raise ValueError(
                    f"{low_name} ({low:g}) is above {high_name} ({high:g}); "
                    "percentiles never decrease from p50 to max"
                )
        if self.mean is not None:
            low_bound = self.min if self.min is not None else self.mean
            high_bound = self.max if self.max is not None else self.mean
            # One shown unit (1 µs) of slack: loadkit before 2026-12 rounded the mean apart from
            # the exact min and max, and its files keep reading (a real mean is never off by more).
            if not low_bound - MEAN_SLACK_MS <= self.mean <= high_bound + MEAN_SLACK_MS:
                raise ValueError(
                    f"mean ({self.mean:g}) is outside min ({low_bound:g}) .. max ({high_bound:g})"
                )
        return self


_ORDERED_FIGURES = ("min", "p50", "p90", "p95", "p99", "p999", "max")
"""The figures of a latency summary that never decrease, in order."""


class EncodedHistogram(_Model):
    """An HDR histogram of latencies in integer microseconds, in the HdrHistogram V2 encoding.

    Histograms from several processes merge exactly: decode each and add. The exact count, sum,
    min and max ride along because the histogram itself only knows them to bucket precision.
    ``clamped`` counts values outside [lowest_us, highest_us] that were recorded at the bound.
    """

    encoding: Literal["hdrhistogram-v2-base64"] = "hdrhistogram-v2-base64"
    lowest_us: int
    highest_us: int
    significant_digits: int
    count: int = Field(ge=0)
    sum_us: float = Field(ge=0)
    min_us: float | None = Field(default=None, ge=0)
    max_us: float | None = Field(default=None, ge=0)
    clamped: int = Field(default=0, ge=0)
    data: str

    @model_validator(mode="after")
    def _possible(self) -> EncodedHistogram:
        if self.min_us is not None and self.max_us is not None and self.min_us > self.max_us:
            raise ValueError(f"min_us ({self.min_us:g}) is above max_us ({self.max_us:g})")
        if self.clamped > self.count:
            raise ValueError(f"clamped ({self.clamped}) is above count ({self.count})")
        return self


class Totals(_Model):
    """Request counts over the whole run."""

    requests: int = Field(ge=0)
    ok: int = Field(ge=0)
    errors: int = Field(ge=0)
    error_rate: float = Field(ge=0, le=1)
    rps: float = Field(ge=0)

    @model_validator(mode="after")
    def _adds_up(self) -> Totals:
        if self.ok + self.errors != self.requests:
            raise ValueError(
                f"ok ({self.ok}) + errors ({self.errors}) != requests ({self.requests})"
            )
        _check_error_rate(self.error_rate, errors=self.errors, requests=self.requests)
        return self


def _check_error_rate(error_rate: float, *, errors: int, requests: int) -> None:
    """The gate reads ``error_rate`` as written: it must be errors / requests (0 with none)."""
    expected = errors / requests if requests else 0.0
    if not math.isclose(error_rate, expected, rel_tol=1e-9, abs_tol=1e-12):
        raise ValueError(
            f"error_rate ({error_rate:g}) is not errors / requests ({errors} / {requests})"
        )


class EndpointResults(_Model, _OmitsEmptyOptionals):
    """Figures for one endpoint (a route template such as ``POST /api/auth/login``)."""

    OMITTED_WHEN_NONE: ClassVar[frozenset[str]] = frozenset(
        {"service_time_ms", "service_histogram"}
    )

    name: str
    requests: int = Field(ge=0)
    ok: int = Field(ge=0)
    errors: int = Field(ge=0)
    error_rate: float = Field(ge=0, le=1)
    latency_ms: LatencySummary
    histogram: EncodedHistogram
    service_time_ms: LatencySummary | None = Field(
        default=None,
        description="open model: from send to completion (latency_ms counts from the due "
        "time); absent in a closed run, where the two are one",
    )
    service_histogram: EncodedHistogram | None = None

    @model_validator(mode="after")
    def _adds_up(self) -> EndpointResults:
        if self.ok + self.errors != self.requests:
            raise ValueError(
                f"ok ({self.ok}) + errors ({self.errors}) != requests ({self.requests})"
            )
        _check_error_rate(self.error_rate, errors=self.errors, requests=self.requests)
        _check_latency_count(self.latency_ms, self.histogram, requests=self.requests)
        if self.name == NOT_SENT_ENDPOINT and self.service_time_ms is not None:
            raise ValueError(f"{NOT_SENT_ENDPOINT} has no service time: nothing was sent")
        _check_service(self.service_time_ms, self.service_histogram, sent=self.requests, where="")
        if self.service_time_ms is not None:
            _check_service_within_response(self.service_time_ms, self.latency_ms)
        return self


def _check_service(
    service: LatencySummary | None,
    histogram: EncodedHistogram | None,
    *,
    sent: int,
    where: str,
) -> None:
    """A service-time summary and its histogram come together, one value per request sent."""
    if (service is None) != (histogram is None):
        raise ValueError(f"{where}service_time_ms and {where}service_histogram come together")
    if service is None or histogram is None:
        return
    if service.count != sent or histogram.count != sent:
        raise ValueError(
            f"{where}service_time_ms.count ({service.count}) and {where}service_histogram.count "
            f"({histogram.count}) must equal the requests sent ({sent})"
        )


def _check_service_within_response(service: LatencySummary, response: LatencySummary) -> None:
    """Each request's response time includes its service time (it is sent at or after its due
    time), so every figure of one endpoint's service time is at most its response-time twin
    (order statistics keep the order; so do HDR buckets, the cap at max and the floor at min)."""
    for name in (*_ORDERED_FIGURES, "mean"):
        low, high = getattr(service, name), getattr(response, name)
        if low is not None and high is not None and low > high + MEAN_SLACK_MS:
            raise ValueError(
                f"service_time_ms.{name} ({low:g}) is above latency_ms.{name} ({high:g}); a "
                "response time counts from the due time, at or before the send"
            )


def _check_latency_count(
    latency: LatencySummary, histogram: EncodedHistogram, *, requests: int
) -> None:
    """Every request has its latency recorded once: a summary or histogram of another count
    describes other requests (a freeze could hide behind one latency of a fast request)."""
    if latency.count != requests or histogram.count != requests:
        raise ValueError(
            f"latency_ms.count ({latency.count}) and histogram.count ({histogram.count}) must "
            f"equal the requests ({requests})"
        )


class ErrorGroup(_Model):
    """All errors of one kind on one endpoint."""

    endpoint: str
    kind: str
    count: int = Field(ge=1)
    status_codes: dict[str, int] = Field(
        default_factory=dict, description='HTTP status → count; "none" when no response came'
    )
    example_trace_id: str | None = None
    example_message: str | None = None
    trace_ids: list[str] = Field(
        default_factory=list,
        description="optional bounded sample of this group's trace ids, for the join with "
        "server logs (loadkit errors --results); empty when the writer keeps none",
    )
    first_s: float = Field(description="seconds from the run's start to the first occurrence")
    last_s: float

    @model_validator(mode="after")
    def _in_order(self) -> ErrorGroup:
        if self.first_s > self.last_s:
            raise ValueError(f"first_s ({self.first_s:g}) is after last_s ({self.last_s:g})")
        return self


class TimelinePoint(_Model, _OmitsEmptyOptionals):
    """One second of the run: what completed in it."""

    OMITTED_WHEN_NONE: ClassVar[frozenset[str]] = frozenset(
        {"histogram", "errors_by_kind", "service_histogram"}
    )

    t_s: int = Field(ge=0, description="seconds since the run's start")
    completions: int = Field(ge=0)
    errors: int = Field(ge=0)
    p95_ms: float | None = Field(default=None, ge=0)
    histogram: EncodedHistogram | None = Field(
        default=None,
        description="optional: the latencies (headline figure) of the requests that completed in "
        "this second, so that a window of seconds is judged exactly (merged, never averaged); "
        "absent in seconds with no completion, in files written before windows, and past the "
        "writer's size bound (TIMELINE_HISTOGRAM_BUDGET_BYTES)",
    )
    errors_by_kind: dict[str, Annotated[int, Field(ge=1)]] | None = Field(
        default=None,
        description="optional: this second's errors by kind (they add up to errors), what the "
        "HTML report stacks; absent in seconds without errors and in files written before it",
    )
    service_histogram: EncodedHistogram | None = Field(
        default=None,
        description="optional, open model: the service times (from the send) of the requests "
        "that completed in this second, one per completion, as the run's service_histogram; "
        "absent in closed-model runs, in seconds with no completion, in files written before "
        "it, and past the writer's size bound (TIMELINE_HISTOGRAM_BUDGET_BYTES, which it counts "
        "against with histogram)",
    )

    @model_validator(mode="after")
    def _counts_agree(self) -> TimelinePoint:
        if self.histogram is not None and self.histogram.count != self.completions:
            raise ValueError(
                f"second {self.t_s}: histogram count ({self.histogram.count}) != completions "
                f"({self.completions})"
            )
        service = self.service_histogram
        if service is not None and service.count != self.completions:
            raise ValueError(
                f"second {self.t_s}: service_histogram count ({service.count}) != completions "
                f"({self.completions}): every request that completed was sent"
            )
        response = self.histogram
        if service is not None and response is not None:
            # Each response time includes its service time, so their extremes keep the order.
            for name in ("min_us", "max_us"):
                low, high = getattr(service, name), getattr(response, name)
                if low is not None and high is not None and low > high + MEAN_SLACK_MS * 1000:
                    raise ValueError(
                        f"second {self.t_s}: service_histogram.{name} ({low:g}) is above "
                        f"histogram.{name} ({high:g}); a response time counts from the due "
                        "time, at or before the send"
                    )
        if self.errors_by_kind is not None and sum(self.errors_by_kind.values()) != self.errors:
            raise ValueError(
                f"second {self.t_s}: errors_by_kind adds up to "
                f"{sum(self.errors_by_kind.values())}, not errors ({self.errors})"
            )
        return self


TIMELINE_HISTOGRAM_BUDGET_BYTES = 16 << 20
"""The most encoded per-second histogram data one results file carries (16 MiB, a quarter of
``MAX_RESULTS_BYTES``): an hour at a thousand requests a second takes about 5 MB (about twice
that in an open-model run, whose seconds carry their service times too); past the budget, later
seconds carry counts and P95 only, and a window reaching them is refused."""


MEAN_SLACK_MS = 0.001
"""How far a mean may stand outside [min, max]: the µs it was shown to."""
STALL_ROUNDING_S = 3e-6
"""How far a stall's duration may stand from end - start: three values rounded to the µs."""


class Stall(_Model):
    """A span in which no request completed while requests were in flight."""

    start_s: float = Field(description="seconds since the run's start")
    end_s: float
    duration_s: float = Field(ge=0)

    @model_validator(mode="after")
    def _in_order(self) -> Stall:
        if self.start_s > self.end_s:
            raise ValueError(f"start_s ({self.start_s:g}) is after end_s ({self.end_s:g})")
        # Each of the three is rounded to the µs on its own: they agree within that.
        if abs(self.duration_s - (self.end_s - self.start_s)) > STALL_ROUNDING_S:
            raise ValueError(
                f"duration_s ({self.duration_s:g}) is not end_s - start_s "
                f"({self.end_s:g} - {self.start_s:g})"
            )
        return self


class ScheduleResults(_Model, _OmitsEmptyOptionals):
    """An open-model run's timetable and how the generator kept it (absent in a closed run).

    Summed over the generator processes, except where a field says otherwise."""

    OMITTED_WHEN_NONE: ClassVar[frozenset[str]] = frozenset(
        {"loop_delay_ms", "loop_delay_histogram", "loop_delay_bound_ms", "loop_delay_over_bound"}
    )

    target_rate: float = Field(
        ge=0,
        description="iterations per second asked for (with stages: the mean over them, the "
        "planned iterations over the planned duration)",
    )
    achieved_rate: float | None = Field(
        ge=0, description="iterations dispatched per second of the timetable; null if it never ran"
    )
    duration_s: float = Field(
        ge=0, description="how long the timetable ran (the longest of any process)"
    )
    iterations_due: int = Field(ge=0, description="iterations whose due time came in the run")
    iterations_dispatched: int = Field(ge=0, description="of those, started by a user")
    not_sent: int = Field(ge=0, description="of those, still waiting at the end: not_sent errors")
    lag_ms: LatencySummary = Field(
        description="scheduler lag: dispatch time minus due time, for iterations due while a "
        "user was free (the generator's own delay)"
    )
    lag_histogram: EncodedHistogram
    lag_bound_ms: float = Field(
        gt=0, description="the lag P99 above which the run is invalid (generator_overloaded)"
    )
    lag_over_bound: int | None = Field(
        default=None,
        ge=0,
        description="iterations whose lag was above lag_bound_ms; the run is invalid only when "
        "at least 3 were (null in files of a loadkit before it: the P99 alone judges)",
    )
    max_queue: int = Field(
        ge=0, description="the most iterations waiting for a free user at once, in one process"
    )
    drain_s: float = Field(
        ge=0,
        description="how long requests still in flight at the end were waited for (the longest "
        "of any process)",
    )
    max_in_flight: int = Field(ge=0, description="the bound on iterations running at once")
    loop_delay_ms: LatencySummary | None = Field(
        default=None,
        description="how late the generator's event loop woke a probe sleeping a fixed 10 ms, "
        "measured whether or not a user was free (absent: not measured)",
    )
    loop_delay_histogram: EncodedHistogram | None = None
    loop_delay_bound_ms: float | None = Field(
        default=None,
        gt=0,
        description="the loop delay P90 above which the run is invalid (generator_overloaded)",
    )
    loop_delay_over_bound: int | None = Field(
        default=None, ge=0, description="wake-ups later than loop_delay_bound_ms"
    )

    @model_validator(mode="after")
    def _adds_up(self) -> ScheduleResults:
        if self.iterations_dispatched + self.not_sent != self.iterations_due:
            raise ValueError(
                f"iterations_dispatched ({self.iterations_dispatched}) + not_sent "
                f"({self.not_sent}) != iterations_due ({self.iterations_due}): every due "
                "iteration is dispatched or not sent"
            )
        if self.lag_ms.count != self.lag_histogram.count:
            raise ValueError(
                f"lag_ms.count ({self.lag_ms.count}) != lag_histogram.count "
                f"({self.lag_histogram.count})"
            )
        if self.lag_ms.count > self.iterations_dispatched:
            raise ValueError(
                f"lag_ms.count ({self.lag_ms.count}) is above iterations_dispatched "
                f"({self.iterations_dispatched}): the lag is measured once per dispatch at most"
            )
        expected = self.iterations_dispatched / self.duration_s if self.duration_s > 0 else None
        if (expected is None) != (self.achieved_rate is None) or (
            expected is not None
            and self.achieved_rate is not None
            and not math.isclose(self.achieved_rate, expected, rel_tol=1e-9, abs_tol=1e-9)
        ):
            raise ValueError(
                f"achieved_rate ({self.achieved_rate}) is not iterations_dispatched / duration_s "
                f"({self.iterations_dispatched} / {self.duration_s:g})"
            )
        return self

    @property
    def lag_exceeded(self) -> bool:
        """Whether the lag's P99 is above the bound, with at least ``LAG_MIN_OVER_BOUND``
        iterations above it: the timetable was not kept. A file cannot loosen the bound this
        loadkit applies (one without ``lag_over_bound`` is judged by the P99 alone)."""
        p99 = self.lag_ms.p99
        if p99 is None or p99 <= min(self.lag_bound_ms, LAG_P99_BOUND_MS):
            return False
        return self.lag_over_bound is None or self.lag_over_bound >= LAG_MIN_OVER_BOUND

    @property
    def loop_delay_exceeded(self) -> bool:
        """Whether the event loop's delay P90 is above its bound, with at least
        ``LOOP_DELAY_MIN_OVER_BOUND`` wake-ups above it (a file cannot loosen the bound)."""
        delay = self.loop_delay_ms
        if delay is None or delay.p90 is None:
            return False
        bound = min(self.loop_delay_bound_ms or LOOP_DELAY_P90_BOUND_MS, LOOP_DELAY_P90_BOUND_MS)
        if delay.p90 <= bound:
            return False
        over = self.loop_delay_over_bound
        return over is None or over >= LOOP_DELAY_MIN_OVER_BOUND


class StageResults(_Model, _OmitsEmptyOptionals):
    """One load stage's figures, from histograms of the requests that began in it (exact)."""

    OMITTED_WHEN_NONE: ClassVar[frozenset[str]] = frozenset(
        {"service_time_ms", "service_histogram"}
    )

    index: int = Field(ge=1, description="1-based, as a window names it (stage:2)")
    name: str | None = None
    start_s: float = Field(ge=0, description="seconds from the run's start (as planned)")
    end_s: float
    target: float = Field(
        ge=0,
        description="users (closed model) or iterations per second (open) at the stage's end, "
        "ramped linearly from the previous stage's",
    )
    requests: int = Field(ge=0)
    ok: int = Field(ge=0)
    errors: int = Field(ge=0)
    error_rate: float = Field(ge=0, le=1)
    not_sent: int = Field(default=0, ge=0, description="iterations due in it and never sent")
    rps: float = Field(ge=0, description="requests / the stage's duration")
    latency_ms: LatencySummary
    histogram: EncodedHistogram
    service_time_ms: LatencySummary | None = None
    service_histogram: EncodedHistogram | None = None

    @model_validator(mode="after")
    def _adds_up(self) -> StageResults:
        if self.end_s <= self.start_s:
            raise ValueError(f"end_s ({self.end_s:g}) is not after start_s ({self.start_s:g})")
        if self.ok + self.errors != self.requests:
            raise ValueError(
                f"ok ({self.ok}) + errors ({self.errors}) != requests ({self.requests})"
            )
        if self.not_sent > self.errors:
            raise ValueError(f"not_sent ({self.not_sent}) is above errors ({self.errors})")
        _check_error_rate(self.error_rate, errors=self.errors, requests=self.requests)
        _check_latency_count(self.latency_ms, self.histogram, requests=self.requests)
        _check_service(
            self.service_time_ms,
            self.service_histogram,
            sent=self.requests - self.not_sent,
            where="",
        )
        expected = self.requests / (self.end_s - self.start_s)
        if not math.isclose(self.rps, expected, rel_tol=1e-9, abs_tol=1e-9):
            raise ValueError(
                f"rps ({self.rps:g}) is not requests / (end_s - start_s) ({self.requests} / "
                f"{self.end_s - self.start_s:g})"
            )
        return self

    def label(self) -> str:
        """How people see it named: its name, else ``stage N``."""
        return self.name or f"stage {self.index}"


class GeneratorHealth(_Model):
    """Whether the load generator itself could be trusted."""

    overloaded: bool = False
    cpu_warnings: int = Field(default=0, ge=0)
    max_cpu_percent: float | None = None
    notes: list[str] = Field(default_factory=list)


class Stopped(_Model):
    """A run ended on purpose before its planned end: still a valid measurement (DESIGN.md,
    "Stopped runs"), so this is recorded beside the validity reasons, not among them."""

    by: Literal["criterion", "locustfile", "user"] = Field(
        description="criterion: an abort-on-fail criterion was not met; locustfile: the "
        "locustfile (or a plugin it uses) called runner.quit() or runner.stop(), or raised "
        "StopTest; user: a person stopped it from the web UI"
    )
    at_s: float = Field(ge=0, description="seconds from the run's start to the stop")
    criterion: str | None = Field(
        default=None, description="the criterion that stopped it (its label); by criterion only"
    )
    measured: float | None = Field(
        default=None, description="that criterion's measured value when it stopped the run"
    )

    @model_validator(mode="after")
    def _criterion_only_when_by_criterion(self) -> Stopped:
        if self.by == "criterion" and self.criterion is None:
            raise ValueError('a run stopped by "criterion" names the criterion')
        if self.by != "criterion" and (self.criterion, self.measured) != (None, None):
            raise ValueError(f'criterion and measured belong to by "criterion", not {self.by!r}')
        return self


class _Judged(_Model):
    """What every results file says of its own validity: the coded reasons, and what follows.

    Each kind declares ``invalid_reasons`` itself, where it stands in that kind's JSON."""

    if TYPE_CHECKING:
        invalid_reasons: list[InvalidReason]

    @property
    def valid(self) -> bool:
        """False for a run nobody should gate on: it has at least one invalid reason."""
        return not self.invalid_reasons

    @property
    def aborted(self) -> bool:
        """Whether the run was stopped before its planned end, or could not complete (an
        ``aborted`` reason)."""
        return has_code(self.invalid_reasons, "aborted")


class _TrafficResults(_Judged, _OmitsEmptyOptionals):
    """What every run that sends requests reports."""

    OMITTED_WHEN_NONE: ClassVar[frozenset[str]] = frozenset(
        {"service_time_ms", "service_histogram"}
    )

    schema_: str = Field(default=SCHEMA, alias="schema")
    target: str
    started_at: datetime
    duration_s: float = Field(ge=0)
    config: dict[str, Any] = Field(default_factory=dict)
    totals: Totals
    latency_ms: LatencySummary
    histogram: EncodedHistogram
    service_time_ms: LatencySummary | None = None
    service_histogram: EncodedHistogram | None = None
    endpoints: list[EndpointResults] = Field(default_factory=list)
    errors: list[ErrorGroup] = Field(default_factory=list)
    timeline: list[TimelinePoint] = Field(default_factory=list)
    longest_stall: Stall | None = None
    generator: GeneratorHealth = Field(default_factory=GeneratorHealth)
    invalid_reasons: list[InvalidReason] = Field(default_factory=list)
    stopped: Stopped | None = None

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @field_validator("target")
    @classmethod
    def _no_password(cls, value: str) -> str:
        # A results file is shared (CI artifacts, reports): a password in the target URL is
        # never written into it nor shown from it; what is sent keeps it.
        return mask_password(value)

    @model_validator(mode="after")
    def _overload_is_a_reason(self) -> _TrafficResults:
        # generator.overloaded is the measured fact; validity is the reasons alone. Whoever
        # builds or reads results gets the reason with the fact, so the two cannot disagree.
        if self.generator.overloaded and not has_code(self.invalid_reasons, "generator_overloaded"):
            reason = overload_reason(
                cpu_warnings=self.generator.cpu_warnings,
                max_cpu_percent=self.generator.max_cpu_percent,
            )
            self.invalid_reasons = add_reason(self.invalid_reasons, reason)
        return self

    @model_validator(mode="after")
    def _times_are_times(self) -> _TrafficResults:
        # Every span is in seconds from started_at; the reports turn them into clock times. A
        # span past the year 9999 (a stall "ending" 1e308 s in) is no time at all.
        spans: list[tuple[str, float]] = [("duration_s", self.duration_s)]
        if self.longest_stall is not None:
            spans.append(("longest_stall.end_s", self.longest_stall.end_s))
            spans.append(("longest_stall.start_s", self.longest_stall.start_s))
        spans += [(f"errors[{group.kind!r}].last_s", group.last_s) for group in self.errors]
        spans += [(f"errors[{group.kind!r}].first_s", group.first_s) for group in self.errors]
        if self.timeline:
            spans.append(("timeline.t_s", max(point.t_s for point in self.timeline)))
        for name, seconds in spans:
            try:
                self.started_at + timedelta(seconds=seconds)
            except OverflowError:
                raise ValueError(
                    f"{name} ({seconds:g} s after started_at) is past any date"
                ) from None
        return self

    @model_validator(mode="after")
    def _parts_add_up(self) -> _TrafficResults:
        # The gate reads the kinds from the groups and the totals from the totals: a file whose
        # parts disagree would let `errors.<kind> == 0` pass a run full of errors.
        _check_latency_count(self.latency_ms, self.histogram, requests=self.totals.requests)
        grouped = sum(group.count for group in self.errors)
        if grouped != self.totals.errors:
            raise ValueError(
                f"the error groups count {grouped} errors but totals.errors is {self.totals.errors}"
            )
        if self.endpoints:
            requests = sum(e.requests for e in self.endpoints)
            errors = sum(e.errors for e in self.endpoints)
            if (requests, errors) != (self.totals.requests, self.totals.errors):
                raise ValueError(
                    f"the endpoints add up to {requests} requests and {errors} errors but the "
                    f"totals say {self.totals.requests} and {self.totals.errors}"
                )
        # Every request but the ones never sent has a service time (when the run kept them).
        _check_service(
            self.service_time_ms,
            self.service_histogram,
            sent=self.totals.requests - self.not_sent,
            where="",
        )
        if self.service_histogram is None:
            timed = next((p.t_s for p in self.timeline if p.service_histogram is not None), None)
            if timed is not None:
                raise ValueError(
                    f"timeline second {timed} has a service_histogram but the run has none "
                    "(a closed-model run's service times are its response times)"
                )
        return self

    @property
    def not_sent(self) -> int:
        """Open-model iterations never sent (``not_sent`` errors on ``(not sent)``)."""
        return sum(
            group.count
            for group in self.errors
            if group.kind == ErrorKind.NOT_SENT and group.endpoint == NOT_SENT_ENDPOINT
        )


class SmokeCheckResult(_Model):
    """The outcome of one smoke check."""

    name: str
    method: str
    path: str
    expected_status: int
    status: int | None = None
    passed: bool
    latency_ms: float | None = None
    error_kind: str | None = None
    trace_id: str | None = None
    message: str | None = None


class SmokeResults(_TrafficResults):
    """Results of ``loadkit smoke``."""

    kind: Literal["smoke"] = "smoke"
    checks: list[SmokeCheckResult] = Field(default_factory=list)

    @property
    def checks_passed(self) -> int:
        """How many checks got what they expected."""
        return sum(1 for c in self.checks if c.passed)


class LoadResults(_TrafficResults):
    """Results of ``loadkit load`` (single process or merged from distributed workers)."""

    OMITTED_WHEN_NONE: ClassVar[frozenset[str]] = frozenset(
        {"service_time_ms", "service_histogram", "schedule", "stages", "span_start_s"}
    )

    kind: Literal["load"] = "load"
    exceptions: list[UserException] = Field(
        default_factory=list,
        description="exceptions raised by user code (a locustfile's tasks), by type and where, "
        "most frequent first; empty when none (and in files written before they were counted)",
    )
    locust_exit_code: int | None = Field(
        default=None,
        ge=0,
        description="the exit code Locust gave this run (the locustfile's "
        "environment.process_exit_code; 2 after an unhandled exception in Locust's event "
        "handlers or greenlets; else 0), filled in by `loadkit load` for every run Locust ended "
        "on its own; None when not known (interrupted, past its time bound, plain Locust with "
        "the plugin, a web UI test)",
    )
    schedule: ScheduleResults | None = Field(
        default=None, description="open model only: the timetable and how it was kept"
    )
    stages: list[StageResults] | None = Field(
        default=None, description="runs with stages only: one summary per stage, in order"
    )
    span_start_s: float | None = Field(
        default=None,
        ge=0,
        description="optional: seconds from the run's start (the timeline's second 0) to the "
        "start of the span duration_s counts and the stages' start_s/end_s count from (an open "
        "run's timetable start, once its users are spawned); absent when they coincide and in "
        "files written before it",
    )

    @model_validator(mode="after")
    def _schedule_adds_up(self) -> LoadResults:
        schedule = self.schedule
        if schedule is not None and schedule.not_sent != self.not_sent:
            raise ValueError(
                f"schedule.not_sent ({schedule.not_sent}) != the not_sent errors ({self.not_sent})"
            )
        if schedule is None and self.not_sent:
            raise ValueError(f"{self.not_sent} not_sent errors in a run without a schedule")
        return self

    @model_validator(mode="after")
    def _stages_add_up(self) -> LoadResults:
        if not self.stages:
            return self
        for position, stage in enumerate(self.stages):
            if stage.index != position + 1:
                raise ValueError(f"stages[{position}].index is {stage.index}, not {position + 1}")
            if position and not math.isclose(
                stage.start_s, self.stages[position - 1].end_s, abs_tol=1e-6
            ):
                raise ValueError(
                    f"stages[{position}].start_s ({stage.start_s:g}) is not the previous "
                    f"stage's end_s ({self.stages[position - 1].end_s:g})"
                )
        sums = tuple(
            sum(getattr(stage, name) for stage in self.stages)
            for name in ("requests", "errors", "not_sent")
        )
        expected = (self.totals.requests, self.totals.errors, self.not_sent)
        if sums != expected:
            raise ValueError(
                f"the stages add up to {sums[0]} requests, {sums[1]} errors and {sums[2]} "
                f"not sent, but the run has {expected[0]}, {expected[1]} and {expected[2]}"
            )
        return self

    @model_validator(mode="after")
    def _lag_is_a_reason(self) -> LoadResults:
        # As with the CPU: the lag is the measured fact, validity the reasons alone.
        schedule = self.schedule
        if schedule is not None and schedule.lag_exceeded and schedule.lag_ms.p99 is not None:
            reason = timetable_missed_reason(
                lag_p99_ms=schedule.lag_ms.p99,
                bound_ms=min(schedule.lag_bound_ms, LAG_P99_BOUND_MS),
            )
            self.invalid_reasons = add_reason(self.invalid_reasons, reason)
        if (
            schedule is not None
            and schedule.loop_delay_exceeded
            and schedule.loop_delay_ms is not None
            and schedule.loop_delay_ms.p90 is not None
        ):
            reason = loop_lagged_reason(
                delay_p90_ms=schedule.loop_delay_ms.p90,
                bound_ms=min(
                    schedule.loop_delay_bound_ms or LOOP_DELAY_P90_BOUND_MS,
                    LOOP_DELAY_P90_BOUND_MS,
                ),
            )
            self.invalid_reasons = add_reason(self.invalid_reasons, reason)
        return self

    @model_validator(mode="after")
    def _exceptions_in_time(self) -> LoadResults:
        for group in self.exceptions:
            if group.first_s is None:
                continue
            try:
                self.started_at + timedelta(seconds=group.first_s)
            except OverflowError:
                raise ValueError(
                    f"exceptions[{group.type!r}].first_s ({group.first_s:g} s after started_at) "
                    "is past any date"
                ) from None
        return self

    @property
    def exception_count(self) -> int:
        """Exceptions raised by user code during the run, in every group."""
        return sum(group.count for group in self.exceptions)


class LockFinding(_Model):
    """One lock-safety finding."""

    path: str
    line: int = Field(ge=1)
    col: int = Field(ge=0)
    code: str
    message: str
    lock_line: int | None = None


class LockAuditResults(_Judged):
    """Results of ``loadkit audit-locks``."""

    schema_: str = Field(default=SCHEMA, alias="schema")
    kind: Literal["lock_audit"] = "lock_audit"
    target: str = Field(description="the paths audited, joined by spaces")
    started_at: datetime
    duration_s: float = Field(ge=0)
    config: dict[str, Any] = Field(default_factory=dict)
    files_checked: int = Field(ge=0)
    suppressed: int = Field(default=0, ge=0)
    violations: int = Field(ge=0)
    findings: list[LockFinding] = Field(default_factory=list)
    invalid_reasons: list[InvalidReason] = Field(default_factory=list)

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


Results = Annotated[SmokeResults | LoadResults | LockAuditResults, Field(discriminator="kind")]
_RESULTS_ADAPTER: TypeAdapter[SmokeResults | LoadResults | LockAuditResults] = TypeAdapter(Results)
ResultsT = TypeVar("ResultsT", SmokeResults, LoadResults, LockAuditResults)


def with_reason(results: ResultsT, reason: InvalidReason) -> ResultsT:
    """A copy of ``results`` that is invalid for ``reason``; ``results`` itself when a reason of
    that code is already there (idempotent: the first detail is kept)."""
    if has_code(results.invalid_reasons, reason.code):
        return results
    return results.model_copy(
        update={"invalid_reasons": add_reason(results.invalid_reasons, reason)}
    )


def dump_results(results: SmokeResults | LoadResults | LockAuditResults) -> bytes:
    """Serialise results to the JSON of the results file (indented, UTF-8)."""
    data = results.model_dump(mode="json", by_alias=True)
    return orjson.dumps(data, option=orjson.OPT_INDENT_2) + b"\n"


def write_results(path: Path, results: SmokeResults | LoadResults | LockAuditResults) -> Path:
    """Write a results file atomically (``loadkit.files.write_file``: a temp file in the same
    folder, then a rename that replaces a symlink at ``path`` rather than writing through it)."""
    return write_file(path, dump_results(results))


def parse_results(data: object, *, source: str) -> SmokeResults | LoadResults | LockAuditResults:
    """Validate a decoded results document; ``source`` names it in error messages."""
    if not isinstance(data, dict) or not isinstance(data.get("schema"), str):
        raise InputError(f'{source}: not a loadkit results file (no "schema" field)')
    schema = data["schema"]
    if not schema.startswith(SCHEMA_PREFIX):
        raise InputError(f"{source}: not a loadkit results file (schema {schema[:80]!r})")
    version_text = schema.removeprefix(SCHEMA_PREFIX)
    if not _VERSION.fullmatch(version_text):
        raise InputError(f"{source}: unknown results schema {schema[:80]!r}")
    version = int(version_text)
    if version > SCHEMA_VERSION:
        raise InputError(
            f"{source}: written by a newer loadkit (schema {schema!r}; this one reads "
            f"{SCHEMA!r}); upgrade loadkit to read it"
        )
    if version < OLDEST_SCHEMA_VERSION:
        raise InputError(f"{source}: results schema {schema!r} is no longer supported")
    if version == 1:
        data = {**upgrade_v1(data, source=source), "schema": SCHEMA}
    try:
        return _RESULTS_ADAPTER.validate_python(data)
    except ValidationError as exc:
        problems = "; ".join(_problem(err, data) for err in exc.errors()[:5])
        raise InputError(f"{source}: invalid loadkit results file: {problems}") from None


def _problem(error: ErrorDetails, data: dict[str, Any]) -> str:
    """One validation error as ``where: what (got value)``, an endpoint named by its name."""
    loc = list(error["loc"])
    if loc and loc[0] in {"load", "smoke", "lock_audit"}:
        loc = loc[1:]  # the discriminator's tag: the kind, already in the file
    where = ".".join(str(part) for part in loc)
    if len(loc) >= 2 and loc[0] == "endpoints" and isinstance(loc[1], int):
        endpoints = data.get("endpoints")
        entry = (
            endpoints[loc[1]] if isinstance(endpoints, list) and loc[1] < len(endpoints) else None
        )
        name = entry.get("name") if isinstance(entry, dict) else None
        if isinstance(name, str):
            where = f"endpoints[{name[:80]!r}]" + "".join(f".{part}" for part in loc[2:])
    message = error["msg"].removeprefix("Value error, ")
    value = error.get("input")
    shown = isinstance(value, bool | int | float) or (isinstance(value, str) and len(value) <= 80)
    # A value error names its values itself; a missing field has none.
    if shown and error["type"] not in {"missing", "value_error"}:
        message = f"{message} (got {value!r})"
    # A check of the whole file names its fields in the message itself.
    return f"{where}: {message}" if where else message


def read_results(path: Path) -> SmokeResults | LoadResults | LockAuditResults:
    """Read and validate a results file (at most ``MAX_RESULTS_BYTES``)."""
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_RESULTS_BYTES + 1)
    except FileNotFoundError:
        raise InputError(f"{path}: no such results file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, not a results file") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if len(raw) > MAX_RESULTS_BYTES:
        raise InputError(
            f"{path}: larger than {MAX_RESULTS_BYTES >> 20} MiB, not a loadkit results file"
        )
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InputError(f"{path}: not a loadkit results file (not JSON: {exc})") from None
    return parse_results(data, source=str(path))

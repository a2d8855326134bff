"""A recorder's share: what one process recorded, as data another process merges exactly.

A distributed worker ships its share with each of Locust's reports (msgpack) and the master
merges it (``LatencyRecorder.merge_share``). It crosses the boundary as plain data
(``to_wire``/``from_wire``); the histograms travel in the HdrHistogram V2 encoding.

Workers and master must run the same loadkit: a share of another ``version`` is refused with a
message saying so, rather than merged into numbers nobody can trust.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from loadkit.exceptions import InputError
from loadkit.measure.results import EncodedHistogram

SHARE_VERSION = 6
"""Bumped whenever the share's form or meaning changes (version 1 was an untyped dict; version
2 came without the worker's user-code exceptions, which a version-3 master must not read as
"none"; version 3 without service times, stages, the open model's schedule and the stop of a
worker's locustfile, which a version-4 master must not read as "the same as the response time",
"no stages", "a closed run" and "not stopped"; version 4 without each second's errors by kind,
which a version-5 master must not read as "no errors of any kind"; version 5 without each
second's service times, which a version-6 master must not read as "the same as the response
times")."""

Span = tuple[float, float]


class _Share(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EndpointShare(_Share):
    """One endpoint's counts and latencies (``loadkit.measure.tally.Tally``): the response times
    of the requests sent; their service times when any had one apart (else None: the same); the
    waits of open-model iterations never sent (``not_sent`` of the ``errors``)."""

    ok: int = Field(ge=0)
    errors: int = Field(ge=0)
    histogram: EncodedHistogram
    service_histogram: EncodedHistogram | None = None
    not_sent: int = Field(default=0, ge=0)
    unsent_histogram: EncodedHistogram | None = None


class StageShare(EndpointShare):
    """One load stage's counts and latencies (``index`` 0-based into the run's stages)."""

    index: int = Field(ge=0)


class ScheduleShare(_Share):
    """One process's open-model timetable figures so far (``ScheduleStats``): cumulative, so a
    master keeps the latest share of each source rather than adding them up."""

    target_rate: float = Field(ge=0)
    duration_s: float = Field(ge=0)
    iterations_due: int = Field(ge=0)
    iterations_dispatched: int = Field(ge=0)
    lag: EncodedHistogram
    max_queue: int = Field(ge=0)
    drain_s: float = Field(ge=0)
    max_in_flight: int = Field(ge=0)
    loop_delay: EncodedHistogram | None = None
    """The loop probe's delays (None: none measured yet)."""


class ErrorGroupShare(_Share):
    """One (endpoint, kind) error group; ``first``/``last`` on the run clock (absolute)."""

    endpoint: str
    kind: str
    count: int = Field(ge=1)
    status_codes: dict[str, int]
    example_trace_id: str | None = None
    example_message: str | None = None
    trace_ids: list[str] = Field(default_factory=list)
    first: float
    last: float


class SecondShare(_Share):
    """One second of the timeline, counted from the share's own ``start``."""

    t: int = Field(ge=0)
    completions: int = Field(ge=0)
    errors: int = Field(ge=0)
    histograms: list[EncodedHistogram]
    error_kinds: dict[str, int] = Field(
        default_factory=dict, description="errors by kind (they add up to errors)"
    )
    service_histograms: list[EncodedHistogram] | None = Field(
        default=None,
        description="open model: the second's service times (one histogram per part, as "
        "histograms); None: they are its response times",
    )


class WorkerShare(_Share):
    """Everything one recorder holds (or gathered since its last drain)."""

    version: int = SHARE_VERSION
    source: str = Field(description="the process that recorded it (a worker's client id)")
    start: float = Field(description="the recorder's start on the run clock")
    end: float | None = Field(description="its finish, None while still running")
    endpoints: dict[str, EndpointShare]
    errors: list[ErrorGroupShare]
    seconds: list[SecondShare]
    quiet: dict[str, list[Span]] = Field(description="spans with no completion, by source")
    stalled: dict[str, list[Span]] = Field(description="quiet spans with work pending, by source")
    sources: list[str] = Field(description="the sources that recorded requests")
    stages: list[StageShare] = Field(default_factory=list)
    schedules: dict[str, ScheduleShare] = Field(
        default_factory=dict, description="open model: the latest timetable figures, by source"
    )

    def to_wire(self) -> dict[str, Any]:
        """Plain data (msgpack- and JSON-safe) for ``from_wire`` in another process."""
        return self.model_dump()

    @classmethod
    def from_wire(cls, data: object) -> WorkerShare:
        """Validate a share received from another process; refuses another version."""
        version = data.get("version") if isinstance(data, dict) else None
        if version != SHARE_VERSION:
            raise InputError(
                f"a worker sent a loadkit share of version {version!r}, this loadkit reads "
                f"version {SHARE_VERSION}: run the same loadkit on the master and every worker"
            )
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or '(top level)'}: {err['msg']}"
                for err in exc.errors()[:3]
            )
            raise InputError(f"a worker sent an invalid loadkit share: {problems}") from None

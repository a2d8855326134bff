"""The results file, ``loadkit.results/2``: what smoke, load and the lock audit hand to the gate.

DESIGN.md, contract 1; the schema is documented in docs/results.md. Files are written atomically
(temp file + rename, so a crash or Ctrl-C never leaves half a file) and validated when read.
``/1`` files are still read (``loadkit.measure.results_v1`` turns them into ``/2``).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import orjson
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from loadkit.exceptions import InputError
from loadkit.files import write_file
from loadkit.measure.results_v1 import upgrade_v1
from loadkit.measure.validity import InvalidReason, add_reason, has_code, overload_reason

SCHEMA_PREFIX = "loadkit.results/"
SCHEMA_VERSION = 2
OLDEST_SCHEMA_VERSION = 1
SCHEMA = f"{SCHEMA_PREFIX}{SCHEMA_VERSION}"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LatencySummary(_Model):
    """Latency in milliseconds, from an HDR histogram (3 significant digits).

    Percentile p is the value at nearest rank ceil(p/100 * count), reported as the upper end of
    its HDR bucket (never below the true value, at most 0.1 % + 1 µs above it), capped at the
    exact maximum, so that no percentile is ever reported above max. ``mean``, ``min`` and
    ``max`` are exact (to the µs shown). All are None when nothing was recorded.
    """

    count: int = Field(ge=0)
    min: float | None = None
    mean: float | None = None
    p50: float | None = None
    p90: float | None = None
    p95: float | None = None
    p99: float | None = None
    p999: float | None = None
    max: float | None = None


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
    min_us: float | None = None
    max_us: float | None = None
    clamped: int = Field(default=0, ge=0)
    data: str


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
        return self


class EndpointResults(_Model):
    """Figures for one endpoint (a route template such as ``POST /api/auth/login``)."""

    name: str
    requests: int = Field(ge=0)
    ok: int = Field(ge=0)
    errors: int = Field(ge=0)
    error_rate: float = Field(ge=0, le=1)
    latency_ms: LatencySummary
    histogram: EncodedHistogram


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


class TimelinePoint(_Model):
    """One second of the run: what completed in it."""

    t_s: int = Field(ge=0, description="seconds since the run's start")
    completions: int = Field(ge=0)
    errors: int = Field(ge=0)
    p95_ms: float | None = None


class Stall(_Model):
    """A span in which no request completed while requests were in flight."""

    start_s: float = Field(description="seconds since the run's start")
    end_s: float
    duration_s: float = Field(ge=0)


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
        "locustfile called runner.quit(); user: a person stopped it from the web UI"
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


class _TrafficResults(_Model):
    """What every run that sends requests reports."""

    schema_: str = Field(default=SCHEMA, alias="schema")
    target: str
    started_at: datetime
    duration_s: float = Field(ge=0)
    config: dict[str, Any] = Field(default_factory=dict)
    totals: Totals
    latency_ms: LatencySummary
    histogram: EncodedHistogram
    endpoints: list[EndpointResults] = Field(default_factory=list)
    errors: list[ErrorGroup] = Field(default_factory=list)
    timeline: list[TimelinePoint] = Field(default_factory=list)
    longest_stall: Stall | None = None
    generator: GeneratorHealth = Field(default_factory=GeneratorHealth)
    invalid_reasons: list[InvalidReason] = Field(default_factory=list)
    stopped: Stopped | None = None

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

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
    def _parts_add_up(self) -> _TrafficResults:
        # The gate reads the kinds from the groups and the totals from the totals: a file whose
        # parts disagree would let `errors.<kind> == 0` pass a run full of errors.
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
        return self

    @property
    def valid(self) -> bool:
        """False for a run nobody should gate on: it has at least one invalid reason."""
        return not self.invalid_reasons

    @property
    def aborted(self) -> bool:
        """Whether the run was stopped before its planned end (an ``aborted`` reason)."""
        return has_code(self.invalid_reasons, "aborted")


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

    kind: Literal["load"] = "load"


class LockFinding(_Model):
    """One lock-safety finding."""

    path: str
    line: int = Field(ge=1)
    col: int = Field(ge=0)
    code: str
    message: str
    lock_line: int | None = None


class LockAuditResults(_Model):
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

    @property
    def valid(self) -> bool:
        """False when the audit did not complete: it has at least one invalid reason."""
        return not self.invalid_reasons

    @property
    def aborted(self) -> bool:
        """Whether the audit could not complete (an ``aborted`` reason)."""
        return has_code(self.invalid_reasons, "aborted")


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
        raise InputError(f"{source}: not a loadkit results file (schema {schema!r})")
    version_text = schema.removeprefix(SCHEMA_PREFIX)
    if not version_text.isdigit():
        raise InputError(f"{source}: unknown results schema {schema!r}")
    if int(version_text) > SCHEMA_VERSION:
        raise InputError(
            f"{source}: written by a newer loadkit (schema {schema!r}; this one reads "
            f"{SCHEMA!r}); upgrade loadkit to read it"
        )
    if int(version_text) < OLDEST_SCHEMA_VERSION:
        raise InputError(f"{source}: results schema {schema!r} is no longer supported")
    if int(version_text) == 1:
        data = {**upgrade_v1(data, source=source), "schema": SCHEMA}
    try:
        return _RESULTS_ADAPTER.validate_python(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(top level)'}: {err['msg']}"
            for err in exc.errors()[:5]
        )
        raise InputError(f"{source}: invalid loadkit results file: {problems}") from None


def read_results(path: Path) -> SmokeResults | LoadResults | LockAuditResults:
    """Read and validate a results file."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: no such results file") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InputError(f"{path}: not a loadkit results file (not JSON: {exc})") from None
    return parse_results(data, source=str(path))

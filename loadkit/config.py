"""acceptance.toml: the criteria, the smoke checks, the load profiles, the lock-audit scope.

DESIGN.md, contract 4. Loaded with validation: an unknown key, a wrong type or an impossible value
is a ``ConfigError`` that names the file, the key and what was expected.
"""

from __future__ import annotations

import math
import re
import sys
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, Self, TypeVar

import jmespath
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.functional_serializers import PlainSerializer
from pydantic.functional_validators import AfterValidator, PlainValidator
from pydantic_core import ErrorDetails, PydanticCustomError

from loadkit.exceptions import ConfigError
from loadkit.stages import Stage, check_stages, total_duration_s
from loadkit.windows import parse_window

HttpMethod = Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
Operator = Literal["<", "<=", ">", ">=", "==", "!="]
ResultsKind = Literal["smoke", "load", "lock_audit"]
_T = TypeVar("_T")


MAX_CONFIG_BYTES = 1 << 20
"""The largest acceptance file read (1 MiB): a real one is a few KiB; a path that never ends
(``/dev/zero``, a pipe) must not be read until memory runs out."""


class _Section(BaseModel):
    # Strict: TOML has types, so a value of the wrong one is a mistake to name, not to coerce
    # (`threshold = "1000"`, `auth = "yes"`, `concurrency = 10.5`). An int is still a float.
    # TOML also has nan and inf: no threshold, duration, rate or timeout means either.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


TomlArray = Annotated[tuple[_T, ...], Field(strict=False)]
"""A TOML array, kept as a tuple: strict mode would refuse the list TOML gives (its items are
still validated strictly by their own type)."""


# --- criteria ------------------------------------------------------------------------------------

LOAD_METRICS: frozenset[str] = frozenset(
    {
        "requests",
        "errors",
        "error_rate",
        "rps",
        "p50_ms",
        "p90_ms",
        "p95_ms",
        "p99_ms",
        "p999_ms",
        "max_ms",
        "mean_ms",
        "service_p50_ms",
        "service_p90_ms",
        "service_p95_ms",
        "service_p99_ms",
        "http2_internal_errors",
        "max_stall_s",
        "exceptions",
        "locust_exit_code",
    }
)
"""Metrics a criterion can name for load results (also ``errors.<kind>``: the count of one kind).
The latency metrics read the response time (from the due time in an open-model run);
``service_*`` the service time (from the send), which is the response time in a closed run."""

ENDPOINT_METRICS: frozenset[str] = frozenset(
    {"requests", "errors", "error_rate", "p50_ms", "p90_ms", "p95_ms", "p99_ms", "p999_ms"}
    | {"max_ms", "service_p50_ms", "service_p90_ms", "service_p95_ms", "service_p99_ms"}
    | {"http2_internal_errors"}
)
"""Load metrics that can also be asked of one endpoint (``endpoint = "POST /api/auth/login"``)."""

SMOKE_METRICS: frozenset[str] = frozenset({"checks_failed", "checks_passed", "pass_ratio"})
LOCK_AUDIT_METRICS: frozenset[str] = frozenset({"lock_violations"})

FRACTION_METRICS: frozenset[str] = frozenset({"error_rate", "pass_ratio"})
"""Metrics that are fractions from 0 to 1 (not percentages)."""

ABORT_METRICS: frozenset[str] = frozenset(
    {"errors", "error_rate", "http2_internal_errors"}
    | {"p50_ms", "p90_ms", "p95_ms", "p99_ms", "p999_ms", "max_ms", "mean_ms"}
    | {"service_p50_ms", "service_p90_ms", "service_p95_ms", "service_p99_ms"}
)
"""Load metrics an ``abort_on_fail`` criterion can watch during the run (also ``errors.<kind>``):
those the live recorder holds exactly. Not the rate, the stall or Locust's verdict, which only
the end of the run settles, nor the request count, which measures the load, not the service.
Counts (``errors``, ``errors.<kind>``, ``http2_internal_errors``) only grow during a run: they
abort with an upper bound only (``<``, ``<=``), whose failure no later second can undo."""

DEFAULT_ABORT_DELAY_S = 10.0
"""How long an abort-on-fail criterion waits before it is first judged, when it says no
``delay_s``. The first seconds' figures are few and skewed: a P95 of a second's dozen requests is
nearly their maximum, one failed request among the first ten is a 10 % error rate, connections
and caches are still cold, users still spawning. Ten seconds hold hundreds of requests at modest
rates and cover a short ramp-up, and a failing 60 s CI run still stops with most of it saved.
Write ``delay_s = 0`` to judge from the first second (k6's ``delayAbortEval`` is empty by
default, and its users are told to set it)."""

METRICS_BY_KIND: dict[ResultsKind, frozenset[str]] = {
    "smoke": SMOKE_METRICS,
    "load": LOAD_METRICS,
    "lock_audit": LOCK_AUDIT_METRICS,
}


def check_metric(value: str, known: Mapping[Any, frozenset[str]], *, what: str = "") -> str:
    """``value`` as ``<kind>.<metric>`` naming a metric of ``known`` (or ``load.errors.<kind>``);
    a ValueError naming what is known otherwise. ``what``: the criterion's sort, for the error
    (``regression``)."""
    kind, _, metric = value.partition(".")
    if kind not in known:
        raise ValueError(
            f'metric {value!r} must start with one of {sorted(known)} and a dot, e.g. "load.p95_ms"'
        )
    if kind == "load" and metric.startswith("errors.") and len(metric) > len("errors."):
        return value
    if metric not in known[kind]:
        names = ", ".join(sorted(known[kind]))
        sort = f"{what} " if what else ""
        raise ValueError(f"unknown {kind} {sort}metric {metric!r}; known: {names}")
    return value


class _OnAMetric(_Section):
    """What every criterion has: the metric it judges and, for load metrics, an endpoint."""

    metric: str = Field(description='"<kind>.<metric>": "load.p95_ms", "load.errors.timeout"')
    name: str | None = None
    endpoint: str | None = None
    description: str | None = None

    @model_validator(mode="after")
    def _endpoint_applies(self) -> Self:
        if self.endpoint is not None and (
            self.results_kind != "load" or self.metric_name not in ENDPOINT_METRICS
        ):
            raise ValueError(
                f"endpoint applies only to load metrics {sorted(ENDPOINT_METRICS)}, "
                f"not to {self.metric!r}"
            )
        return self

    @property
    def results_kind(self) -> ResultsKind:
        """The kind of results file this criterion is measured on (and its baseline's)."""
        kind = self.metric.partition(".")[0]
        assert kind in METRICS_BY_KIND
        return kind

    @property
    def metric_name(self) -> str:
        """The metric without its kind prefix (``p95_ms``, ``errors.timeout``)."""
        return self.metric.partition(".")[2]


class Criterion(_OnAMetric):
    """One acceptance criterion: ``<kind>.<metric> <op> <threshold>``, strict as written."""

    op: Operator
    threshold: float
    abort_on_fail: bool = False
    """``loadkit load --config`` stops the run as soon as this criterion fails (checked every
    second from the live figures, after ``delay_s``)."""
    delay_s: float | None = Field(default=None, ge=0, le=24 * 3600)
    """Seconds from the run's start before ``abort_on_fail`` is first checked
    (``DEFAULT_ABORT_DELAY_S`` when absent: ``abort_delay_s``)."""
    window: str | None = Field(
        default=None,
        description='the span judged: "all" (default), "steady", "from 10s", "10s-40s", '
        '"stage:2", "stage:NAME" (loadkit.windows)',
    )

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, value: str) -> str:
        return check_metric(value, METRICS_BY_KIND)

    @field_validator("threshold")
    @classmethod
    def _finite(cls, value: float) -> float:
        # TOML accepts nan and inf; a comparison with nan is always False, so `!= nan` would
        # always pass and `< nan` always fail: neither is a criterion anyone meant.
        if not math.isfinite(value):
            raise ValueError(f"threshold must be a finite number, not {value}")
        return value

    @model_validator(mode="after")
    def _threshold_possible(self) -> Criterion:
        # Every metric is a count, a rate, a latency or a ratio: none can be negative. A fraction
        # above 1 is almost always a percentage written as such (10 for 10 %), which would make
        # `error_rate < 10` pass every run.
        if self.threshold < 0:
            raise ValueError(
                f"threshold {self.threshold:g} is negative; {self.metric} is never below 0"
            )
        if self.metric_name in FRACTION_METRICS and self.threshold > 1:
            raise ValueError(
                f"threshold {self.threshold:g} is above 1; {self.metric} is a fraction from 0 to 1 "
                "(write 10 % as 0.10)"
            )
        return self

    @model_validator(mode="after")
    def _abort_applies(self) -> Criterion:
        if self.delay_s is not None and not self.abort_on_fail:
            raise ValueError("delay_s delays abort_on_fail: set abort_on_fail = true, or remove it")
        if not self.abort_on_fail:
            return self
        if self.window is not None and not parse_window(self.window).judges_whole_run:
            raise ValueError(
                f"abort_on_fail judges the run so far, not window {self.window!r}: remove one"
            )
        name = self.metric_name
        if self.results_kind != "load" or not (
            name in ABORT_METRICS or (name.startswith("errors.") and len(name) > len("errors."))
        ):
            raise ValueError(
                f"abort_on_fail applies to load metrics the run watches live "
                f"({', '.join(sorted(ABORT_METRICS))}, errors.<kind>), not to {self.metric!r}"
            )
        counted = name in ("errors", "http2_internal_errors") or name.startswith("errors.")
        if counted and self.op not in ("<", "<="):
            raise ValueError(
                f"abort_on_fail with {self.metric} {self.op}: a count only grows during the run, "
                "so it fails for good only against an upper bound (< or <=); a lower bound "
                "would stop every run before it could be met"
            )
        return self

    @field_validator("window")
    @classmethod
    def _window_form(cls, value: str | None) -> str | None:
        return None if value is None else parse_window(value).text

    @model_validator(mode="after")
    def _window_applies(self) -> Criterion:
        if self.window is None or parse_window(self.window).judges_whole_run:
            return self
        window = parse_window(self.window)
        if self.results_kind != "load":
            raise ValueError(f"window applies to load metrics only, not to {self.metric!r}")
        if self.endpoint is not None:
            raise ValueError(
                f"window {self.window!r} with endpoint {self.endpoint!r}: a run's seconds and "
                "stages are recorded for the whole run, not per endpoint; judge the endpoint "
                "over the whole run, or the window without endpoint"
            )
        if self.metric_name not in window.metrics:
            raise ValueError(
                f"window {self.window!r} cannot judge {self.metric!r}: a "
                f"{'stage' if window.kind == 'stage' else 'window of seconds'} holds "
                f'{", ".join(sorted(window.metrics))}; judge it with window = "all"'
            )
        return self

    @property
    def abort_delay_s(self) -> float:
        """abort_on_fail: seconds from the run's start before it is first judged."""
        return DEFAULT_ABORT_DELAY_S if self.delay_s is None else self.delay_s

    @property
    def label(self) -> str:
        """How the criterion is shown: its name, or the expression it checks."""
        if self.name:
            return self.name
        where = f"[{self.endpoint}]" if self.endpoint else ""
        if self.window is not None and not parse_window(self.window).judges_whole_run:
            where += f"@{self.window}"
        return f"{self.metric}{where} {self.op} {self.threshold:.15g}"


# --- regression criteria (against a baseline) ----------------------------------------------------

REGRESSION_OP = "regression"

LOWER_IS_WORSE: frozenset[str] = frozenset(
    {"load.rps", "load.requests", "smoke.checks_passed", "smoke.pass_ratio"}
)
"""Metrics that regress by going down (throughput, checks passed); every other regression metric
regresses by going up (latencies, errors, stalls)."""

REGRESSION_METRICS: dict[ResultsKind, frozenset[str]] = {
    "load": LOAD_METRICS - {"exceptions", "locust_exit_code"},
    "smoke": SMOKE_METRICS,
}
"""Metrics a regression criterion can name (also ``load.errors.<kind>``); a run's exception count
and Locust's exit code are verdicts, not figures that drift."""


class RegressionCriterion(_OnAMetric):
    """``op = "regression"``: the metric may be worse than in the baseline run by at most
    ``max_worse_pct`` percent of the baseline's value and/or ``max_worse_abs`` in the metric's own
    unit (a fraction for ``error_rate``); with both, it fails only when it exceeds both. Below
    ``min_requests`` (in either run) it is not evaluated."""

    op: Literal["regression"]
    max_worse_pct: float | None = Field(default=None, ge=0)
    max_worse_abs: float | None = Field(default=None, ge=0)
    min_requests: int | None = Field(default=None, ge=1)

    @field_validator("metric")
    @classmethod
    def _regression_metric(cls, value: str) -> str:
        return check_metric(value, REGRESSION_METRICS, what="regression")

    @model_validator(mode="after")
    def _tolerance_given(self) -> RegressionCriterion:
        # Without a tolerance any change at all would fail: noise alone fails such a gate.
        if self.max_worse_pct is None and self.max_worse_abs is None:
            raise ValueError(
                "a regression criterion needs max_worse_pct and/or max_worse_abs "
                "(how much worse than the baseline is still a pass)"
            )
        for key in ("max_worse_pct", "max_worse_abs"):
            value = getattr(self, key)
            if value is not None and not math.isfinite(value):
                raise ValueError(f"{key} must be a finite number, not {value}")
        if self.min_requests is not None and self.results_kind != "load":
            raise ValueError(f"min_requests applies to load metrics, not to {self.metric!r}")
        return self

    @property
    def worse(self) -> Literal["up", "down"]:
        """Which way the metric regresses: up (latency, errors) or down (rps, checks passed)."""
        return "down" if self.metric in LOWER_IS_WORSE else "up"

    @property
    def label(self) -> str:
        """How the criterion is shown: its name, or the metric and its tolerance."""
        if self.name:
            return self.name
        where = f"[{self.endpoint}]" if self.endpoint else ""
        allowed = []
        if self.max_worse_pct is not None:
            allowed.append(f"{self.max_worse_pct:.15g} %")
        if self.max_worse_abs is not None:
            allowed.append(f"{self.max_worse_abs:.15g}")
        return f"{self.metric}{where} regression ≤ {' or '.join(allowed)}"


def _criterion_tag(value: Any) -> str:
    op = value.get("op") if isinstance(value, dict) else getattr(value, "op", None)
    return _REGRESSION_TAG if op == REGRESSION_OP else _THRESHOLD_TAG


_THRESHOLD_TAG = "<threshold criterion>"
_REGRESSION_TAG = "<regression criterion>"
_UNION_TAGS = frozenset({_THRESHOLD_TAG, _REGRESSION_TAG})
"""How pydantic names the member of a criterion's union in an error's location: left out of
the location shown (``criteria[2].max_worse_pct``)."""

AnyCriterion = Annotated[
    Annotated[Criterion, Tag(_THRESHOLD_TAG)]
    | Annotated[RegressionCriterion, Tag(_REGRESSION_TAG)],
    Discriminator(_criterion_tag),
]


class BaselineConfig(_Section):
    """``[baseline]``: defaults for the regression criteria's baseline (``--baseline`` wins)."""

    path: str | None = Field(
        default=None, min_length=1, description="the baseline results file, relative to this file"
    )
    force: bool = Field(
        default=False,
        description="judge against a baseline whose run differs (as --force-baseline)",
    )


# --- smoke ---------------------------------------------------------------------------------------

TemplateScalar = str | int | float | bool
"""A query or form value: strings may hold ``{name}`` and ``${ENV_VAR}`` (see ``SmokeRequest``)."""

_NAME_SYNTAX = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
EXPECTATION_TESTS = ("equals", "not_equals", "lt", "le", "gt", "ge", "matches", "exists")
"""The tests an expectation can make; each gives exactly one."""


def _status_code(value: object) -> int:
    if type(value) is not int:
        # The same error (and "(got '200', a string; write it without quotes)") as a plain int.
        raise PydanticCustomError("int_type", "Input should be a valid integer")
    if not 100 <= value <= 599:
        raise ValueError(f"status {value} is not an HTTP status (100 to 599)")
    return value


def _statuses(value: object) -> int | tuple[int, ...]:
    if isinstance(value, list | tuple):
        if not value:
            raise ValueError("give at least one status")
        return tuple(_status_code(item) for item in value)
    return _status_code(value)


ExpectedStatus = Annotated[
    int | tuple[int, ...],
    PlainValidator(_statuses),
    PlainSerializer(lambda value: list(value) if isinstance(value, tuple) else value),
]
"""``expect_status = 200`` or ``expect_status = [200, 204]`` (any of them)."""


def _jmespath(expression: str) -> str:
    try:
        jmespath.compile(expression)
    except jmespath.exceptions.JMESPathError as exc:
        raise ValueError(f"{expression!r} is not a JMESPath expression: {exc}") from None
    return expression


class Expectation(_Section):
    """One expectation on a response: a body field (JMESPath) or a header, and one test.

    ``{ body = "customer.id", equals = "{customer_id}" }``, ``{ body = "total", ge = 10 }``,
    ``{ header = "Content-Type", matches = "^application/json" }``, ``{ body = "error",
    exists = false }``. ``exists`` is true for a field present and not null. ``matches`` is a
    regular expression searched in the value. ``lt``/``le``/``gt``/``ge`` compare numbers.
    """

    body: str | None = Field(default=None, description="a JMESPath expression on the JSON body")
    header: str | None = Field(default=None, min_length=1)
    equals: Any = None
    not_equals: Any = None
    lt: float | None = None
    le: float | None = None
    gt: float | None = None
    ge: float | None = None
    matches: str | None = None
    exists: bool | None = None

    @field_validator("body")
    @classmethod
    def _body_path(cls, value: str | None) -> str | None:
        return None if value is None else _jmespath(value)

    @field_validator("matches")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"{value!r} is not a regular expression: {exc}") from None
        return value

    @model_validator(mode="after")
    def _one_subject_one_test(self) -> Expectation:
        if (self.body is None) == (self.header is None):
            raise ValueError("give either body (a JMESPath expression) or header (a name)")
        tests = [name for name in EXPECTATION_TESTS if name in self.model_fields_set]
        if len(tests) != 1:
            raise ValueError(
                f"give exactly one of {', '.join(EXPECTATION_TESTS)}"
                + (f"; got {', '.join(tests)}" if tests else "")
            )
        return self

    @property
    def test(self) -> str:
        """The one test this expectation makes (``"equals"``, ``"ge"``, ...)."""
        return next(name for name in EXPECTATION_TESTS if name in self.model_fields_set)

    @property
    def operand(self) -> Any:
        """The test's value (``10`` in ``ge = 10``)."""
        return getattr(self, self.test)

    @property
    def subject(self) -> str:
        """What is tested, as shown: ``body `total` `` or ``header Content-Type``."""
        return f"body `{self.body}`" if self.body is not None else f"header {self.header}"


_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
"""An HTTP token (RFC 9110): what a header name is made of."""
_HEADER_VALUE = re.compile(r"[\t\x20-\x7e]*")
"""What every client sends as written: printable ASCII, spaces and tabs."""


class SmokeRequest(_Section):
    """A request of a smoke flow and what its response must be.

    Strings in ``path``, ``query``, ``headers``, ``json`` and ``form`` may use ``{name}``: a value
    saved by an earlier step (``save``) or one the run makes: ``{email}``/``{password}`` (an
    account of the run's own), ``{new_email}``, ``{uuid}`` (fresh at each use), ``{run_id}``.
    ``${ENV_VAR}`` is read from the environment (secrets: never written into results or reports).
    A ``json`` string that is a placeholder alone keeps the saved value's type (an id stays a
    number).
    """

    name: str = Field(min_length=1)
    method: HttpMethod = "GET"
    path: str
    query: dict[str, TemplateScalar] = Field(default_factory=dict)
    headers: dict[str, str] = Field(default_factory=dict)
    json_body: dict[str, Any] | list[Any] | None = Field(default=None, alias="json")
    form: dict[str, TemplateScalar] | None = None
    expect_status: ExpectedStatus
    expect: TomlArray[Expectation] = ()
    max_latency_ms: float | None = Field(default=None, gt=0)

    @field_validator("path")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError(f"path {value!r} must start with '/'")
        return value

    @field_validator("headers")
    @classmethod
    def _sendable_headers(cls, value: dict[str, str]) -> dict[str, str]:
        # HTTP clients (httpx for smoke, Locust's for load) raise on these for every request:
        # refused here, before anything is sent.
        for name, text in value.items():
            if not _HEADER_NAME.fullmatch(name):
                raise ValueError(
                    f"header name {name!r} is not an HTTP token: letters, digits and "
                    "!#$%&'*+-.^_`|~ only, no space or colon"
                )
            if not _HEADER_VALUE.fullmatch(text):
                raise ValueError(
                    f"header {name}: its value may hold printable ASCII, spaces and tabs only "
                    "(no line break, NUL, other control character or non-ASCII letter)"
                )
        return value

    @model_validator(mode="after")
    def _one_body(self) -> SmokeRequest:
        if self.json_body is not None and self.form is not None:
            raise ValueError("json and form cannot both be set: a request has one body")
        return self

    @property
    def statuses(self) -> tuple[int, ...]:
        """The statuses that pass, in the order given."""
        given = self.expect_status
        return given if isinstance(given, tuple) else (given,)


class SmokeStep(SmokeRequest):
    """A setup step: a request whose response must pass, and values it saves for later ones.

    ``save = { token = "access_token" }``: the JMESPath ``access_token`` of the JSON body, used
    afterwards as ``{token}`` (``Authorization = "Bearer {token}"``).
    """

    save: dict[str, str] = Field(default_factory=dict)

    @field_validator("save")
    @classmethod
    def _save_paths(cls, value: dict[str, str]) -> dict[str, str]:
        for name, expression in value.items():
            if not _NAME_SYNTAX.fullmatch(name):
                raise ValueError(f"{name!r} cannot be a name: letters, digits and _ only")
            _jmespath(expression)
        return value


class SmokeCheck(SmokeRequest):
    """One smoke check: a request and what it must get back, measured.

    ``setup``: steps run for this check alone before the checks start (an item a check deletes
    is its own). ``auth = true`` sends ``Authorization: Bearer {token}``. Without any ``setup`` in
    the file, the checks are read as before flows existed: ``auth``, ``{email}``/``{password}``
    and ``{item_id}`` make the run register an account at ``/api/auth/register``, log in at
    ``/api/auth/login`` and create an item at ``/api/items`` per ``{item_id}`` check.
    """

    auth: bool = False
    setup: TomlArray[SmokeStep] = ()


DEFAULT_SMOKE_PREFLIGHT = "/health"
"""What the run asks first to know the target answers (any status will do)."""

_BEARER = {"Authorization": "Bearer {token}"}
_CREDENTIALS = {"email": "{email}", "password": "{password}"}


def bundled_item_step(check: str) -> dict[str, Any]:
    """The bundled service's setup step that creates an item of ``check``'s own as ``{item_id}``."""
    return {
        "name": f"item for {check}",
        "method": "POST",
        "path": "/api/items",
        "headers": _BEARER,
        "json": {"name": f"loadkit smoke: {check}"},
        "expect_status": 201,
        "save": {"item_id": "id"},
    }


DEFAULT_SMOKE_SETUP: tuple[SmokeStep, ...] = tuple(
    SmokeStep.model_validate(step)
    for step in (
        {
            "name": "register",
            "method": "POST",
            "path": "/api/auth/register",
            "json": _CREDENTIALS,
            "expect_status": 201,
        },
        {
            "name": "login",
            "method": "POST",
            "path": "/api/auth/login",
            "json": _CREDENTIALS,
            "expect_status": 200,
            "save": {"token": "access_token"},
        },
    )
)
"""The bundled service's setup: an account of the run's own, and its bearer token."""

DEFAULT_SMOKE_CHECKS: tuple[SmokeCheck, ...] = tuple(
    SmokeCheck.model_validate(check)
    for check in (
        {"name": "health", "path": "/health", "expect_status": 200},
        {"name": "version", "path": "/version", "expect_status": 200},
        {
            "name": "register",
            "method": "POST",
            "path": "/api/auth/register",
            "expect_status": 201,
            "json": {"email": "{new_email}", "password": "{password}"},
        },
        {
            "name": "login",
            "method": "POST",
            "path": "/api/auth/login",
            "expect_status": 200,
            "json": _CREDENTIALS,
        },
        {"name": "me", "path": "/api/auth/me", "expect_status": 200, "headers": _BEARER},
        {
            "name": "items_create",
            "method": "POST",
            "path": "/api/items",
            "expect_status": 201,
            "json": {"name": "smoke item"},
            "headers": _BEARER,
        },
        {"name": "items_list", "path": "/api/items", "expect_status": 200, "headers": _BEARER},
        {
            "name": "items_get",
            "path": "/api/items/{item_id}",
            "expect_status": 200,
            "headers": _BEARER,
            "setup": [bundled_item_step("items_get")],
        },
        {
            "name": "items_delete",
            "method": "DELETE",
            "path": "/api/items/{item_id}",
            "expect_status": 204,
            "headers": _BEARER,
            "setup": [bundled_item_step("items_delete")],
        },
        {
            "name": "login_bad_password",
            "method": "POST",
            "path": "/api/auth/login",
            "expect_status": 401,
            "json": {"email": "{email}", "password": "not-the-password"},
        },
    )
)
"""The bundled service's suite (also written out in acceptance.toml): health, version, register,
login, me, items create/list/get/delete, and a wrong password answered 401."""


class SmokeConfig(_Section):
    """``[smoke]``: the flow ``loadkit smoke`` runs: ``setup`` steps in order, then every check
    at once (the bundled service's flow when the section gives no checks)."""

    timeout_s: float = Field(default=10.0, gt=0)
    preflight_path: str = DEFAULT_SMOKE_PREFLIGHT
    setup: TomlArray[SmokeStep] = ()
    checks: TomlArray[SmokeCheck] = Field(default=DEFAULT_SMOKE_CHECKS, min_length=1)

    @field_validator("preflight_path")
    @classmethod
    def _preflight_absolute(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError(f"preflight_path {value!r} must start with '/'")
        return value

    @model_validator(mode="before")
    @classmethod
    def _bundled_flow(cls, data: Any) -> Any:
        # No checks given means the bundled service's flow: its setup comes with its checks.
        if isinstance(data, dict) and "checks" not in data and "setup" not in data:
            return {**data, "setup": DEFAULT_SMOKE_SETUP}
        return data

    @model_validator(mode="after")
    def _unique_names(self) -> SmokeConfig:
        names = [c.name for c in self.checks]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"check names must be unique; repeated: {', '.join(duplicates)}")
        return self

    @property
    def is_flow(self) -> bool:
        """True when the file writes its setup out (flows); False for checks read as before
        flows existed, whose account and items the runner makes itself."""
        return bool(self.setup) or any(c.setup for c in self.checks)


# --- load profiles -------------------------------------------------------------------------------


class StageConfig(_Section):
    """One entry of a profile's ``stages``: ramp linearly to ``target`` over ``duration_s``."""

    duration_s: float = Field(gt=0, le=24 * 3600)
    target: float = Field(ge=0, description="users (closed model) or iterations/s (open model)")
    name: str | None = Field(default=None, min_length=1)

    def stage(self) -> Stage:
        """As the shared ``Stage`` that launcher, plugin and recorder agree on."""
        return Stage(duration_s=self.duration_s, target=self.target, name=self.name)


DEFAULT_IN_FLIGHT_WINDOW_S = 30.0
"""Without ``max_in_flight``, an open run may have this many seconds' worth of iterations (at its
highest rate) running at once: enough to keep the timetable through a target that freezes for
that long, every late iteration still sent (and measured from when it was due)."""
MAX_USERS = 10_000
"""The most users a closed run may ask for (``concurrency``, a stage's target)."""
MAX_DEFAULT_IN_FLIGHT = 2_000
"""The default's cap: each slot is a Locust user (a greenlet and its connection), all started
before the timetable; a few thousand stay cheap, tens of thousands do not."""


class LoadProfile(_Section):
    """``[profiles.<name>]``: what ``loadkit load`` runs when no flag says otherwise.

    Two models. Closed (the default): ``concurrency`` users each send their next request when the
    previous one answered. Open (``rate`` given): iterations start on a timetable, ``rate`` per
    second, whatever the target does; ``max_in_flight`` bounds those running at once. ``stages``
    ramp either (targets are users in a closed run, iterations per second in an open one, which
    then starts from ``rate``); their total is the run's duration, so ``duration_s`` is not
    given with them.
    """

    scenario: str = "login"
    concurrency: int = Field(default=10, ge=1, le=MAX_USERS)
    duration_s: float = Field(default=60.0, gt=0, le=24 * 3600)
    spawn_rate: float | None = Field(default=None, gt=0)
    rate: float | None = Field(
        default=None,
        gt=0,
        description="open model: iterations started per second; latency measured from when "
        "each was due",
    )
    max_in_flight: int | None = Field(default=None, ge=1, le=100_000)
    stages: TomlArray[StageConfig] | None = Field(default=None, min_length=1)
    engine: Literal["locust", "native"] | None = Field(
        default=None,
        description="which engine runs a URL: native (the default for a URL) or locust; a "
        "locustfile always runs on Locust",
    )
    http2: bool = Field(
        default=False,
        description="speak HTTP/2 (h2c on http://, ALPN h2 on https://), on Locust: the bundled "
        "scenarios and locustfiles on scenarios/http2_user.py (loadkit load --http2)",
    )

    @field_validator("stages")
    @classmethod
    def _stages_run(cls, value: tuple[StageConfig, ...] | None) -> tuple[StageConfig, ...] | None:
        if value is not None:
            stages = [entry.stage() for entry in value]
            try:
                check_stages(stages, option="stages")
            except ValueError as exc:  # the location already says "stages"
                raise ValueError(str(exc).removeprefix("stages: ")) from None
            if total_duration_s(stages) > 24 * 3600:
                raise ValueError("the stages last more than 24 h in all")
        return value

    @model_validator(mode="after")
    def _one_model(self) -> LoadProfile:
        # Keys that contradict each other are refused, naming both, rather than one silently
        # winning: the run would not be the one the file describes.
        given = self.model_fields_set
        if self.stages is not None and "duration_s" in given:
            raise ValueError(
                f"stages and duration_s cannot both be set: the stages' total "
                f"({self.run_duration_s:g} s) is the run's duration; remove duration_s"
            )
        if self.rate is None:
            if self.max_in_flight is not None:
                raise ValueError(
                    "max_in_flight bounds an open-model run: give rate too, or remove it "
                    "(a closed run's bound is concurrency)"
                )
            if self.stages is not None:
                if (most := max(stage.target for stage in self.stages)) > MAX_USERS:
                    raise ValueError(
                        f"a stage's target is {most:g} users, more than {MAX_USERS:,} "
                        "(in a closed run the stages' targets are users; give rate for an open one)"
                    )
                for key in ("concurrency", "spawn_rate"):
                    if key in given:
                        raise ValueError(
                            f"stages and {key} cannot both be set: in a closed run the stages' "
                            f"targets are the users and ramp them; remove {key}"
                        )
        elif "concurrency" in given:
            raise ValueError(
                "rate and concurrency cannot both be set: concurrency is the closed model's "
                "users; an open run's bound on iterations at once is max_in_flight"
            )
        return self

    @property
    def model(self) -> Literal["open", "closed"]:
        """ "open" with a ``rate`` (iterations on a timetable), else "closed" (users in a loop)."""
        return "open" if self.rate is not None else "closed"

    @property
    def stage_list(self) -> tuple[Stage, ...]:
        """The stages as ``Stage`` values (empty without stages)."""
        return tuple(entry.stage() for entry in self.stages or ())

    @property
    def run_duration_s(self) -> float:
        """How long the run lasts: the stages' total, else ``duration_s``."""
        stages = self.stage_list
        return total_duration_s(stages) if stages else self.duration_s

    @property
    def peak_rate(self) -> float | None:
        """An open run's highest rate (its ``rate`` or a stage's target); None when closed."""
        if self.rate is None:
            return None
        return max([self.rate, *(stage.target for stage in self.stage_list)])

    @property
    def in_flight_bound(self) -> int | None:
        """An open run's bound on iterations at once: ``max_in_flight``, else the peak rate's
        ``DEFAULT_IN_FLIGHT_WINDOW_S`` worth, capped at ``MAX_DEFAULT_IN_FLIGHT``. None when
        closed. It is also the number of Locust users an open run starts (one per slot)."""
        peak = self.peak_rate
        if peak is None:
            return None
        if self.max_in_flight is not None:
            return self.max_in_flight
        return min(MAX_DEFAULT_IN_FLIGHT, max(1, math.ceil(peak * DEFAULT_IN_FLIGHT_WINDOW_S)))


# --- lock audit ----------------------------------------------------------------------------------


class LockAuditConfig(_Section):
    """``[lock_audit]``: which files ``loadkit audit-locks`` checks and what counts as what.

    Patterns are shell globs (``fnmatch``). A pattern without a dot matches the last component of
    a name (``*lock*`` matches ``self._storage_lock``; ``hash_password`` matches
    ``security.hash_password``); a pattern with a dot matches the whole dotted name, after import
    aliases are resolved (``bcrypt.*`` matches ``bc.hashpw`` after ``import bcrypt as bc``).
    Lock patterns ignore case; call patterns do not.
    """

    paths: TomlArray[str] = Field(default=("service",), min_length=1)
    lock_patterns: TomlArray[str] = ("*lock*", "*mutex*", "*semaphore*", "*_storage*")
    lock_exclude_patterns: TomlArray[str] = ("*lockfile*", "*unlock*", "*block*", "*clock*")
    lock_constructors: TomlArray[str] = (
        "threading.Lock",
        "threading.RLock",
        "threading.Semaphore",
        "threading.BoundedSemaphore",
        "threading.Condition",
        "asyncio.Lock",
        "asyncio.Semaphore",
        "asyncio.BoundedSemaphore",
        "asyncio.Condition",
        "anyio.Lock",
        "anyio.Semaphore",
        "anyio.CapacityLimiter",
        "multiprocessing.Lock",
        "multiprocessing.RLock",
    )
    storage_helpers: TomlArray[str] = ("with_storage", "with_storage_traced")
    slow_call_patterns: TomlArray[str] = (
        "bcrypt.*",
        "passlib.*",
        "hashlib.pbkdf2_hmac",
        "hashlib.scrypt",
        "hash_password",
        "verify_password",
        "*passwords.hash",
        "*passwords.verify",
        "*tokens.issue",
        "*tokens.verify",
        "jwt.encode",
        "jwt.decode",
        "httpx.*",
        "requests.*",
        "aiohttp.*",
        "urllib.*",
        "*.execute",
        "*.executemany",
        "*.commit",
        "*.rollback",
        "*.scalars",
        "*.scalar",
        "*.flush",
        "*.refresh",
        "session.*",
        "engine.*",
        "time.sleep",
        "subprocess.*",
        "socket.*",
        "open",
        "*.read_text",
        "*.read_bytes",
        "*.write_text",
        "*.write_bytes",
    )
    extend_slow_call_patterns: TomlArray[str] = ()
    """Added to ``slow_call_patterns``: a project's own slow helpers without restating defaults."""
    await_allow: TomlArray[str] = ()
    timeout_wrappers: TomlArray[str] = (
        "asyncio.timeout",
        "asyncio.timeout_at",
        "asyncio.wait_for",
        "anyio.fail_after",
        "anyio.move_on_after",
        "async_timeout.timeout",
    )

    @field_validator(
        "paths",
        "lock_patterns",
        "lock_exclude_patterns",
        "lock_constructors",
        "storage_helpers",
        "slow_call_patterns",
        "extend_slow_call_patterns",
        "await_allow",
        "timeout_wrappers",
    )
    @classmethod
    def _no_blank_entries(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        # An empty string would silently match nothing (or, as a path, the working directory).
        for index, entry in enumerate(value):
            if not entry.strip():
                raise ValueError(f"entry [{index}] is empty; remove it or give a pattern")
        return value


# --- target profile ------------------------------------------------------------------------------

KIND_SYNTAX = re.compile(r"[A-Za-z][A-Za-z0-9_.:-]{0,63}")
"""What an error kind may look like: a short identifier (``storage_lock_timeout``)."""
_STATUS_KEY = re.compile(r"[1-5]([0-9]{2}|xx)")


class ErrorKindSource(_Section):
    """Where a failed response says its kind: exactly one of ``body`` (a JMESPath on the JSON
    body, ``"error.kind"``), ``header`` (a response header's name) or ``problem = true`` (RFC 7807
    problem+json: the last segment of ``type``, else ``title`` in snake_case)."""

    body: str | None = None
    header: str | None = Field(default=None, min_length=1)
    problem: bool = False

    @field_validator("body")
    @classmethod
    def _body_path(cls, value: str | None) -> str | None:
        return None if value is None else _jmespath(value)

    @model_validator(mode="after")
    def _exactly_one(self) -> ErrorKindSource:
        given = [k for k in ("body", "header") if getattr(self, k) is not None]
        if self.problem:
            given.append("problem")
        if len(given) != 1:
            raise ValueError(
                'give exactly one of body = "<JMESPath>", header = "<name>", problem = true'
                + (f"; got {', '.join(given)}" if given else "")
            )
        return self


class TargetProfile(_Section):
    """``[target]``: how the API under test reports its errors and carries trace ids.

    The defaults are the bundled service's: the kind at ``error.kind`` of the JSON body, the
    trace id at ``error.trace_id`` or in ``X-Trace-Id``. ``status_kinds`` names the kind of a
    failed response that says none (``{ "401" = "unauthorized", "5xx" = "server_error" }``; an
    exact status wins over its class), else it is ``unexpected_status``. ``trace_header`` is sent
    with a fresh id on every request: ``traceparent`` (W3C, the default) or another name
    (``X-Request-Id``: 32 hex digits); ``trace_response_header`` is the one that returns it.
    """

    error_kind: ErrorKindSource = ErrorKindSource(body="error.kind")
    error_message: str | None = Field(
        default="error.message", description="a JMESPath to the error's words in the body"
    )
    error_trace_id: str | None = Field(
        default="error.trace_id", description="a JMESPath to the error's trace id in the body"
    )
    status_kinds: dict[str, str] = Field(default_factory=dict)
    trace_header: str = Field(default="traceparent", pattern=r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
    trace_response_header: str = Field(
        default="X-Trace-Id", pattern=r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$"
    )

    @field_validator("error_message", "error_trace_id")
    @classmethod
    def _paths(cls, value: str | None) -> str | None:
        return None if value is None else _jmespath(value)

    @field_validator("status_kinds")
    @classmethod
    def _status_kinds(cls, value: dict[str, str]) -> dict[str, str]:
        for status, kind in value.items():
            if not _STATUS_KEY.fullmatch(status):
                raise ValueError(
                    f'{status!r} is not a status or a class of them: write "404" or "4xx"'
                )
            if not KIND_SYNTAX.fullmatch(kind):
                raise ValueError(f"kind {kind!r} for {status} must be a short identifier")
        return value

    @property
    def is_bundled(self) -> bool:
        """True when this is the bundled service's profile, read the fast way."""
        return self == TargetProfile()


# --- logs (loadkit errors) -----------------------------------------------------------------------

LogPreset = Literal["loadkit", "nginx"]
LOG_PRESETS: tuple[LogPreset, ...] = ("loadkit", "nginx")
_FIELD_PATH = re.compile(r"[^.\s]+(\.[^.\s]+)*")
LOG_FIELD_KEYS: tuple[str, ...] = (
    "ts",
    "ts_ms",
    "method",
    "endpoint",
    "path",
    "status",
    "kind",
    "trace_id",
    "duration_ms",
    "duration_s",
    "message",
)
"""The keys of ``[logs]`` that map a field of another JSON log (``preset`` is the other key)."""


class LogsConfig(_Section):
    """``[logs]``: the log format ``loadkit errors`` reads.

    Nothing set: the bundled service's JSON log (DESIGN contract 3). ``preset = "nginx"``: nginx's
    default ``combined`` access log (text). Otherwise a field mapping for another JSON log, one
    dotted path per field (``kind = "err.code"``; a flat key holding dots is found too): a line is
    a request when it has ``endpoint`` (a route template, kept as is) or ``path`` (a raw path:
    query dropped, ids folded into ``{id}``), and ``status``. The time is ``ts`` (ISO 8601 or
    epoch seconds) or ``ts_ms`` (epoch milliseconds, as pino logs). A duration is in milliseconds
    (``duration_ms``) or seconds (``duration_s``); with no ``kind``, an error's kind comes from
    its status (502 → ``bad_gateway``, other 5xx → ``server_error``, ...).
    """

    preset: LogPreset | None = None
    ts: str | None = None
    ts_ms: str | None = None
    method: str | None = None
    endpoint: str | None = None
    path: str | None = None
    status: str | None = None
    kind: str | None = None
    trace_id: str | None = None
    duration_ms: str | None = None
    duration_s: str | None = None
    message: str | None = None

    @field_validator(*LOG_FIELD_KEYS)
    @classmethod
    def _dotted(cls, value: str | None) -> str | None:
        if value is not None and not _FIELD_PATH.fullmatch(value):
            raise ValueError(
                f"{value!r} is not a field path: write the key, or keys joined by dots "
                '("status", "http.response.status_code")'
            )
        return value

    @model_validator(mode="after")
    def _one_format(self) -> LogsConfig:
        mapped = self.mapped_keys
        if self.preset is not None and mapped:
            raise ValueError(
                f"preset = {self.preset!r} and field keys ({', '.join(mapped)}): a preset says "
                "where every field is; give the preset or the field keys, not both"
            )
        if not mapped:
            return self
        if self.endpoint is not None and self.path is not None:
            raise ValueError(
                "endpoint and path both given: endpoint is a route template, path a raw path "
                "whose ids are folded; give one"
            )
        if self.endpoint is None and self.path is None:
            raise ValueError(
                'a field mapping needs endpoint = "<route field>" or path = "<path field>"'
            )
        if self.status is None:
            raise ValueError('a field mapping needs status = "<status code field>"')
        if self.duration_ms is not None and self.duration_s is not None:
            raise ValueError("duration_ms and duration_s both given: give the one your log has")
        if self.ts is not None and self.ts_ms is not None:
            raise ValueError(
                "ts and ts_ms both given: ts is ISO 8601 or epoch seconds, ts_ms epoch "
                "milliseconds; give the one your log has"
            )
        return self

    @property
    def mapped_keys(self) -> list[str]:
        """The field keys set, in the order of ``LOG_FIELD_KEYS``."""
        return [key for key in LOG_FIELD_KEYS if getattr(self, key) is not None]


# --- declarative load scenarios ------------------------------------------------------------------

SCENARIO_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")
"""A declarative scenario's name: a word (``orders``), never a path, so ``--scenario`` tells it
from a locustfile."""
RESERVED_SCENARIO_NAMES = frozenset(
    {"url", "login", "api", "declarative", "declarative_spec", "http2_user"}
)
"""The bundled scenarios' names (``scenarios/*.py``): ``--scenario`` runs those, and ``url``
is run by the native engine before any ``[scenarios]`` is read, so none can name a declarative
scenario."""
_SMOKE_ONLY_KEYS = ("expect", "max_latency_ms")


class ScenarioStep(SmokeStep):
    """A setup step of a declarative load scenario (``[[scenarios.NAME.setup]]``): a request of
    a smoke flow's keys (method, path, query, headers, json or form, expect_status, save) run
    once per simulated user before its weighted mix (a login saving ``{token}``). ``name`` is
    the endpoint it is counted under; by default its path as written (``/v2/orders/{number}``).
    """

    name: str | None = Field(default=None, min_length=1)  # type: ignore[assignment]

    @model_validator(mode="before")
    @classmethod
    def _no_smoke_assertions(cls, data: Any) -> Any:
        # A load run counts statuses (and classifies the others by their kind); body and
        # latency assertions per request are smoke's, where each one is reported.
        if isinstance(data, dict):
            for key in _SMOKE_ONLY_KEYS:
                if key in data:
                    raise ValueError(
                        f"{key} is a smoke check's key, not a load scenario's: a load request "
                        "passes on its expect_status (latency is judged by [[criteria]]); "
                        f"remove {key}"
                    )
        return data

    @property
    def endpoint_name(self) -> str:
        """The name its requests are counted under (Locust's ``name``)."""
        return self.name or self.path.partition("?")[0]


class ScenarioRequest(ScenarioStep):
    """One request of a declarative scenario's weighted mix (``[[scenarios.NAME.requests]]``):
    each iteration of a user sends one, chosen at random in proportion to ``weight``."""

    weight: int = Field(default=1, ge=1, le=1_000_000)


class DeclarativeScenario(_Section):
    """``[scenarios.NAME]``: a load scenario written in acceptance.toml, for an API one does not
    write Python for; the native engine runs it (``engines/native/scenario.py``), or
    ``scenarios/declarative.py`` on Locust. Its ``setup`` runs once
    per simulated user, in order; then each iteration sends one of ``requests``, weighted.
    A profile names it (``scenario = "NAME"``), or ``loadkit load --scenario NAME``."""

    setup: TomlArray[ScenarioStep] = ()
    requests: TomlArray[ScenarioRequest] = Field(min_length=1)


def _scenario_name(value: str) -> str:
    if not SCENARIO_NAME.fullmatch(value):
        raise ValueError(
            f"scenario name {value!r} must be a word of letters, digits, _ and - (a path names "
            "a locustfile, given to --scenario directly)"
        )
    if value in RESERVED_SCENARIO_NAMES:
        raise ValueError(
            f"scenario name {value!r} is a bundled scenario's ("
            f"{', '.join(sorted(RESERVED_SCENARIO_NAMES))}): name yours apart"
        )
    return value


ScenarioName = Annotated[str, AfterValidator(_scenario_name)]


# --- the file ------------------------------------------------------------------------------------


class AcceptanceConfig(_Section):
    """The whole of acceptance.toml."""

    all_criteria: TomlArray[AnyCriterion] = Field(default=(), alias="criteria")
    smoke: SmokeConfig = SmokeConfig()
    profiles: dict[str, LoadProfile] = Field(default_factory=lambda: {"default": LoadProfile()})
    lock_audit: LockAuditConfig = LockAuditConfig()
    baseline: BaselineConfig = BaselineConfig()
    target: TargetProfile = TargetProfile()
    logs: LogsConfig = LogsConfig()
    scenarios: dict[ScenarioName, DeclarativeScenario] = Field(default_factory=dict)

    @property
    def criteria(self) -> tuple[Criterion, ...]:
        """The threshold criteria (``<metric> <op> <threshold>``), in the file's order."""
        return tuple(c for c in self.all_criteria if isinstance(c, Criterion))

    @property
    def regressions(self) -> tuple[RegressionCriterion, ...]:
        """The regression criteria (``op = "regression"``), judged against a baseline run."""
        return tuple(c for c in self.all_criteria if isinstance(c, RegressionCriterion))

    def profile(self, name: str) -> LoadProfile:
        """The named load profile, or a ConfigError listing the ones that exist."""
        try:
            return self.profiles[name]
        except KeyError:
            known = ", ".join(sorted(self.profiles)) or "none"
            raise ConfigError(f"no load profile {name!r} in [profiles]; known: {known}") from None


def _location(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if item in _UNION_TAGS:
            continue
        if isinstance(item, int):
            parts.append(f"[{item}]")
        else:
            parts.append(("." if parts else "") + item)
    return "".join(parts) or "(top level)"


def parse_config(data: dict[str, Any], *, source: str) -> AcceptanceConfig:
    """Validate an already-parsed TOML document; ``source`` names it in error messages."""
    try:
        return AcceptanceConfig.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        locations = [tuple(err["loc"]) for err in errors]
        lines = []
        for err, loc in zip(errors, locations, strict=True):
            # An array whose item was refused also reports "too few items": the item's own
            # error says it all.
            if err["type"] == "too_short" and any(o[: len(loc)] == loc != o for o in locations):
                continue
            lines.append(f"  {_location(loc)}: {_problem(err)}")
        raise ConfigError(f"{source} is invalid:\n" + "\n".join(lines)) from None


_TOML_TYPES: tuple[tuple[type, str], ...] = (
    (bool, "a boolean"),
    (int, "an integer"),
    (float, "a float"),
    (str, "a string"),
    (list, "an array"),
    (dict, "a table"),
)


def _problem(err: ErrorDetails) -> str:
    """What is wrong with one value; for a value of the wrong type, what was given."""
    message = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        return "unknown key"
    if not err["type"].endswith(("_type", "_parsing")):
        return message
    value = err.get("input")
    given = next((name for cls, name in _TOML_TYPES if isinstance(value, cls)), None)
    if given is None:
        return message
    if err["type"] == "tuple_type":
        message = "Input should be an array"
    if isinstance(value, str):
        shown = repr(value) if len(value) <= 40 else repr(value[:40]) + "..."
        hint = "; write it without quotes" if _unquoted_fits(value, err["type"]) else ""
        return f"{message} (got {shown}, {given}{hint})"
    if isinstance(value, bool):
        return f"{message} (got {str(value).lower()}, {given})"
    if isinstance(value, int) and value.bit_length() > 64:
        return f"{message} (got an integer of {value.bit_length()} bits)"
    if isinstance(value, int | float):
        return f"{message} (got {value!r}, {given})"
    return f"{message} (got {given})"


def _unquoted_fits(text: str, error_type: str) -> bool:
    """Whether ``text`` without its quotes is what the key wanted (``threshold = "1000"``)."""
    if error_type.startswith("bool"):
        return text in {"true", "false"}
    if error_type.startswith(("int", "float")):
        try:
            tomllib.loads(f"value = {text}")
        except (tomllib.TOMLDecodeError, ValueError, RecursionError):
            return False
        return True
    return False


def load_config(path: Path) -> AcceptanceConfig:
    """Read and validate acceptance.toml at ``path`` (UTF-8, at most ``MAX_CONFIG_BYTES``)."""
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: no such file; pass --config with the path to your acceptance.toml"
        ) from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory; pass --config with a TOML file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"{path}: larger than {MAX_CONFIG_BYTES >> 20} MiB, not an acceptance file"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte {exc.start}); an acceptance file is TOML"
        ) from None
    return parse_config(parse_toml(text, source=str(path)), source=str(path))


def parse_toml(text: str, *, source: str) -> dict[str, Any]:
    """The TOML document ``text``; a ``ConfigError`` naming ``source`` for anything tomllib
    cannot turn into data, not only its syntax errors."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    except RecursionError:
        # tomllib parses nested arrays and inline tables recursively.
        raise ConfigError(f"{source}: not valid TOML: arrays or tables nested too deeply") from None
    except ValueError:
        # The one other ValueError of tomllib: an integer longer than Python converts
        # (CVE-2020-10735), which no threshold or count needs.
        raise ConfigError(
            f"{source}: not valid TOML: a number of more than {sys.get_int_max_str_digits()} "
            "digits; write it with fewer"
        ) from None

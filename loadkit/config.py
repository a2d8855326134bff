"""acceptance.toml: the criteria, the smoke checks, the load profiles, the lock-audit scope.

DESIGN.md, contract 4. Loaded with validation: an unknown key, a wrong type or an impossible value
is a ``ConfigError`` that names the file, the key and what was expected.
"""

from __future__ import annotations

import math
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from loadkit.exceptions import ConfigError

HttpMethod = Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
Operator = Literal["<", "<=", ">", ">=", "==", "!="]
ResultsKind = Literal["smoke", "load", "lock_audit"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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
        "http2_internal_errors",
        "max_stall_s",
    }
)
"""Metrics a criterion can name for load results (also ``errors.<kind>``: the count of one kind)."""

ENDPOINT_METRICS: frozenset[str] = frozenset(
    {"requests", "errors", "error_rate", "p50_ms", "p90_ms", "p95_ms", "p99_ms", "p999_ms"}
    | {"max_ms"}
)
"""Load metrics that can also be asked of one endpoint (``endpoint = "POST /api/auth/login"``)."""

SMOKE_METRICS: frozenset[str] = frozenset({"checks_failed", "checks_passed", "pass_ratio"})
LOCK_AUDIT_METRICS: frozenset[str] = frozenset({"lock_violations"})

FRACTION_METRICS: frozenset[str] = frozenset({"error_rate", "pass_ratio"})
"""Metrics that are fractions from 0 to 1 (not percentages)."""

METRICS_BY_KIND: dict[ResultsKind, frozenset[str]] = {
    "smoke": SMOKE_METRICS,
    "load": LOAD_METRICS,
    "lock_audit": LOCK_AUDIT_METRICS,
}


class Criterion(_Section):
    """One acceptance criterion: ``<kind>.<metric> <op> <threshold>``, strict as written."""

    metric: str = Field(description='"<kind>.<metric>": "load.p95_ms", "load.errors.timeout"')
    op: Operator
    threshold: float
    name: str | None = None
    endpoint: str | None = None
    description: str | None = None

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, value: str) -> str:
        kind, _, metric = value.partition(".")
        if kind not in METRICS_BY_KIND:
            raise ValueError(
                f"metric {value!r} must start with one of {sorted(METRICS_BY_KIND)} and a dot, "
                'e.g. "load.p95_ms"'
            )
        if kind == "load" and metric.startswith("errors.") and len(metric) > len("errors."):
            return value
        if metric not in METRICS_BY_KIND[kind]:
            known = ", ".join(sorted(METRICS_BY_KIND[kind]))
            raise ValueError(f"unknown {kind} metric {metric!r}; known: {known}")
        return value

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
    def _endpoint_applies(self) -> Criterion:
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
        """The kind of results file this criterion is measured on."""
        kind = self.metric.partition(".")[0]
        assert kind in METRICS_BY_KIND
        return kind

    @property
    def metric_name(self) -> str:
        """The metric without its kind prefix (``p95_ms``, ``errors.timeout``)."""
        return self.metric.partition(".")[2]

    @property
    def label(self) -> str:
        """How the criterion is shown: its name, or the expression it checks."""
        if self.name:
            return self.name
        where = f"[{self.endpoint}]" if self.endpoint else ""
        return f"{self.metric}{where} {self.op} {self.threshold:.15g}"


# --- smoke ---------------------------------------------------------------------------------------


class SmokeCheck(_Section):
    """One smoke check: a request and the status it must get back.

    ``path`` and string values inside ``json`` may use placeholders the smoke runner fills in:
    ``{email}`` / ``{password}`` (the account the run registers for itself), ``{new_email}``
    (a fresh address each time), ``{item_id}`` (an item the run created beforehand for this check).
    """

    name: str
    method: HttpMethod = "GET"
    path: str
    expect_status: int = Field(ge=100, le=599)
    json_body: dict[str, Any] | list[Any] | None = Field(default=None, alias="json")
    auth: bool = False

    @field_validator("path")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError(f"path {value!r} must start with '/'")
        return value


_CREDENTIALS = {"email": "{email}", "password": "{password}"}

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
        {"name": "me", "path": "/api/auth/me", "expect_status": 200, "auth": True},
        {
            "name": "items_create",
            "method": "POST",
            "path": "/api/items",
            "expect_status": 201,
            "json": {"name": "smoke item"},
            "auth": True,
        },
        {"name": "items_list", "path": "/api/items", "expect_status": 200, "auth": True},
        {"name": "items_get", "path": "/api/items/{item_id}", "expect_status": 200, "auth": True},
        {
            "name": "items_delete",
            "method": "DELETE",
            "path": "/api/items/{item_id}",
            "expect_status": 204,
            "auth": True,
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
"""The built-in suite (also written out in acceptance.toml): health, version, register, login,
me, items create/list/get/delete, and a wrong password answered 401."""


class SmokeConfig(_Section):
    """``[smoke]``: the checks ``loadkit smoke`` runs, concurrently (the built-in suite when the
    section gives none)."""

    timeout_s: float = Field(default=10.0, gt=0)
    checks: tuple[SmokeCheck, ...] = Field(default=DEFAULT_SMOKE_CHECKS, min_length=1)

    @model_validator(mode="after")
    def _unique_names(self) -> SmokeConfig:
        names = [c.name for c in self.checks]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"check names must be unique; repeated: {', '.join(duplicates)}")
        return self


# --- load profiles -------------------------------------------------------------------------------


class LoadProfile(_Section):
    """``[profiles.<name>]``: what ``loadkit load`` runs when no flag says otherwise."""

    scenario: str = "login"
    concurrency: int = Field(default=10, ge=1, le=10_000)
    duration_s: float = Field(default=60.0, gt=0, le=24 * 3600)
    spawn_rate: float | None = Field(default=None, gt=0)
    rate: float | None = Field(
        default=None, gt=0, description="open model: requests per second, measured from send time"
    )


# --- lock audit ----------------------------------------------------------------------------------


class LockAuditConfig(_Section):
    """``[lock_audit]``: which files ``loadkit audit-locks`` checks and what counts as what.

    Patterns are shell globs (``fnmatch``). A pattern without a dot matches the last component of
    a name (``*lock*`` matches ``self._storage_lock``; ``hash_password`` matches
    ``security.hash_password``); a pattern with a dot matches the whole dotted name, after import
    aliases are resolved (``bcrypt.*`` matches ``bc.hashpw`` after ``import bcrypt as bc``).
    Lock patterns ignore case; call patterns do not.
    """

    paths: tuple[str, ...] = Field(default=("service",), min_length=1)
    lock_patterns: tuple[str, ...] = ("*lock*", "*mutex*", "*semaphore*", "*_storage*")
    lock_exclude_patterns: tuple[str, ...] = ("*lockfile*", "*unlock*", "*block*", "*clock*")
    lock_constructors: tuple[str, ...] = (
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
    storage_helpers: tuple[str, ...] = ("with_storage", "with_storage_traced")
    slow_call_patterns: tuple[str, ...] = (
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
    extend_slow_call_patterns: tuple[str, ...] = ()
    """Added to ``slow_call_patterns``: a project's own slow helpers without restating defaults."""
    await_allow: tuple[str, ...] = ()
    timeout_wrappers: tuple[str, ...] = (
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


# --- the file ------------------------------------------------------------------------------------


class AcceptanceConfig(_Section):
    """The whole of acceptance.toml."""

    criteria: tuple[Criterion, ...] = ()
    smoke: SmokeConfig = SmokeConfig()
    profiles: dict[str, LoadProfile] = Field(default_factory=lambda: {"default": LoadProfile()})
    lock_audit: LockAuditConfig = LockAuditConfig()

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
        lines = []
        for err in exc.errors():
            message = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                message = "unknown key"
            lines.append(f"  {_location(tuple(err['loc']))}: {message}")
        raise ConfigError(f"{source} is invalid:\n" + "\n".join(lines)) from None


def load_config(path: Path) -> AcceptanceConfig:
    """Read and validate acceptance.toml at ``path``."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: no such file; pass --config with the path to your acceptance.toml"
        ) from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return parse_config(data, source=str(path))

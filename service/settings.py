"""Service settings, read from ``ENGINES_*`` environment variables (pydantic-settings).

One ``Settings`` object is built by the caller (``python -m service`` or a test) and handed to
``create_app``; nothing here is read at import time.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from service.errors import ErrorKind

DEV_ENV = "dev"
DEV_JWT_SECRET = "dev-only-insecure-jwt-secret-change-me-0000"
"""Accepted only when ENGINES_ENV=dev (the default), so a newcomer can run the service at once."""

MIN_SECRET_BYTES = 32
"""HS256 keys shorter than the hash output (32 bytes) are weak; PyJWT warns about them too."""

LogLevel = Literal["debug", "info", "warning", "error"]


class Settings(BaseSettings):
    """Everything the service can be told, with the defaults a fresh clone runs on."""

    # allow_inf_nan=False: "inf" would pass every ge/gt bound and stall or time out never.
    model_config = SettingsConfigDict(
        env_prefix="ENGINES_", extra="ignore", frozen=True, allow_inf_nan=False
    )

    env: str = Field(
        default=DEV_ENV,
        description="Deployment name; anything but 'dev' refuses the dev JWT secret.",
    )
    database_url: str = Field(
        default="sqlite+aiosqlite:///./engines.db",
        description="SQLAlchemy async URL: sqlite+aiosqlite:///path or postgresql+asyncpg://...",
    )
    db_pool_size: int = Field(default=5, ge=1, description="Connections kept in the pool.")
    db_max_overflow: int = Field(default=10, ge=0, description="Extra connections past the pool.")
    db_pool_timeout_s: float = Field(
        default=2.0,
        gt=0,
        description="How long a request waits for a pooled connection before it is answered "
        "db_pool_exhausted (503); short, so an exhausted pool answers fast.",
    )
    pool_metrics_interval_s: float = Field(
        default=30.0, gt=0, description="Seconds between two 'db_pool' log lines."
    )
    query_timeout_s: float = Field(
        default=5.0,
        gt=0,
        description="Every database statement is interrupted past this: query_timeout (503).",
    )
    sqlite_busy_timeout_ms: int = Field(
        default=5000, ge=0, description="How long SQLite waits for a write lock before failing."
    )
    jwt_secret: str = Field(default=DEV_JWT_SECRET, description="HS256 signing key, >= 32 bytes.")
    jwt_ttl_s: int = Field(default=3600, ge=1, description="Lifetime of an access token.")
    bcrypt_rounds: int = Field(default=10, ge=4, le=31, description="bcrypt cost factor.")
    storage_lock_timeout_s: float = Field(
        default=2.0, gt=0, description="How long with_storage() waits for the storage lock."
    )
    retry_after_s: int = Field(
        default=1, ge=1, description="Retry-After (seconds) sent with 503 responses."
    )
    max_body_bytes: int = Field(default=65_536, ge=1, description="Request bodies past this: 413.")
    max_header_bytes: int = Field(
        default=16_384,
        ge=1_024,
        le=1_048_576,
        description="Request line and headers past this many bytes: 431 headers_too_large, "
        "connection closed (as h11's default; a bearer token is ~200 bytes).",
    )
    header_timeout_s: float = Field(
        default=10.0,
        gt=0,
        le=300,
        description="A request's line and headers must arrive within this many seconds of its "
        "first byte, else 408 header_timeout; a new connection silent this long is closed.",
    )
    items_page_max: int = Field(default=100, ge=1, description="Cap on ?limit= when listing items.")
    idempotency_window_s: int = Field(
        default=86_400,
        ge=1,
        description="How long POST /api/items keeps an Idempotency-Key's first answer to replay "
        "it; older keys are deleted and may be used again.",
    )
    cache_max_entries: int = Field(
        default=100_000, ge=1, description="Entries per storage-cache table before eviction."
    )
    log_level: LogLevel = Field(default="info", description="Lowest level written to stdout.")
    access_log_level: LogLevel = Field(
        default="debug",
        description="Level of the log line for a successful request (errors are always logged).",
    )
    git_commit: str = Field(default="unknown", description="Reported by GET /version.")
    shutdown_grace_s: int = Field(
        default=10, ge=1, description="On SIGTERM, how long requests in flight may finish."
    )
    max_in_flight: int = Field(
        default=256,
        ge=0,
        description="Requests handled at once; past it: overloaded (503) at once. 0 = no limit.",
    )
    login_rate_per_address: int = Field(
        default=0,
        ge=0,
        description="Login attempts per client address per window; past it: rate_limited "
        "(429). 0 = off (the harness's own login load test runs from one address).",
    )
    login_rate_per_account: int = Field(
        default=0,
        ge=0,
        description="Login attempts per account (email) per window; past it: rate_limited "
        "(429). 0 = off (the login load test logs each user in non-stop).",
    )
    login_rate_window_s: float = Field(
        default=60.0, gt=0, description="The window the two login rates are counted over."
    )

    # --- fault injection: all off by default (see README, "Fault injection") ---------------
    fault_latency_ms: int = Field(
        default=0, ge=0, description="Fault: fixed latency added to affected requests."
    )
    fault_latency_jitter_ms: int = Field(
        default=0, ge=0, description="Fault: random extra latency, 0..N ms, on affected requests."
    )
    fault_latency_share: float = Field(
        default=1.0,
        ge=0,
        le=1,
        description="Fault: share (0..1) of requests that get the added latency.",
    )
    fault_error_share: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="Fault: share (0..1) of requests that fail with fault_error_kind.",
    )
    fault_error_kind: ErrorKind = Field(
        default=ErrorKind.INTERNAL_ERROR, description="Fault: the kind injected errors carry."
    )
    fault_lock_hold_ms: int = Field(
        default=0,
        ge=0,
        description="Fault: hold the storage lock this long on every with_storage use.",
    )
    fault_slow_query_ms: int = Field(
        default=0,
        ge=0,
        description="Fault: every database session holds its connection this much longer, "
        "as a slow query would (past query_timeout_s it fails query_timeout).",
    )
    fault_stall_at_s: float = Field(
        default=0.0, ge=0, description="Fault: when the stall starts, seconds after start-up."
    )
    fault_stall_s: float = Field(
        default=0.0,
        ge=0,
        description="Fault: how long the stall lasts; every request during it waits until its end.",
    )
    fault_stall_after_headers_ms: int = Field(
        default=0,
        ge=0,
        description="Fault: affected responses send their status and headers, then hold their "
        "body this long (a streaming handler frozen mid-response; behind an HTTP/2 edge with a "
        "shorter read timeout the stream is reset with INTERNAL_ERROR).",
    )
    fault_stall_after_headers_share: float = Field(
        default=1.0,
        ge=0,
        le=1,
        description="Fault: share (0..1) of requests whose response stalls after its headers.",
    )
    fault_paths: str = Field(
        default="",
        description="Fault: comma-separated path prefixes faults apply to (empty = all); "
        "/health, /version and /metrics are never affected.",
    )

    trace_file: str = Field(
        default="",
        description="Tracing: append every span to this file, one OTLP-JSON "
        "ExportTraceServiceRequest per line (empty = no span file; see service.tracing).",
    )

    @field_validator("database_url")
    @classmethod
    def _async_database_url(cls, value: str) -> str:
        # Checked here so that a bad URL is one line naming the setting, not a traceback from
        # create_async_engine at start-up.
        try:
            dialect = make_url(value).get_dialect()
        except (ArgumentError, NoSuchModuleError, ValueError) as error:
            raise ValueError(f"not a usable SQLAlchemy URL ({error})") from None
        if not getattr(dialect, "is_async", False):
            raise ValueError(
                "needs an async driver: sqlite+aiosqlite:///./engines.db or "
                "postgresql+asyncpg://user:pw@host/db"
            )
        return value

    @field_validator("jwt_secret")
    @classmethod
    def _long_enough_secret(cls, value: str) -> str:
        secret_bytes = len(value.encode())
        if secret_bytes < MIN_SECRET_BYTES:
            raise ValueError(
                f"{secret_bytes} bytes; it must be at least {MIN_SECRET_BYTES}: make one with "
                "`python -c 'import secrets; print(secrets.token_hex(32))'`"
            )
        return value

    @field_validator("fault_paths")
    @classmethod
    def _absolute_fault_paths(cls, value: str) -> str:
        for prefix in (p.strip() for p in value.split(",")):
            if prefix and not prefix.startswith("/"):
                raise ValueError(f"{prefix!r} is not a path prefix: it must start with '/'")
        return value

    @model_validator(mode="after")
    def _refuse_unsafe_secret(self) -> Settings:
        if self.jwt_secret == DEV_JWT_SECRET and self.env != DEV_ENV:
            raise ValueError(
                f"ENGINES_ENV is {self.env!r} but ENGINES_JWT_SECRET is the dev default; "
                "set ENGINES_JWT_SECRET to a secret of at least 32 bytes"
            )
        return self

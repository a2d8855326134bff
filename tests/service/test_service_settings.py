"""Settings: ENGINES_* variables, and the refusal of unsafe JWT secrets."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from service.settings import DEV_JWT_SECRET, Settings


def test_defaults_run_a_fresh_clone(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ENGINES_ENV", "ENGINES_JWT_SECRET", "ENGINES_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings()
    assert settings.env == "dev" and settings.jwt_secret == DEV_JWT_SECRET
    assert settings.database_url == "sqlite+aiosqlite:///./engines.db"
    assert settings.bcrypt_rounds == 10 and settings.storage_lock_timeout_s == 2.0


def test_settings_come_from_engines_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENGINES_BCRYPT_ROUNDS", "5")
    monkeypatch.setenv("ENGINES_STORAGE_LOCK_TIMEOUT_S", "0.5")
    monkeypatch.setenv("ENGINES_GIT_COMMIT", "deadbeef")
    settings = Settings()
    assert (settings.bcrypt_rounds, settings.storage_lock_timeout_s) == (5, 0.5)
    assert settings.git_commit == "deadbeef"


def test_a_short_secret_is_refused_even_in_dev() -> None:
    with pytest.raises(ValidationError, match="at least 32"):
        Settings(env="dev", jwt_secret="too-short")


def test_the_dev_secret_is_refused_outside_dev() -> None:
    with pytest.raises(ValidationError, match="dev default"):
        Settings(env="production", jwt_secret=DEV_JWT_SECRET)
    assert Settings(env="production", jwt_secret="p" * 32).env == "production"


def test_bad_values_name_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENGINES_BCRYPT_ROUNDS", "2")
    with pytest.raises(ValidationError, match="bcrypt_rounds"):
        Settings()


def test_pressure_defaults_answer_fast_and_never_throttle_the_harness() -> None:
    settings = Settings()
    assert settings.pool_metrics_interval_s == 30 and settings.query_timeout_s == 5
    assert settings.db_pool_timeout_s == 2  # an exhausted pool answers in 2 s, not 30
    assert settings.max_in_flight == 256
    # The login load test runs 10 users from one address, non-stop: no login limit by default.
    assert settings.login_rate_per_address == 0 and settings.login_rate_per_account == 0


def test_fault_settings_come_from_engines_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENGINES_FAULT_LATENCY_MS", "250")
    monkeypatch.setenv("ENGINES_FAULT_ERROR_SHARE", "0.25")
    monkeypatch.setenv("ENGINES_FAULT_ERROR_KIND", "database_error")
    monkeypatch.setenv("ENGINES_FAULT_STALL_AT_S", "10")
    monkeypatch.setenv("ENGINES_FAULT_STALL_S", "3")
    settings = Settings()
    assert (settings.fault_latency_ms, settings.fault_error_share) == (250, 0.25)
    assert settings.fault_error_kind == "database_error"
    assert (settings.fault_stall_at_s, settings.fault_stall_s) == (10, 3)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("database_url", "not a url"),
        ("database_url", "sqlite:///./engines.db"),  # a sync driver: create_async_engine fails
        ("database_url", "nosuchdb+nodriver://host/db"),
        ("query_timeout_s", "inf"),
        ("fault_stall_s", "inf"),
        ("fault_latency_share", "nan"),
        ("fault_paths", "/api/auth,items"),
    ],
)
def test_bad_values_are_refused_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(f"ENGINES_{name.upper()}", value)
    with pytest.raises(ValidationError, match=name):
        Settings()


def test_python_m_service_names_the_variable_at_fault(tmp_path: Path) -> None:
    env = {**os.environ, "ENGINES_DATABASE_URL": "mysql://nobody/db", "ENGINES_JWT_SECRET": "x"}
    result = subprocess.run(
        [sys.executable, "-m", "service", "--port", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert any(x.startswith("error: invalid setting ENGINES_DATABASE_URL: ") for x in lines)
    assert any(x.startswith("error: invalid setting ENGINES_JWT_SECRET: 1 bytes") for x in lines)
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ENGINES_MAX_HEADER_BYTES", "100"),  # under one request line with a bearer token
        ("ENGINES_MAX_HEADER_BYTES", "99999999"),  # the unbounded read this limit exists against
        ("ENGINES_HEADER_TIMEOUT_S", "0"),
        ("ENGINES_HEADER_TIMEOUT_S", "inf"),
        ("ENGINES_HEADER_TIMEOUT_S", "3600"),
    ],
)
def test_the_edge_limits_are_bounded(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=name.removeprefix("ENGINES_").lower()):
        Settings()


def test_the_edge_limits_come_from_engines_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    assert (Settings().max_header_bytes, Settings().header_timeout_s) == (16_384, 10.0)
    monkeypatch.setenv("ENGINES_MAX_HEADER_BYTES", "8192")
    monkeypatch.setenv("ENGINES_HEADER_TIMEOUT_S", "2.5")
    assert (Settings().max_header_bytes, Settings().header_timeout_s) == (8192, 2.5)

"""Settings: ENGINES_* variables, and the refusal of unsafe JWT secrets."""

from __future__ import annotations

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

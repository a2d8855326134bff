"""Which load profile a run uses: ``[profiles.NAME]`` of the acceptance file, flags on top.

``loadkit load``, ``loadkit ui`` and ``loadkit accept`` all choose their profile here, so a name
means the same everywhere: "default" always exists (built in when the file has none), any other
name must be in the file, and a flag is validated as the file's value would be.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from loadkit.config import AcceptanceConfig, LoadProfile, load_config
from loadkit.defaults import DEFAULT_CONFIG, DEFAULT_PROFILE
from loadkit.exceptions import ConfigError

_FLAGS = {
    "scenario": "--scenario",
    "concurrency": "--concurrency",
    "duration_s": "--duration",
    "spawn_rate": "--spawn-rate",
}
"""Each profile field a flag overrides, and the flag's name for error messages."""


def find_config(path: Path | None) -> AcceptanceConfig | None:
    """The acceptance file at ``path`` (which must exist), else ./acceptance.toml if it exists."""
    if path is None and not DEFAULT_CONFIG.exists():
        return None
    return load_config(path if path is not None else DEFAULT_CONFIG)


def load_profile(
    config: AcceptanceConfig | None,
    name: str = DEFAULT_PROFILE,
    *,
    scenario: str | None = None,
    concurrency: int | None = None,
    duration_s: float | None = None,
    spawn_rate: float | None = None,
) -> LoadProfile:
    """The profile ``name`` of ``config``, with the flags that were given applied.

    Without an acceptance file (``config`` None) or without ``[profiles.default]`` in it,
    "default" is the built-in profile (login, 10 users, 60 s); any other missing name is a
    ConfigError, as is a flag's value the file would not accept (the message names the flag).
    """
    if config is not None and (name != DEFAULT_PROFILE or name in config.profiles):
        profile = config.profile(name)
    elif name == DEFAULT_PROFILE:
        profile = LoadProfile()
    else:
        raise ConfigError(f"no {DEFAULT_CONFIG} here to take profile {name!r} from; pass --config")
    given: dict[str, object] = {
        "scenario": scenario,
        "concurrency": concurrency,
        "duration_s": duration_s,
        "spawn_rate": spawn_rate,
    }
    updates = {key: value for key, value in given.items() if value is not None}
    if not updates:
        return profile
    try:
        return LoadProfile.model_validate({**profile.model_dump(), **updates})
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else ""
            if field in updates:
                problems.append(f"{_FLAGS[field]} {_shown(updates[field])}: {error['msg']}")
            else:
                problems.append(f"profile {name!r}: {error['msg']}")
        raise ConfigError("; ".join(problems)) from None


def _shown(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)

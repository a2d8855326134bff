"""Which load profile a run uses: ``[profiles.NAME]`` of the acceptance file, flags on top.

``loadkit load``, ``loadkit ui`` and ``loadkit accept`` all choose their profile here, so a name
means the same everywhere: "default" always exists (built in when the file has none), any other
name must be in the file, and a flag is validated as the file's value would be.

A flag overrides the profile's key of the same name. A flag that chooses how the load is shaped
replaces the profile's keys of the other shape instead of clashing with them: ``--stages`` replaces
its ``duration_s`` (and, in a closed run, its ``concurrency`` and ``spawn_rate``), ``--rate`` its
``concurrency``. What cannot mean one run is refused, naming both: ``--stages`` with
``--duration``; ``--duration`` on a profile whose stages are its duration; ``--concurrency`` in an
open run or with closed-model stages (the stages are the users); ``--max-in-flight`` without a
rate; ``--rate`` on a profile whose stages are users (they would be read as rates).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from loadkit.config import AcceptanceConfig, LoadProfile, load_config
from loadkit.defaults import DEFAULT_CONFIG, DEFAULT_PROFILE
from loadkit.exceptions import ConfigError
from loadkit.stages import Stage, parse_stages, total_duration_s

_FLAGS = {
    "scenario": "--scenario",
    "concurrency": "--concurrency",
    "duration_s": "--duration",
    "spawn_rate": "--spawn-rate",
    "rate": "--rate",
    "max_in_flight": "--max-in-flight",
    "stages": "--stages",
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
    rate: float | None = None,
    max_in_flight: int | None = None,
    stages: tuple[Stage, ...] | None = None,
) -> LoadProfile:
    """The profile ``name`` of ``config``, with the flags that were given applied.

    Without an acceptance file (``config`` None) or without ``[profiles.default]`` in it,
    "default" is the built-in profile (login, 10 users, 60 s); any other missing name is a
    ConfigError, as is a flag's value the file would not accept (the message names the flag),
    and flags that contradict each other or the profile (the module's docstring says which).
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
        "rate": rate,
        "max_in_flight": max_in_flight,
        "stages": stages,
    }
    updates = {key: value for key, value in given.items() if value is not None}
    if not updates:
        return profile
    _check_flags(profile, name, updates, stages=stages)
    base = profile.model_dump(exclude_unset=True)
    open_run = rate is not None or profile.rate is not None
    if stages is not None:
        base.pop("duration_s", None)
        if not open_run:
            base.pop("concurrency", None)
            base.pop("spawn_rate", None)
    if rate is not None:
        base.pop("concurrency", None)
    if stages is not None:
        updates["stages"] = [
            {"duration_s": s.duration_s, "target": s.target}
            | ({"name": s.name} if s.name is not None else {})
            for s in stages
        ]
    try:
        return LoadProfile.model_validate({**base, **updates})
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else ""
            message = error["msg"].removeprefix("Value error, ")
            if field == "stages" or (not field and stages is not None and "stage" in message):
                # A check of the whole profile about its stages: the flag's, when they came
                # from --stages (not the profile's, which the flag replaced).
                problems.append(f"--stages: {message}")
            elif field in updates:
                problems.append(f"{_FLAGS[field]} {_shown(updates[field])}: {message}")
            else:
                problems.append(f"profile {name!r}: {message}")
        raise ConfigError("; ".join(problems)) from None


def stages_option(text: str | None) -> tuple[Stage, ...] | None:
    """``--stages 30s:50,60s:200,30s:0`` as stages (None when not given); a ConfigError naming
    the bad step otherwise."""
    if text is None:
        return None
    try:
        return parse_stages(text, option="--stages")
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _check_flags(
    profile: LoadProfile,
    name: str,
    updates: dict[str, object],
    *,
    stages: tuple[Stage, ...] | None,
) -> None:
    """Refuse flags that cannot make one run with each other or with the profile, naming both
    (``stages``: those of ``--stages``)."""
    rate = updates.get("rate", profile.rate)
    staged = stages is not None or profile.stages is not None
    if stages is not None and "duration_s" in updates:
        total = total_duration_s(stages)
        raise ConfigError(
            f"--stages and --duration cannot go together: the stages' total ({total:g} s) is "
            "the run's duration; drop --duration"
        )
    if "duration_s" in updates and profile.stages is not None and "stages" not in updates:
        raise ConfigError(
            f"--duration cannot go with profile {name!r}, whose stages (in all "
            f"{profile.run_duration_s:g} s) are its duration; give --stages instead, or drop "
            "--duration"
        )
    if "max_in_flight" in updates and rate is None:
        raise ConfigError(
            "--max-in-flight bounds an open-model run: give --rate too (a closed run's bound is "
            "--concurrency)"
        )
    if "concurrency" in updates and rate is not None:
        where = "--rate" if "rate" in updates else f"the rate of profile {name!r}"
        raise ConfigError(
            f"--concurrency cannot go with {where}: it is the closed model's users; bound an "
            "open run's iterations at once with --max-in-flight"
        )
    if rate is None and staged:
        where = "--stages" if stages is not None else f"the stages of profile {name!r}"
        for key in ("concurrency", "spawn_rate"):
            if key in updates:
                raise ConfigError(
                    f"{_FLAGS[key]} cannot go with {where}: in a closed run the stages' targets "
                    "are the users and ramp them"
                )
    if "rate" in updates and profile.rate is None and profile.stages and "stages" not in updates:
        raise ConfigError(
            f"--rate cannot go with profile {name!r}, whose stages are users (closed model): "
            "they would be read as rates; give --stages with rates too"
        )


def _shown(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)

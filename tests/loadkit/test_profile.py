"""Which load profile a run uses: the acceptance file's [profiles], "default" built in, flags on
top, validated as the file's values are (one rule for load, ui and accept)."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadkit.config import LoadProfile, parse_config
from loadkit.exceptions import ConfigError
from loadkit.run.profile import find_config, load_profile


def test_profiles_come_from_the_file_and_flags_override(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert find_config(None) is None
    assert load_profile(None, "default") == LoadProfile()
    with pytest.raises(ConfigError, match=r"no acceptance\.toml here to take profile 'ci' from"):
        load_profile(None, "ci")
    Path("acceptance.toml").write_text(
        '[profiles.ci]\nscenario = "api"\nconcurrency = 3\nduration_s = 5\n'
    )
    ci = load_profile(find_config(None), "ci")
    assert (ci.scenario, ci.concurrency, ci.duration_s) == ("api", 3, 5)
    assert load_profile(find_config(None), "ci", duration_s=2.5).duration_s == 2.5
    with pytest.raises(ConfigError, match="--concurrency 0: "):
        load_profile(find_config(None), "ci", concurrency=0)


def test_an_explicit_config_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"none\.toml: no such file"):
        find_config(tmp_path / "none.toml")


def test_duration_overrides_the_profile_and_is_validated() -> None:
    config = parse_config({"profiles": {"ci": {"concurrency": 3, "duration_s": 20}}}, source="t")
    assert load_profile(config, "ci", duration_s=None).duration_s == 20
    short = load_profile(config, "ci", duration_s=4.5)
    assert (short.duration_s, short.concurrency) == (4.5, 3)
    with pytest.raises(ConfigError, match="--duration 0"):
        load_profile(config, "ci", duration_s=0)
    with pytest.raises(ConfigError, match="no load profile 'nope' in \\[profiles\\]; known: ci"):
        load_profile(config, "nope", duration_s=None)


def test_default_is_built_in_unless_the_file_defines_it() -> None:
    # The same for `loadkit load` and `loadkit accept`: a file with only [profiles.ci] still
    # has a "default" profile.
    only_ci = parse_config({"profiles": {"ci": {"duration_s": 20}}}, source="t")
    assert load_profile(only_ci) == LoadProfile()
    own = parse_config({"profiles": {"default": {"concurrency": 2}}}, source="t")
    assert load_profile(own).concurrency == 2


def test_every_bad_flag_is_named_with_its_value() -> None:
    with pytest.raises(ConfigError) as raised:
        load_profile(None, concurrency=0, duration_s=-1.5, spawn_rate=2)
    message = str(raised.value)
    assert "--concurrency 0: " in message and "--duration -1.5: " in message
    assert "--spawn-rate" not in message

"""Which load profile a run uses: the acceptance file's [profiles], "default" built in, flags on
top, validated as the file's values are (one rule for load, ui and accept)."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadkit.config import LoadProfile, parse_config
from loadkit.exceptions import ConfigError
from loadkit.run.profile import find_config, load_profile, stages_option
from loadkit.stages import Stage


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


def profile_of(table: dict[str, object]) -> LoadProfile:
    return parse_config({"profiles": {"p": table}}, source="a.toml").profile("p")


def refused(table: dict[str, object]) -> str:
    with pytest.raises(ConfigError) as raised:
        profile_of(table)
    return str(raised.value)


RAMP = [{"duration_s": 30, "target": 50}, {"duration_s": 60, "target": 200, "name": "peak"}]


def test_a_profile_takes_a_rate_its_bound_and_stages() -> None:
    open_run = profile_of({"rate": 20, "max_in_flight": 40, "duration_s": 30})
    assert (open_run.model, open_run.in_flight_bound, open_run.run_duration_s) == ("open", 40, 30)
    # Without max_in_flight: 30 s worth at the highest rate (a stage's), at most 2000.
    assert profile_of({"rate": 20}).in_flight_bound == 600
    assert profile_of({"rate": 1, "stages": RAMP}).in_flight_bound == 2000
    ramp = profile_of({"stages": RAMP})
    assert (ramp.model, ramp.run_duration_s, ramp.in_flight_bound) == ("closed", 90, None)
    assert ramp.stage_list == (
        Stage(duration_s=30, target=50),
        Stage(duration_s=60, target=200, name="peak"),
    )


@pytest.mark.parametrize(
    ("table", "named"),
    [
        ({"stages": RAMP, "duration_s": 60}, "profiles.p: stages and duration_s cannot both"),
        ({"max_in_flight": 5}, "profiles.p: max_in_flight bounds an open-model run: give rate"),
        ({"rate": 5, "concurrency": 3}, "profiles.p: rate and concurrency cannot both be set"),
        ({"stages": RAMP, "concurrency": 3}, "profiles.p: stages and concurrency cannot both"),
        ({"stages": RAMP, "spawn_rate": 3}, "profiles.p: stages and spawn_rate cannot both"),
        ({"rate": 0}, "profiles.p.rate: Input should be greater than 0"),
        ({"stages": []}, "profiles.p.stages: "),
        ({"stages": [{"duration_s": 0, "target": 1}]}, "profiles.p.stages[0].duration_s"),
        ({"stages": [{"duration_s": 1, "target": -1}]}, "profiles.p.stages[0].target"),
        ({"stages": [{"duration_s": 1, "users": 1}]}, "profiles.p.stages[0].users: unknown key"),
        (
            {"stages": [{"duration_s": 1, "target": 1, "name": "a"}] * 2},
            "profiles.p.stages: stage names must be unique",
        ),
        ({"stages": [{"duration_s": 1, "target": 20_000}]}, "20000 users, more than 10,000"),
    ],
)
def test_a_profile_that_cannot_be_one_run_is_refused_naming_its_keys(
    table: dict[str, object], named: str
) -> None:
    assert named in refused(table)


def test_load_flags_override_the_profile_and_refuse_what_cannot_be_one_run() -> None:
    config = parse_config(
        {"profiles": {"ci": {"concurrency": 3, "duration_s": 20}, "ramp": {"stages": RAMP}}},
        source="t",
    )
    steps = (Stage(duration_s=1, target=2), Stage(duration_s=2, target=0))
    # --stages replaces the profile's duration and users; --rate its users.
    staged = load_profile(config, "ci", stages=steps)
    assert (staged.model, staged.run_duration_s, staged.stage_list) == ("closed", 3, steps)
    opened = load_profile(config, "ci", rate=50, max_in_flight=10)
    assert (opened.model, opened.rate, opened.in_flight_bound, opened.duration_s) == (
        "open", 50, 10, 20,
    )  # fmt: skip
    assert load_profile(config, "ramp", rate=5, stages=steps).stage_list == steps

    def refusal(name: str, **flags: object) -> str:
        with pytest.raises(ConfigError) as raised:
            load_profile(config, name, **flags)  # type: ignore[arg-type]
        return str(raised.value)

    assert "--stages and --duration cannot go together: the stages' total (3 s)" in refusal(
        "ci", stages=steps, duration_s=5
    )
    assert "--duration cannot go with profile 'ramp', whose stages (in all 90 s)" in refusal(
        "ramp", duration_s=5
    )
    assert "--max-in-flight bounds an open-model run: give --rate" in refusal("ci", max_in_flight=4)
    assert "--concurrency cannot go with --rate" in refusal("ci", rate=5, concurrency=2)
    assert "--concurrency cannot go with the stages of profile 'ramp'" in refusal(
        "ramp", concurrency=2
    )
    assert "--spawn-rate cannot go with --stages" in refusal("ci", stages=steps, spawn_rate=2)
    assert "--rate cannot go with profile 'ramp', whose stages are users" in refusal("ramp", rate=5)
    assert "--rate 0: Input should be greater than 0" in refusal("ci", rate=0)


def test_stages_given_on_the_command_line_are_checked() -> None:
    assert stages_option(None) is None
    assert stages_option("30s:50,1m:0") == (
        Stage(duration_s=30, target=50),
        Stage(duration_s=60, target=0),
    )
    with pytest.raises(ConfigError, match="--stages: step 2 'x' is not DURATION:TARGET"):
        stages_option("30s:50,x")

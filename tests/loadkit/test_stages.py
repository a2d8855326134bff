"""Load stages as users write them (``30s:50,60s:200``) and the targets they ramp through."""

from __future__ import annotations

import pytest

from loadkit.stages import (
    Stage,
    parse_stages,
    stage_at,
    stages_from_json,
    stages_to_json,
    target_at,
    total_duration_s,
)


def test_steps_parse_with_units_and_ramp_linearly_from_zero() -> None:
    stages = parse_stages("30s:50, 1m:200,500ms:0")
    assert stages == (Stage(30, 50), Stage(60, 200), Stage(0.5, 0))
    assert total_duration_s(stages) == 90.5
    assert target_at(stages, 15) == 25  # halfway up the first ramp
    assert target_at(stages, 60) == 125  # halfway from 50 to 200
    assert target_at(stages, 90.5) is None  # every stage has ended
    assert [stage_at(stages, t) for t in (0, 29.9, 30, 90.4, 90.5)] == [0, 0, 1, 2, None]


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("", "no stages"),
        ("30:", "step 1 '30:'"),
        ("30s:50,abc", "step 2 'abc'"),
        ("0s:5", "lasts 0"),
    ],
)
def test_a_bad_step_is_refused_naming_it(text: str, named: str) -> None:
    with pytest.raises(ValueError, match=named):
        parse_stages(text)


def test_stages_cross_to_the_plugin_as_json_and_back_unchanged() -> None:
    stages = (Stage(2, 5, "warm"), Stage(0.5, 20))
    assert stages_from_json(stages_to_json(stages)) == stages
    with pytest.raises(ValueError, match="--loadkit-stages"):
        stages_from_json('[{"duration_s": 1}]')

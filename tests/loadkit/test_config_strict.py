"""acceptance.toml is read strictly: a value of the wrong TOML type is an error naming the key and
what was given, never coerced (README: "a wrong type is exit 2"; issue 13)."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadkit.config import load_config
from loadkit.exceptions import ConfigError

CHECK = '[[smoke.checks]]\nname = "a"\npath = "/"\n'


@pytest.mark.parametrize(
    ("toml", "named"),
    [
        (
            '[[criteria]]\nmetric = "load.p95_ms"\nop = "<"\nthreshold = "1000"\n',
            "criteria[0].threshold: Input should be a valid number "
            "(got '1000', a string; write it without quotes)",
        ),
        (
            '[[criteria]]\nmetric = "load.p95_ms"\nop = "<"\nthreshold = true\n',
            "criteria[0].threshold: Input should be a valid number (got true, a boolean)",
        ),
        (
            CHECK + 'expect_status = "200"\n',
            "smoke.checks[0].expect_status: Input should be a valid integer (got '200', a string",
        ),
        (CHECK + "expect_status = 200.0\n", "smoke.checks[0].expect_status"),
        (
            CHECK + 'expect_status = 200\nauth = "yes"\n',
            "smoke.checks[0].auth: Input should be a valid boolean (got 'yes', a string)",
        ),
        ("[profiles.default]\nconcurrency = 10.5\n", "profiles.default.concurrency"),
        ('[profiles.default]\nduration_s = "60"\n', "profiles.default.duration_s"),
        ("[profiles.default]\nrate = nan\n", "profiles.default.rate: Input should be a finite"),
        ("[smoke]\ntimeout_s = inf\n", "smoke.timeout_s: Input should be a finite number"),
        ('[lock_audit]\npaths = "service"\n', "lock_audit.paths: Input should be an array"),
        ("[lock_audit]\npaths = [1]\n", "lock_audit.paths[0]: Input should be a valid string"),
        ('[[criteria]]\nmetric = 5\nop = "<"\nthreshold = 1\n', "criteria[0].metric"),
    ],
)
def test_a_value_of_the_wrong_type_names_the_key(tmp_path: Path, toml: str, named: str) -> None:
    path = tmp_path / "acceptance.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert named in str(caught.value)
    # One error per mistake: an array whose item was refused is not also "too short".
    assert "at least 1 item" not in str(caught.value)


def test_an_integer_is_still_a_number_and_arrays_are_still_read(tmp_path: Path) -> None:
    path = tmp_path / "acceptance.toml"
    path.write_text(
        '[[criteria]]\nmetric = "load.p95_ms"\nop = "<"\nthreshold = 1000\n'
        "[profiles.default]\nduration_s = 30\n"
        '[lock_audit]\npaths = ["service", "loadkit"]\n'
    )
    config = load_config(path)
    assert config.criteria[0].threshold == 1000.0
    assert config.profile("default").duration_s == 30.0
    assert config.lock_audit.paths == ("service", "loadkit")


def test_the_shipped_acceptance_file_reads() -> None:
    assert load_config(Path(__file__).parents[2] / "acceptance.toml").criteria

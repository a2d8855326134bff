"""Locust's own configuration (locust.conf, ~/.locust.conf, pyproject.toml [tool.locust],
LOCUST_* variables) as loadkit reads it before starting Locust: said, recorded, and refused where
it would change the run loadkit measures. Pure: no Locust is started here."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from loadkit.cli import app
from loadkit.engines.locust.locust_config import (
    ConfigFile,
    LocustConfig,
    check_locust_config,
    read_locust_config,
)
from loadkit.exceptions import ConfigError


def test_the_files_locust_reads_are_found_with_their_keys(tmp_path: Path) -> None:
    home, cwd = tmp_path / "home", tmp_path / "project"
    home.mkdir()
    cwd.mkdir()
    (home / ".locust.conf").write_text("loglevel = WARNING\n")
    (cwd / "locust.conf").write_text(
        "# a team's settings\n[section]\ntags = [checkout, search]\nmy-arg: x\n--stop-timeout 3\n"
    )
    (cwd / "pyproject.toml").write_text(
        '[project]\nname = "x"\n[tool.locust]\nexclude-tags = ["slow"]\nequal-weights = true\n'
    )
    environ = {"LOCUST_TAGS": "a", "LOCUST_MY_ARG": "secret", "PATH": "/bin"}
    config = read_locust_config(cwd=cwd, environ=environ, home=home)
    assert config == LocustConfig(
        files=(
            ConfigFile(path="~/.locust.conf", keys=("loglevel",)),
            ConfigFile(path="locust.conf", keys=("tags", "my-arg", "--stop-timeout")),
            ConfigFile(path="pyproject.toml", keys=("exclude-tags", "equal-weights")),
        ),
        env=("LOCUST_MY_ARG", "LOCUST_TAGS"),
    )
    check_locust_config(config)  # none of them is refused
    assert config.to_results() == {
        "files": [
            {"path": "~/.locust.conf", "keys": ["loglevel"]},
            {"path": "locust.conf", "keys": ["tags", "my-arg", "--stop-timeout"]},
            {"path": "pyproject.toml", "keys": ["exclude-tags", "equal-weights"]},
        ],
        "env": ["LOCUST_MY_ARG", "LOCUST_TAGS"],  # names only: values may be secrets
    }
    assert config.notice() == (
        "Locust's own configuration is read too: ~/.locust.conf (loglevel); locust.conf (tags, "
        "my-arg, --stop-timeout); pyproject.toml (exclude-tags, equal-weights); environment "
        "LOCUST_MY_ARG, LOCUST_TAGS"
    )


def test_a_pyproject_without_a_locust_section_gives_locust_nothing(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    config = read_locust_config(cwd=tmp_path, environ={}, home=tmp_path)
    assert config.empty


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("locust.conf", "tags = a\nrun-time = 5s\n", "locust.conf: key 'run-time' (--run-time)"),
        ("locust.conf", "--users=3\n", "locust.conf: key '--users' (--users)"),
        ("locust.conf", "headless\n", "key 'headless' (--headless)"),
        ("pyproject.toml", "[tool.locust]\njson-file = 'x'\n", "pyproject.toml: key 'json-file'"),
        ("pyproject.toml", "[tool.locust]\nprocesses = 4\n", "key 'processes' (--processes)"),
    ],
)
def test_a_key_loadkit_sets_itself_is_refused_naming_the_file_and_key(
    tmp_path: Path, name: str, text: str, message: str
) -> None:
    (tmp_path / name).write_text(text)
    config = read_locust_config(cwd=tmp_path, environ={}, home=tmp_path)
    with pytest.raises(ConfigError, match="would change the run loadkit measures") as raised:
        check_locust_config(config)
    assert message in str(raised.value)
    assert "remove the key" in str(raised.value)


def test_a_variable_loadkit_sets_itself_is_refused_naming_it(tmp_path: Path) -> None:
    config = read_locust_config(cwd=tmp_path, environ={"LOCUST_RUN_TIME": "1m"}, home=tmp_path)
    with pytest.raises(ConfigError) as raised:
        check_locust_config(config)
    assert str(raised.value) == (
        "environment variable LOCUST_RUN_TIME (--run-time) would change the run loadkit "
        "measures: loadkit sets it itself; use --duration, and unset LOCUST_RUN_TIME"
    )


def test_a_file_locust_could_not_parse_is_refused_naming_it(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.locust\n")
    with pytest.raises(ConfigError, match=r"pyproject\.toml: not valid TOML"):
        read_locust_config(cwd=tmp_path, environ={}, home=tmp_path)


def test_loadkit_load_refuses_a_run_time_in_locust_conf_before_anything_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Before: Locust read it silently, and a run-time there cut loadkit's runs.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "locust.conf").write_text("run-time = 3s\n")
    result = CliRunner().invoke(app, ["load", "--duration", "10", "--out", "load.json"])
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines() == [
        "error: locust.conf: key 'run-time' (--run-time) would change the run loadkit measures: "
        "loadkit sets it itself; use --duration, and remove the key (or run from another folder)"
    ]
    assert not (tmp_path / "load.json").exists()

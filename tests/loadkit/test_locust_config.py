"""Locust's own configuration (locust.conf, ~/.locust.conf, pyproject.toml [tool.locust],
LOCUST_* variables) as loadkit reads it before starting Locust: said, recorded, said overridden
where loadkit's command line wins, and refused where it would change the run loadkit measures.
Pure: no Locust is started here."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from loadkit.cli import app
from loadkit.engines.locust.launch import options_loadkit_sets
from loadkit.engines.locust.locust_config import (
    Command,
    ConfigFile,
    LocustConfig,
    check_locust_config,
    read_locust_config,
)
from loadkit.exceptions import ConfigError


def checked(config: LocustConfig, command: Command = "load") -> LocustConfig:
    return check_locust_config(config, command=command, overridden=options_loadkit_sets(command))


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
    assert checked(config) == config  # none of them is refused or overridden
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
    ("name", "text", "command", "message"),
    [
        ("locust.conf", "tags = a\nrun-time = 5s\n", "load", "locust.conf: key 'run-time'"),
        ("locust.conf", "--reset-stats\n", "load", "key '--reset-stats' (--reset-stats)"),
        ("locust.conf", "headful = true\n", "load", "key 'headful' (--headful)"),
        ("locust.conf", "headless = true\n", "ui", "key 'headless' (--headless)"),
        ("locust.conf", "autostart = true\n", "ui", "key 'autostart' (--autostart)"),
        ("locust.conf", "config = x.conf\n", "load", "key 'config' (--config)"),
        ("pyproject.toml", "[tool.locust]\njson-file = 'x'\n", "load", "pyproject.toml: key"),
        ("pyproject.toml", "[tool.locust]\nprocesses = 4\n", "load", "key 'processes'"),
        ("locust.conf", "html = r.html\n", "worker", "key 'html' (--html)"),
        ("locust.conf", "exit-code-on-error = 1\n", "worker", "key 'exit-code-on-error'"),
    ],
)
def test_a_key_that_would_change_the_run_is_refused_naming_the_file_and_key(
    tmp_path: Path, name: str, text: str, command: Command, message: str
) -> None:
    (tmp_path / name).write_text(text)
    config = read_locust_config(cwd=tmp_path, environ={}, home=tmp_path)
    with pytest.raises(ConfigError, match="would change the run loadkit measures") as raised:
        checked(config, command)
    assert message in str(raised.value)
    assert "remove the key" in str(raised.value)


def test_a_typical_team_locust_conf_is_overridden_where_loadkits_command_line_wins(
    tmp_path: Path,
) -> None:
    # Before: the locustfile, host, users and spawn-rate keys (which loadkit's command line
    # overrides anyway) were refused, so loadkit would not run in such a folder at all.
    (tmp_path / "locust.conf").write_text(
        "locustfile = shop.py\nhost = https://staging\nusers = 50\nspawn-rate = 5\n"
        "headless = true\nweb-port = 8090\ntags = [checkout]\n"
    )
    environ = {"LOCUST_HOST": "https://prod", "LOCUST_TAGS": "x", "LOCUST_LOCUSTFILE": "a.py"}
    config = read_locust_config(cwd=tmp_path, environ=environ, home=tmp_path)
    load = checked(config, "load")
    overridden = ("locustfile", "host", "users", "spawn-rate", "headless")
    assert load.files[0].overridden == overridden
    assert load.env_overridden == ("LOCUST_HOST", "LOCUST_LOCUSTFILE")
    assert load.notice().endswith(
        "; overridden by loadkit: locustfile, host, users, spawn-rate, headless, LOCUST_HOST, "
        "LOCUST_LOCUSTFILE"
    )
    assert load.to_results() == {
        "files": [
            {
                "path": "locust.conf",
                "keys": [*overridden, "web-port", "tags"],
                "overridden": list(overridden),
            }
        ],
        "env": ["LOCUST_HOST", "LOCUST_LOCUSTFILE", "LOCUST_TAGS"],
        "env_overridden": ["LOCUST_HOST", "LOCUST_LOCUSTFILE"],
    }
    # The web UI sets the web port itself; headless there would be no UI at all.
    with pytest.raises(ConfigError, match="key 'headless'"):
        checked(config, "ui")
    # A worker takes the host, users and spawn rate from its master.
    worker = checked(config, "worker")
    assert worker.files[0].overridden == ("locustfile",)
    assert worker.notice().endswith("; overridden by loadkit: locustfile, LOCUST_LOCUSTFILE")


def test_what_loadkit_overrides_is_on_every_command_line_it_writes() -> None:
    assert options_loadkit_sets("load") == {
        *("--locustfile", "--host", "--users", "--spawn-rate", "--exit-code-on-error"),
        *("--headless", "--only-summary"),
    }
    # --web-host and --web-port only in the web UI; --master-port only with workers (refused
    # in a configuration file for `loadkit load`, where a run may have none).
    assert {"--web-host", "--web-port"} <= options_loadkit_sets("ui")
    assert "--master-port" not in options_loadkit_sets("load")
    assert options_loadkit_sets("worker") == {
        "--locustfile",
        "--worker",
        "--master-host",
        "--master-port",
    }


def test_a_variable_loadkit_sets_itself_is_refused_naming_it(tmp_path: Path) -> None:
    config = read_locust_config(cwd=tmp_path, environ={"LOCUST_RUN_TIME": "1m"}, home=tmp_path)
    with pytest.raises(ConfigError) as raised:
        checked(config)
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

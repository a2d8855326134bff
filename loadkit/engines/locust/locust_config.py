"""Locust's own configuration, as the Locust that loadkit starts will read it: never silently.

Locust reads ``~/.locust.conf``, ``./locust.conf`` and ``./pyproject.toml [tool.locust]`` (its
``DEFAULT_CONFIG_FILES``; the later file wins a key) and ``LOCUST_*`` environment variables
(which win over the files; the command line wins over both). A team's tags, locustfile
arguments and user classes kept there go on working under loadkit, and so does a typical
``locust.conf`` naming the locustfile, host, users and spawn rate: loadkit puts those on Locust's
command line, which wins (the host in ``LOCUST_HOST``, which wins over the files and replaces
the user's variable: a password in it stays out of the process list), so they are said as
"overridden by loadkit" and recorded, not refused. loadkit reads the same files first (with
the same parsers: configargparse's for ``.conf``, ``tomllib`` as Locust's
``LocustTomlConfigParser`` does), says which it read, records them in the results, and refuses
a key or variable that would change the run loadkit measures and that it does not override
(``run-time``, ``json-file``, ``reset-stats``, …). What this reading cannot see (an
abbreviated key such as ``run = 5s``, which Locust's parser takes for ``--run-time``) the
plugin finds in Locust's parsed options (``plugin/launch_check.py``).

configargparse comes with Locust and imports neither Locust nor gevent.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from loadkit.engines.locust.passthrough import refusal
from loadkit.exceptions import ConfigError

CONFIG_FILES = ("~/.locust.conf", "locust.conf", "pyproject.toml")
"""Locust 2.47's ``DEFAULT_CONFIG_FILES``, in the order it reads them."""

ENV_OPTIONS: dict[str, str] = {
    "LOCUST_LOCUSTFILE": "--locustfile",
    "LOCUST_HOST": "--host",
    "LOCUST_USERS": "--users",
    "LOCUST_SPAWN_RATE": "--spawn-rate",
    "LOCUST_RUN_TIME": "--run-time",
    "LOCUST_CONFIG_USERS": "--config-users",
    "LOCUST_WEB_HOST": "--web-host",
    "LOCUST_WEB_HOST_DISPLAY_NAME": "--web-host-display-name",
    "LOCUST_WEB_PORT": "--web-port",
    "LOCUST_HEADLESS": "--headless",
    "LOCUST_AUTOSTART": "--autostart",
    "LOCUST_AUTOQUIT": "--autoquit",
    "LOCUST_HEADFUL": "--headful",
    "LOCUST_WEB_AUTH": "--web-auth",
    "LOCUST_WEB_LOGIN": "--web-login",
    "LOCUST_TLS_CERT": "--tls-cert",
    "LOCUST_TLS_KEY": "--tls-key",
    "LOCUST_USERCLASS_PICKER": "--class-picker",
    "LOCUST_BUILD_PATH": "--build-path",
    "LOCUST_LEGACY_UI": "--legacy-ui",
    "LOCUST_MODE_MASTER": "--master",
    "LOCUST_MASTER_BIND_HOST": "--master-bind-host",
    "LOCUST_MASTER_BIND_PORT": "--master-bind-port",
    "LOCUST_EXPECT_WORKERS": "--expect-workers",
    "LOCUST_EXPECT_WORKERS_MAX_WAIT": "--expect-workers-max-wait",
    "LOCUST_MODE_WORKER": "--worker",
    "LOCUST_PROCESSES": "--processes",
    "LOCUST_MASTER_NODE_HOST": "--master-host",
    "LOCUST_MASTER_NODE_PORT": "--master-port",
    "LOCUST_WEB_BASE_PATH": "--web-base-path",
    "LOCUST_TAGS": "--tags",
    "LOCUST_EXCLUDE_TAGS": "--exclude-tags",
    "LOCUST_CSV": "--csv",
    "LOCUST_CSV_FULL_HISTORY": "--csv-full-history",
    "LOCUST_PRINT_STATS": "--print-stats",
    "LOCUST_ONLY_SUMMARY": "--only-summary",
    "LOCUST_RESET_STATS": "--reset-stats",
    "LOCUST_HTML": "--html",
    "LOCUST_SKIP_LOG_SETUP": "--skip-log-setup",
    "LOCUST_LOGLEVEL": "--loglevel",
    "LOCUST_LOGFILE": "--logfile",
    "LOCUST_EXIT_CODE_ON_ERROR": "--exit-code-on-error",
    "LOCUST_STOP_TIMEOUT": "--stop-timeout",
    "LOCUST_ENABLE_OPENTELEMETRY": "--otel",
    "LOCUST_USER_CLASSES": "user classes",
}
"""Locust 2.47's environment variables → the option each sets (its parser's ``env_var``s, and
``LOCUST_USER_CLASSES``, the default of its user class names)."""

ENV_PREFIX = "LOCUST_"

Command = Literal["load", "ui", "worker"]
"""How loadkit starts Locust: a headless run (``loadkit load``), the web UI, or workers."""

UNUSED: dict[Command, frozenset[str]] = {
    # No web UI is started; --autostart is implied by --headless.
    "load": frozenset({"--web-host", "--web-port", "--autostart"}),
    # Without --headless, --headful changes nothing; --only-summary only quiets the console.
    "ui": frozenset({"--headful", "--only-summary"}),
    # A worker takes the host, users, spawn rate, run time and tags from its master with each
    # spawn, starts no web UI and waits for no workers.
    "worker": frozenset(
        {
            *("--host", "--users", "--spawn-rate", "--run-time", "--headless", "--headful"),
            *("--autostart", "--web-host", "--web-port", "--only-summary", "--expect-workers"),
            *("--expect-workers-max-wait", "--master-bind-host", "--master-bind-port"),
        }
    ),
}
"""Refused options that Locust does not use in a command's role: harmless in a config file."""


@dataclass(frozen=True)
class ConfigFile:
    """One of Locust's configuration files that exists, and the keys Locust takes from it."""

    path: str
    """As Locust names it (``locust.conf``, ``~/.locust.conf``, ``pyproject.toml``)."""
    keys: tuple[str, ...]
    overridden: tuple[str, ...] = ()
    """The keys loadkit's command line overrides (Locust never uses their values)."""


@dataclass(frozen=True)
class LocustConfig:
    """What Locust's configuration adds to loadkit's command line, by source."""

    files: tuple[ConfigFile, ...] = ()
    env: tuple[str, ...] = ()
    """Names of the ``LOCUST_*`` variables set (never their values: they may hold secrets)."""
    env_overridden: tuple[str, ...] = ()
    """The variables loadkit's command line overrides."""

    @property
    def empty(self) -> bool:
        """Nothing of Locust's own configuration will be read."""
        return not self.files and not self.env

    def to_results(self) -> dict[str, Any]:
        """For the results' config (``locust_config``, docs/results.md)."""
        files = []
        for file in self.files:
            entry: dict[str, Any] = {"path": file.path, "keys": list(file.keys)}
            if file.overridden:
                entry["overridden"] = list(file.overridden)
            files.append(entry)
        record: dict[str, Any] = {"files": files, "env": list(self.env)}
        if self.env_overridden:
            record["env_overridden"] = list(self.env_overridden)
        return record

    def notice(self) -> str:
        """One line saying what Locust will read besides loadkit's command line, and what of
        it loadkit's command line overrides."""
        parts = [f"{file.path} ({', '.join(file.keys) or 'no keys'})" for file in self.files]
        if self.env:
            parts.append("environment " + ", ".join(self.env))
        line = "Locust's own configuration is read too: " + "; ".join(parts)
        overridden = [key for file in self.files for key in file.overridden]
        overridden += self.env_overridden
        if overridden:
            line += "; overridden by loadkit: " + ", ".join(dict.fromkeys(overridden))
        return line


def read_locust_config(
    *, cwd: Path, environ: Mapping[str, str], home: Path | None = None
) -> LocustConfig:
    """The configuration files and ``LOCUST_*`` variables Locust started in ``cwd`` reads.

    A ``pyproject.toml`` without ``[tool.locust]`` gives Locust nothing and is left out. Raises
    ConfigError for a file Locust could not parse either.
    """
    files = []
    for name in CONFIG_FILES:
        if name.startswith("~"):
            base = home if home is not None else Path.home()
            path = base / name.removeprefix("~/")
        else:
            path = cwd / name
        if not path.is_file():
            continue
        keys = _keys(path, name)
        if keys is not None:
            files.append(ConfigFile(path=name, keys=keys))
    env = tuple(sorted(name for name in environ if name.startswith(ENV_PREFIX)))
    return LocustConfig(files=tuple(files), env=env)


def _keys(path: Path, name: str) -> tuple[str, ...] | None:
    """The keys Locust takes from one file (None: a pyproject.toml with no [tool.locust])."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{name}: Locust reads this file and loadkit cannot: {exc}") from None
    if name.endswith(".toml"):
        try:
            document = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{name}: not valid TOML ({exc}); Locust reads it too") from None
        section = document.get("tool", {}).get("locust")
        if not isinstance(section, dict):
            return None
        # As LocustTomlConfigParser: a key whose value is None is dropped.
        return tuple(key for key, value in section.items() if value is not None)
    import configargparse  # type: ignore[import-untyped]  # Locust's own dependency

    try:
        items = configargparse.DefaultConfigFileParser().parse(text.splitlines())
    except configargparse.ConfigFileParserException as exc:
        raise ConfigError(f"{name}: {exc}; Locust reads it too: fix or remove it") from None
    return tuple(str(key) for key in items)


def check_locust_config(
    config: LocustConfig, *, command: Command, overridden: frozenset[str]
) -> LocustConfig:
    """``config`` with the keys and variables that loadkit's command line ``overridden`` (its
    long options, ``launch.options_loadkit_sets``) takes over marked as such; a ConfigError
    naming the file and key (or the variable) of the first setting that would change the run
    loadkit measures, and what to use instead."""

    def overrides(option: str, where: str, undo: str) -> bool:
        """Whether loadkit's command line takes ``option`` over; a ConfigError when it would
        change the run and is not taken over."""
        if option in overridden:
            return True
        found = refusal(option)
        if found is not None and found.option not in UNUSED[command]:
            raise ConfigError(
                f"{where} ({found.option}) would change the run loadkit measures: "
                f"{found.advice}, and {undo}"
            )
        return False

    files = []
    for file in config.files:
        # configargparse turns each key into `--key=value` on Locust's command line.
        taken = tuple(
            key
            for key in file.keys
            if overrides(
                key if key.startswith("--") else f"--{key}",
                f"{file.path}: key {key!r}",
                "remove the key (or run from another folder)",
            )
        )
        files.append(ConfigFile(path=file.path, keys=file.keys, overridden=taken))
    env_taken = tuple(
        name
        for name in config.env
        if (sets := ENV_OPTIONS.get(name)) is not None
        and sets.startswith("--")
        and overrides(sets, f"environment variable {name}", f"unset {name}")
    )
    return LocustConfig(files=tuple(files), env=config.env, env_overridden=env_taken)

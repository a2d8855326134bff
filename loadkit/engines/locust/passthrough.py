"""Locust's own options given through loadkit: which ones loadkit refuses, and why.

``loadkit load … -- <Locust args>`` hands everything after ``--`` to Locust (a locustfile's own
arguments, ``--tags``, user class names, ``--loglevel``, …), and Locust's configuration files and
``LOCUST_*`` variables reach it too (``locust_config``). An option that loadkit sets itself, or
that would make Locust's run differ from the one loadkit measures, is refused here as it is
spelled: ``--run-time 5s``, ``--run-time=5s``, ``-t 5s``, ``-t5s``.

An abbreviation (``--run 5s``) is not refused here: argparse takes it for ``--run-time`` only
when the locustfile adds no option of that exact name (a locustfile's own ``--user`` wins over
Locust's ``--users``), which only Locust's parser knows. The plugin compares Locust's parsed
options with what loadkit passed before the test starts (``plugin/launch_check.py``) and stops
Locust there, exit 2 naming the option and what to use instead. Abbreviations of the options
Locust acts on before that check (``ACTS_BEFORE_THE_PLUGIN``: those that print and exit,
``--config``, ``--processes``, ``--worker``, ``--master*``: ``--lis``, ``--proc``) are refused
here still.

Anything else is Locust's to judge; when Locust (or the plugin) rejects it, with argparse's
``<prog>: error: …`` and exit 2, ``locust_usage_error`` finds that line in its output.

The option names are Locust 2.47's (``locust/argument_parser.py``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from loadkit.exceptions import ConfigError

_OUTPUT = "--out (loadkit's results file)"
_HEADLESS = "`loadkit load` (headless) or `loadkit ui` (the web UI)"
_PRINTS = "it prints and exits without a run; run `locust -f <scenario> {flag}` for that"
_MASTER = "`loadkit load --master` (--expect-workers, --master-bind-host, --master-port)"

REFUSED: dict[str, str] = {
    "--locustfile": "--scenario",
    "--config": "the options after `--` (loadkit reads Locust's configuration files itself)",
    "--host": "--host or the URL argument",
    "--users": "--concurrency",
    "--spawn-rate": "--spawn-rate",
    "--run-time": "--duration",
    "--headless": _HEADLESS,
    "--headful": _HEADLESS,
    "--autostart": _HEADLESS,
    "--autoquit": _HEADLESS,
    "--reset-stats": "--spawn-rate for the ramp-up (loadkit measures the whole run)",
    "--json": _OUTPUT,
    "--json-file": _OUTPUT,
    "--csv": _OUTPUT,
    "--csv-full-history": _OUTPUT,
    "--html": _OUTPUT,
    "--only-summary": "--quiet",
    "--exit-code-on-error": "`loadkit gate` (its criteria judge errors)",
    "--processes": "--processes",
    "--master": _MASTER,
    "--master-bind-host": "--master-bind-host",
    "--master-bind-port": "--master-port",
    "--master-host": "--master-host (with --worker)",
    "--master-port": "--master-port",
    "--expect-workers": "--expect-workers",
    "--expect-workers-max-wait": "--expect-workers-max-wait",
    "--worker": "`loadkit load --worker`",
    "--web-host": "`loadkit ui` (it serves on 127.0.0.1 only)",
    "--web-port": "--web-port of `loadkit ui`",
    "--help": _PRINTS,
    "--version": _PRINTS,
    "--list": _PRINTS,
    "--show-task-ratio": _PRINTS,
    "--show-task-ratio-json": _PRINTS,
}
"""Locust's long options that loadkit refuses → what to use instead."""

SHORT: dict[str, str] = {
    "-f": "--locustfile",
    "-H": "--host",
    "-u": "--users",
    "-r": "--spawn-rate",
    "-t": "--run-time",
    "-P": "--web-port",
    "-h": "--help",
    "-V": "--version",
    "-l": "--list",
}
"""Locust's short options that stand for a refused long one."""

PLUGIN_PREFIX = "--loadkit-"
"""loadkit's plugin options (``--loadkit-out``, ``--loadkit-duration``, …): set by loadkit."""
PLUGIN_OPTIONS = PLUGIN_PREFIX + "*"

LOCUST_OPTIONS = frozenset(
    {
        *REFUSED,
        *("--config-users", "--web-host-display-name", "--web-auth", "--web-login"),
        *("--tls-cert", "--tls-key", "--class-picker", "--build-path", "--legacy-ui"),
        *("--enable-rebalancing", "--expect-slaves", "--slave", "--web-base-path", "--tags"),
        *("--exclude-tags", "--print-stats", "--skip-log-setup", "--loglevel", "--logfile"),
        *("--stop-timeout", "--equal-weights", "--profile", "--otel"),
    }
)
"""Every long option of Locust 2.47: an exact one is never taken for an abbreviation."""

ACTS_BEFORE_THE_PLUGIN = frozenset(
    {
        *(option for option, instead in REFUSED.items() if instead == _PRINTS),
        *("--processes", "--worker", "--master", "--master-bind-host", "--master-bind-port"),
        *("--master-host", "--master-port", "--autoquit", "--config"),
    }
)
"""Options Locust acts on before the plugin can check its parsed options: it prints and exits
(``--autoquit`` without ``--autostart`` too), reads another configuration file, forks its
workers, listens for workers or connects to a master."""

DESTS: dict[str, str] = {
    "host": "--host",
    "num_users": "--users",
    "spawn_rate": "--spawn-rate",
    "run_time": "--run-time",
    "headless": "--headless",
    "autostart": "--autostart",
    "autoquit": "--autoquit",
    "web_host": "--web-host",
    "web_port": "--web-port",
    "reset_stats": "--reset-stats",
    "json": "--json",
    "json_file": "--json-file",
    "csv_prefix": "--csv",
    "stats_history_enabled": "--csv-full-history",
    "html_file": "--html",
    "only_summary": "--only-summary",
    "exit_code_on_error": "--exit-code-on-error",
    "processes": "--processes",
    "master": "--master",
    "master_bind_host": "--master-bind-host",
    "master_bind_port": "--master-bind-port",
    "master_host": "--master-host",
    "master_port": "--master-port",
    "expect_workers": "--expect-workers",
    "expect_workers_max_wait": "--expect-workers-max-wait",
    "worker": "--worker",
}
"""Locust's parsed option (its ``dest``) → the refused option that sets it."""

_LONG = re.compile(r"--[^=]+")
_ARGPARSE_ERROR = re.compile(r"[\w.-]+: error: ")
"""argparse's ``<prog>: error: …`` (``locust``, or ``__main__.py`` under ``python -m locust``)."""


@dataclass(frozen=True)
class Refusal:
    """An option loadkit will not hand to Locust: which one, and what to use instead."""

    given: str
    """As it was spelled (``-t``, ``--run``)."""
    option: str
    """Locust's option it stands for (``--run-time``)."""
    instead: str

    def describe(self) -> str:
        """``-t (Locust's --run-time)``: the option as given, and Locust's name when it differs."""
        if self.given == self.option:
            return self.given
        if self.option == PLUGIN_OPTIONS:
            return f"{self.given} (loadkit's plugin option)"
        return f"{self.given} (Locust's {self.option})"

    @property
    def advice(self) -> str:
        """What to do instead, in a few words."""
        if self.instead == _PRINTS:
            return self.instead.format(flag=self.option)
        if self.option == PLUGIN_OPTIONS:
            return "loadkit sets it itself"
        return f"loadkit sets it itself; use {self.instead}"


def refusal(token: str) -> Refusal | None:
    """The refusal for one command-line token (an option, with or without its value), or None
    when loadkit lets Locust judge it."""
    if token.startswith("--"):
        match = _LONG.match(token)
        if match is None:
            return None
        name = match.group(0)
        return _long_refusal(name)
    if token.startswith("-") and len(token) >= 2:
        # A short option, its value possibly glued (-t5s, -u10): the letter decides. Locust's
        # only short options that take no value (-h, -V, -l) are refused themselves, so no
        # cluster of short flags can hide a refused one after an allowed one.
        short = token[:2]
        if short in SHORT:
            option = SHORT[short]
            return Refusal(short, option, REFUSED[option])
    return None


def _long_refusal(name: str) -> Refusal | None:
    if name in REFUSED:
        return Refusal(name, name, REFUSED[name])
    if name.startswith(PLUGIN_PREFIX.rstrip("-")):
        # loadkit's namespace: any shorter prefix is ambiguous among the --loadkit-* options.
        return Refusal(name, PLUGIN_OPTIONS, "")
    if name in LOCUST_OPTIONS or len(name) < 3:
        return None
    # An abbreviation is for Locust's parser to resolve (a locustfile's option of that exact
    # name wins) and for the plugin to check; but one that can only stand for an option Locust
    # acts on before the plugin's check (--lis, --proc) is refused here still.
    matches = sorted(option for option in LOCUST_OPTIONS if option.startswith(name))
    if len(matches) == 1 and matches[0] in ACTS_BEFORE_THE_PLUGIN:
        return Refusal(name, matches[0], REFUSED[matches[0]])
    return None


def check_locust_args(args: Sequence[str]) -> tuple[str, ...]:
    """``args`` (what came after ``--``) when loadkit may hand them to Locust; a ConfigError
    naming the first refused option and what to use instead otherwise."""
    for token in args:
        if token == "--":
            break  # argparse reads everything after it as user class names
        found = refusal(token)
        if found is not None:
            raise ConfigError(
                f"{found.describe()} cannot be passed to Locust after `--`: {found.advice}"
            )
    return tuple(args)


def locust_usage_error(returncode: int, output: str) -> str | None:
    """The line(s) in which Locust refused its command line or configuration, in one line, or
    None when it exited for another reason.

    Locust's argparse exits 2 with ``<prog>: error: …`` (a "Did you mean" line may follow); an
    unknown user class name exits 1 with ``Unknown User(s): …``.
    """
    lines = [line.strip() for line in output.splitlines()]
    if returncode == 2:
        for index in range(len(lines) - 1, -1, -1):
            if _ARGPARSE_ERROR.match(lines[index]):
                after = lines[index + 1] if index + 1 < len(lines) else ""
                hint = f" {after}" if after.startswith("Did you mean") else ""
                return lines[index] + hint
    if returncode == 1:
        for line in reversed(lines):
            found = line.find("Unknown User(s):")
            if found >= 0:
                return line[found:]
    return None

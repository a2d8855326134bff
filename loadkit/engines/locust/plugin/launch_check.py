"""Locust's parsed options against what loadkit's launch needs: checked once, before any test.

loadkit refuses Locust's options that it sets itself, or that would change the run it measures,
as they are spelled after ``--`` (``passthrough``) and as keys of Locust's configuration files
(``locust_config``). What only Locust's parser can tell is caught here: an abbreviation
(``--run 5s`` is ``--run-time`` unless the locustfile adds an option of that exact name, which
then wins), or a configuration key or variable the reading before the run did not recognise.
The launch record (``--loadkit-launch``) carries the parsed values loadkit's command line sets
(``LocustLaunch.expected_options``); a difference stops Locust with exit 2 and one line in
argparse's form, ``loadkit: error: …``, which loadkit's launcher reports as a usage error
(``passthrough.locust_usage_error``).

Options loadkit passes in Locust's environment because they may hold secrets (the ``url``
scenario's path, headers and body) are named in the record with their variables
(``from_env``), never with their values: they are compared with what the variables hold in
Locust's own environment. configargparse skips a variable whose option is on the command line,
so a ``--url-header`` after ``--`` would otherwise drop the headers loadkit was given unseen.
The host, passed in ``LOCUST_HOST``, is compared with that variable too: the record carries it
masked, and a host with another password masks alike.

Pure but for ``check_launch``, which writes that line and exits; imports no Locust.
"""

from __future__ import annotations

import json
import os
from argparse import Namespace
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from loadkit.engines.locust.locust_config import ENV_OPTIONS
from loadkit.engines.locust.passthrough import DESTS, REFUSED, Refusal
from loadkit.engines.locust.usage_error import refuse
from loadkit.url_credentials import mask_password

HOST_VARIABLE = "LOCUST_HOST"
"""Where loadkit passes the target to Locust (``LocustLaunch.environ``): the host the plugin
compares Locust's with, as it is, password and all."""


@dataclass(frozen=True)
class Mismatch:
    """One of Locust's options set otherwise than loadkit's run needs, and by what."""

    option: str
    """Locust's option (``--run-time``)."""
    source: str
    """What set it, as far as the launch record tells (``\\`--run\\` after \\`--\\```)."""
    variable: str | None = None
    """The variable loadkit passed the option in (``LOCUST_URL_HEADER``), None when it passed
    it on the command line."""

    def describe(self) -> str:
        """One line: what set which option, and what to use instead."""
        if self.variable is not None:
            advice = (
                f"in a URL run loadkit alone sets it ({self.variable}): give the path and query "
                "in the URL, headers with --header, the body with --body"
            )
        else:
            advice = Refusal(self.option, self.option, REFUSED[self.option]).advice
        return (
            f"{self.source} sets Locust's {self.option}, which would change the run loadkit "
            f"measures: {advice}"
        )


def launch_mismatch(
    options: Namespace, launch: Mapping[str, Any], environ: Mapping[str, str] | None = None
) -> Mismatch | None:
    """The first of Locust's parsed ``options`` that differs from the launch record's
    ``expect``, or from what the variables its ``from_env`` names hold in ``environ`` (Locust's
    environment), or None (also when the record expects nothing)."""
    expected = launch.get("expect")
    if not isinstance(expected, dict):
        return None
    forked = getattr(options, "worker", False) and getattr(options, "processes", None)
    if forked and expected.get("worker") is False:
        # A worker forked by --processes (Locust's main made it one): the parent checks the
        # options they share, once.
        return None
    from_env = launch.get("from_env")
    for dest, variable in (from_env if isinstance(from_env, dict) else {}).items():
        if not isinstance(variable, str) or not hasattr(options, dest):
            continue
        if _as_the_variable_sets_it(getattr(options, dest), (environ or {}).get(variable)):
            continue
        option = "--" + dest.replace("_", "-")
        return Mismatch(option=option, source=_source(option, launch, options), variable=variable)
    for dest, value in expected.items():
        if dest not in DESTS or not hasattr(options, dest):
            continue
        parsed = getattr(options, dest)
        if dest == "host" and isinstance(parsed, str):
            if _as_loadkit_set_the_host(parsed, value, environ):
                continue
        elif parsed == value:
            continue
        option = DESTS[dest]
        if dest == "headless" and value is True:
            option = "--headful"  # loadkit passed --headless: only --headful undoes it
        return Mismatch(option=option, source=_source(option, launch, options))
    return None


def _as_loadkit_set_the_host(
    parsed: str, recorded: object, environ: Mapping[str, str] | None
) -> bool:
    """Whether Locust's parsed host is the one loadkit passed in ``LOCUST_HOST``, password
    included: the record carries it masked (it is on the command line), which another password
    would match too; only without that variable (a caller that gives no environment) is the
    masked record all there is to compare with."""
    variable = (environ or {}).get(HOST_VARIABLE)
    if variable is not None:
        return parsed == variable
    return mask_password(parsed) == recorded


def _as_the_variable_sets_it(parsed: object, text: str | None) -> bool:
    """Whether Locust's parsed value is what configargparse makes of the variable's ``text``
    (None: unset, so the option must be too): a string option takes it as it is, an append
    option (a list) one item, or each item of a JSON list."""
    if text is None:
        return parsed is None or parsed == []
    if parsed == text:
        return True
    if not isinstance(parsed, list):
        return False
    if text.startswith("[") and text.endswith("]"):
        try:
            items: object = json.loads(text)
        except ValueError:
            return False
        return parsed == items
    return parsed == [text]


def _source(option: str, launch: Mapping[str, Any], options: Namespace) -> str:
    """What most likely set ``option``, in Locust's precedence: the command line after ``--``
    (an abbreviation: the exact spelling was refused before), a ``LOCUST_*`` variable, the
    last configuration file with a key that stands for it."""
    args = launch.get("locust_args")
    for arg in args if isinstance(args, list) else []:
        if not isinstance(arg, str) or arg == "--":
            break
        name = arg.split("=", 1)[0]
        # An abbreviation that is the locustfile's own option names that option: it wins.
        own = name != option and hasattr(options, name[2:].replace("-", "_"))
        if name.startswith("--") and len(name) > 2 and option.startswith(name) and not own:
            return f"`{name}` after `--`"
    config = launch.get("locust_config")
    config = config if isinstance(config, dict) else {}
    for name in config.get("env", []):
        if ENV_OPTIONS.get(name) == option:
            return f"environment variable {name}"
    for file in reversed(config.get("files", [])):
        for key in file.get("keys", []):
            spelled = key if key.startswith("--") else f"--{key}"
            if len(spelled) > 2 and option.startswith(spelled):
                return f"{file.get('path')}: key {key!r}"
    return "Locust's configuration"


def check_launch(options: Namespace | None) -> None:
    """Exit Locust (code 2, one ``loadkit: error: …`` line on stderr) when its parsed options
    differ from what loadkit's launch needs; nothing when loadkit did not start it (no
    ``--loadkit-launch``: the plugin loaded by hand)."""
    text = getattr(options, "loadkit_launch", None) if options is not None else None
    if options is None or not text:
        return
    try:
        launch = json.loads(text)
    except ValueError:
        return
    if not isinstance(launch, dict):
        return
    found = launch_mismatch(options, launch, os.environ)
    if found is None:
        return
    refuse(found.describe())

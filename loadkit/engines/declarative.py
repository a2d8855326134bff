"""A declarative load scenario (``[scenarios.NAME]``), checked and described for either engine.

Pure: the environment is handed in. The native engine runs the description ``describe`` makes
(``engines/native/scenario.py``; a native master sends it in each worker's plan);
``scenarios/declarative.py`` runs the same one on Locust: scenarios never import loadkit
(DESIGN.md, Boundaries), so loadkit hands it the scenario as that JSON description in a file
of the run's own (``--declarative-file``). A Locust
master's locustfile reads it into ``--declarative-spec``, one of the options a master sends its
workers with each spawn, so workers elsewhere get the same one.

Before a run, every ``{name}`` must be one the locustfile makes (``LOAD_VALUES``) or one a step
saves, and every ``${ENV_VAR}`` must be set, or the run is refused (``ConfigError`` naming the
scenario, the request and the key). Secrets stay ``${NAME}`` in the description: the locustfile
reads them from its own environment, so they are never on a command line nor in the results.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

from loadkit.config import AcceptanceConfig, DeclarativeScenario, ScenarioRequest, ScenarioStep
from loadkit.engines.smoke_flow import placeholders, places
from loadkit.engines.templates import names_in, read_secrets
from loadkit.exceptions import ConfigError

DESCRIPTION_FORMAT = "loadkit.declarative/1"
"""What ``scenarios/declarative.py`` checks it was handed (the JSON's ``format``)."""
USER_VALUES = frozenset({"email", "password"})
"""Values each simulated user makes once: an account of its own (for a register step)."""
FRESH_VALUES = frozenset({"new_email", "uuid"})
"""Values made anew at each use."""
LOAD_VALUES = USER_VALUES | FRESH_VALUES
_UNSENDABLE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
"""Control characters (tab aside): no request line or header can carry them."""


def declarative_scenario(
    config: AcceptanceConfig | None, name: str
) -> tuple[str, DeclarativeScenario] | None:
    """The scenario ``name`` of ``config``'s ``[scenarios]`` (None: not a declarative one)."""
    if config is None or name not in config.scenarios:
        return None
    return name, config.scenarios[name]


def describe(name: str, scenario: DeclarativeScenario, environ: Mapping[str, str]) -> str:
    """The JSON description ``scenarios/declarative.py`` runs; a ``ConfigError`` for a name no
    step provides or a variable ``environ`` lacks."""
    check_names(name, scenario)
    read_secrets(env_variables(name, scenario), environ)
    check_sendable(name, scenario, environ)
    document = {
        "format": DESCRIPTION_FORMAT,
        "name": name,
        "setup": [_request(step) for step in scenario.setup],
        "requests": [_request(request) for request in scenario.requests],
    }
    return json.dumps(document, separators=(",", ":"))


def secret_names(description: str) -> tuple[str, ...]:
    """The ``${ENV_VAR}``s a description (``describe``'s JSON) uses: the values to mask."""
    return tuple(sorted(names_in(description)[1]))


def check_names(name: str, scenario: DeclarativeScenario) -> None:
    """Every ``{name}`` is made by the user or saved: by an earlier setup step, or (in the mix)
    by any request or step, a request then waiting until one has saved it; and every request
    of the mix can run at last, its values saved by steps or by requests that can run before
    it (never by itself alone: it would wait for ever, its weight silently lost)."""
    known = set(LOAD_VALUES)
    for where, step in _setup(name, scenario):
        _known(where, step, known)
        known |= set(step.save)
    first = set(known)
    known |= {saved for request in scenario.requests for saved in request.save}
    for where, request in _mix(name, scenario):
        _known(where, request, known)
    if all(placeholders(request) - first for request in scenario.requests):
        # No request could ever be the first a user sends: its iterations would send nothing.
        raise ConfigError(
            f"scenarios.{name}: every request uses a value only a request saves, so none can "
            "be sent first; save one of them in a setup step ([[scenarios."
            f"{name}.setup]]), or add a request that needs none"
        )
    reachable = _reachable(scenario.requests, first)
    for where, request in _mix(name, scenario):
        waiting = sorted(placeholders(request) - reachable)
        if waiting:
            raise ConfigError(
                f"{where} can never be sent: it uses {{{waiting[0]}}}, and no step or request "
                "that can run before it saves that (its own save comes only after it is sent); "
                f"save {{{waiting[0]}}} in a setup step ([[scenarios.{name}.setup]]) or in a "
                "request that can run first"
            )


def _reachable(requests: tuple[ScenarioRequest, ...], first: set[str]) -> set[str]:
    """The values a user can ever have: ``first``, then those saved by requests whose own
    values it has, until no request adds one (a fixpoint)."""
    have = set(first)
    pending = list(requests)
    while True:
        runnable = [request for request in pending if placeholders(request) <= have]
        if not runnable:
            return have
        for request in runnable:
            have |= set(request.save)
            pending.remove(request)


def env_variables(name: str, scenario: DeclarativeScenario) -> dict[str, str]:
    """Each ``${ENV_VAR}`` of the scenario, with the first place it is used (for the error)."""
    found: dict[str, str] = {}
    for where, request in [*_setup(name, scenario), *_mix(name, scenario)]:
        for key, text in places(request):
            for variable in sorted(names_in(text)[1]):
                found.setdefault(variable, f"{where}, key {key}")
    return found


def check_sendable(name: str, scenario: DeclarativeScenario, environ: Mapping[str, str]) -> None:
    """A ``ConfigError`` naming the place and the variable (never its value) when a
    ``${ENV_VAR}`` in a path or a header holds a control character: no request could be sent,
    and the client's error would quote the secret. The query, a form and JSON are encoded."""
    for where, request in [*_setup(name, scenario), *_mix(name, scenario)]:
        for key, text in places(request):
            if key != "path" and not key.startswith("headers."):
                continue
            for variable in sorted(names_in(text)[1]):
                if _UNSENDABLE.search(environ.get(variable, "")):
                    raise ConfigError(
                        f"{where}, key {key} uses ${{{variable}}}, but the environment variable "
                        f"{variable} holds a line break or another control character (a "
                        "trailing newline from a file?); strip it"
                    )


def _setup(name: str, scenario: DeclarativeScenario) -> Iterator[tuple[str, ScenarioStep]]:
    for index, step in enumerate(scenario.setup):
        yield f"scenarios.{name}.setup[{index}] ({step.endpoint_name})", step


def _mix(name: str, scenario: DeclarativeScenario) -> Iterator[tuple[str, ScenarioRequest]]:
    for index, request in enumerate(scenario.requests):
        yield f"scenarios.{name}.requests[{index}] ({request.endpoint_name})", request


def _known(where: str, request: ScenarioStep, known: set[str]) -> None:
    unknown = sorted(placeholders(request) - known)
    if not unknown:
        return
    missing = unknown[0]
    key = next(key for key, text in places(request) if missing in names_in(text)[0])
    listed = ", ".join("{" + n + "}" for n in sorted(known))
    raise ConfigError(
        f"{where}: unknown placeholder {{{missing}}} in key {key}: neither made by each user "
        f'nor saved by a step (save = {{ {missing} = "<JMESPath>" }}); known: {listed}'
    )


def _request(request: ScenarioStep) -> dict[str, Any]:
    described: dict[str, Any] = {
        "name": request.endpoint_name,
        "method": request.method,
        "path": request.path,
        "query": dict(request.query),
        "headers": dict(request.headers),
        "statuses": list(request.statuses),
        "save": dict(request.save),
    }
    if request.json_body is not None:
        described["json"] = request.json_body
    if request.form is not None:
        described["form"] = dict(request.form)
    if isinstance(request, ScenarioRequest):
        described["weight"] = request.weight
    return described

"""A declarative scenario on the native engine: its requests compiled, and each simulated user's
progress through it. Pure (the pool, ``scenario_pool.py``, does the I/O).

The semantics are the Locust path's (``scenarios/declarative.py``, ``declarative_spec.py``):

- a user runs the setup steps once, in order; a step that fails ends that round, and the
  user's next iteration sends that step again, then the ones after it (the steps that passed
  stay done, their saved values kept); an iteration that runs setup steps sends no request of
  the mix;
- once the setup is done, each iteration sends one request of the mix, chosen at random in
  proportion to its weight among those whose values the user has (one that needs a value no
  request has saved yet waits until one has);
- a response passes when its status is one of the request's statuses and every value it saves
  is in its JSON body (JMESPath); then the values are saved, all or none.

``compile_scenario`` reads the description ``loadkit.engines.declarative.describe`` wrote (the
one the Locust path's locustfile reads, and a native master sends its workers), with the
``${ENV_VAR}``s of this process's environment.
"""

from __future__ import annotations

import bisect
import json
import random
import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jmespath
import jmespath.parser

from loadkit.engines.declarative import DESCRIPTION_FORMAT
from loadkit.engines.native.request_bytes import TRACE_HEADER, endpoint_name
from loadkit.engines.native.request_template import FRESH_VALUES, RequestTemplate
from loadkit.engines.templates import names_in, read_secrets, strings_in
from loadkit.exceptions import ConfigError

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"})


@dataclass(frozen=True, eq=False)
class ScenarioCall:
    """One request of the scenario, compiled: how it is sent, counted and judged."""

    endpoint: str
    """What it is recorded under, as the Locust path names it (``POST sign in``)."""
    template: RequestTemplate
    statuses: frozenset[int]
    save: tuple[tuple[str, jmespath.parser.ParsedResult], ...]
    needs: frozenset[str]
    """The ``{name}``s it uses that must have been made or saved first."""
    weight: int
    setup_index: int | None
    """Its place in the setup; None: a request of the mix."""
    idempotent: bool
    bodiless: bool
    """HEAD: its responses have no body, whatever their head says."""


@dataclass(frozen=True)
class CompiledScenario:
    """A scenario ready to run: its name, setup steps and weighted mix."""

    name: str
    setup: tuple[ScenarioCall, ...]
    requests: tuple[ScenarioCall, ...]


def compile_scenario(
    description: str,
    environ: Mapping[str, str],
    *,
    host: str,
    trace_header: str = TRACE_HEADER,
    base_path: str = "",
) -> CompiledScenario:
    """The scenario ``description`` holds (``describe``'s JSON), its secrets read from
    ``environ``, its requests for ``host`` (the Host header) carrying ``trace_header``, their
    paths after ``base_path`` (the target's: ``scenario_base_path``).

    A ``ConfigError`` names what is wrong: not a description, a variable not set here, a secret
    no header can carry (its value never quoted), a header the engine writes itself."""
    try:
        document = json.loads(description)
    except ValueError:
        document = None
    if not isinstance(document, dict) or document.get("format") != DESCRIPTION_FORMAT:
        raise ConfigError(f"not a declarative scenario: its format must be {DESCRIPTION_FORMAT!r}")
    name = str(document.get("name", "declarative"))
    items = [("setup", i, item) for i, item in enumerate(document.get("setup", []))]
    items += [("requests", i, item) for i, item in enumerate(document.get("requests", []))]
    wanted: dict[str, str] = {}
    for part, index, item in items:
        for text in _texts(item):
            for variable in sorted(names_in(text)[1]):
                wanted.setdefault(variable, f"scenarios.{name}.{part}[{index}] ({item['name']})")
    found = read_secrets(wanted, environ).values
    calls = {
        part: tuple(
            _call(f"scenarios.{name}.{part}[{index}] ({item['name']})", item, found, host,
                  trace_header, base_path, setup_index=index if part == "setup" else None)
            for p, index, item in items
            if p == part
        )
        for part in ("setup", "requests")
    }  # fmt: skip
    if not calls["requests"]:
        raise ConfigError(f"scenarios.{name}: a declarative scenario needs at least one request")
    return CompiledScenario(name=name, setup=calls["setup"], requests=calls["requests"])


def _texts(item: Mapping[str, Any]) -> list[str]:
    texts = [str(item["path"]), *item.get("headers", {}).values()]
    texts += [v for v in item.get("query", {}).values() if isinstance(v, str)]
    texts += [v for v in (item.get("form") or {}).values() if isinstance(v, str)]
    texts += list(strings_in(item.get("json")))
    return texts


def _call(
    where: str,
    item: Mapping[str, Any],
    found: Mapping[str, str],
    host: str,
    trace_header: str,
    base_path: str,
    *,
    setup_index: int | None,
) -> ScenarioCall:
    method = str(item.get("method", "GET")).upper()
    template = RequestTemplate(
        where=where,
        method=method,
        path=str(item["path"]),
        query=item.get("query", {}),
        headers=item.get("headers", {}),
        json_body=item.get("json"),
        has_json="json" in item,
        form=item.get("form"),
        secrets=found,
        host=host,
        trace_header=trace_header,
        base_path=base_path,
    )
    return ScenarioCall(
        endpoint=endpoint_name(method, str(item["name"])),
        template=template,
        statuses=frozenset(int(status) for status in item["statuses"]),
        save=tuple((key, jmespath.compile(path)) for key, path in item.get("save", {}).items()),
        needs=template.names - FRESH_VALUES,
        weight=int(item.get("weight", 1)) if setup_index is None else 0,
        setup_index=setup_index,
        idempotent=method in IDEMPOTENT_METHODS,
        bodiless=method == "HEAD",
    )


def judge(
    call: ScenarioCall, status: int, body: bytes | None, values: dict[str, Any]
) -> str | None:
    """Why the response fails (its status not one of the call's, a value to save not in its
    JSON body), else None, having saved the call's values into ``values``. The words never
    hold a value sent or received (the Locust path's ``judge``)."""
    if status not in call.statuses:
        expected = " or ".join(str(s) for s in sorted(call.statuses))
        return f"expected status {expected}, got {status}"
    if not call.save:
        return None
    try:
        document = json.loads(body or b"null")
    except ValueError:
        return f"cannot save {', '.join(name for name, _ in call.save)}: the body is not JSON"
    saved: dict[str, Any] = {}
    for name, path in call.save:
        value = path.search(document)
        if value is None:
            return f"cannot save {name}: `{path.expression}` is not in the body"
        saved[name] = value
    values.update(saved)
    return None


class ScenarioUser:
    """One simulated user: its values, how far its setup got, and which request comes next."""

    __slots__ = ("_cumulative", "_mix", "_mix_for", "_random", "done", "scenario", "values")

    def __init__(self, scenario: CompiledScenario, chooser: random.Random) -> None:
        """A user with an account of its own (``{email}``, ``{password}``), choosing its
        requests with ``chooser``."""
        self.scenario = scenario
        self._random = chooser
        self.values: dict[str, Any] = {
            "email": f"load-{uuid.uuid4().hex}@loadkit.test",
            "password": f"load-{secrets.token_hex(12)}",
        }
        self.done = 0
        """How many setup steps have passed, in order."""
        self._mix_for = -1
        self._mix: tuple[ScenarioCall, ...] = ()
        self._cumulative: list[int] = []

    @property
    def set_up(self) -> bool:
        """Whether every setup step has passed."""
        return self.done == len(self.scenario.setup)

    def first(self) -> ScenarioCall:
        """The first request of this user's next iteration: the setup step to send (again),
        else one of the mix, by weight, among those whose values the user has."""
        setup = self.scenario.setup
        if self.done < len(setup):
            return setup[self.done]
        values = self.values
        if len(values) != self._mix_for:  # saved names only ever grow: a new one, a new mix
            self._mix_for = len(values)
            have = values.keys()
            self._mix = tuple(r for r in self.scenario.requests if r.needs <= have)
            total, self._cumulative = 0, []
            for request in self._mix:
                total += request.weight
                self._cumulative.append(total)
        cumulative = self._cumulative
        # Every scenario has a request the set-up user can send (``check_names``).
        index = bisect.bisect_right(cumulative, self._random.random() * cumulative[-1])
        return self._mix[min(index, len(cumulative) - 1)]

    def after(self, call: ScenarioCall, passed: bool) -> ScenarioCall | None:
        """What the same iteration sends after ``call`` (``passed``: its response passed): the
        next setup step while the steps pass, else nothing (the iteration is over)."""
        if call.setup_index is None or not passed:
            return None
        self.done = call.setup_index + 1
        setup = self.scenario.setup
        return setup[self.done] if self.done < len(setup) else None

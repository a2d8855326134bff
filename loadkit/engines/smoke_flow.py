"""A smoke flow as the runner runs it: setup steps in order, then checks, every name resolved.

Pure. ``plan_flow`` reads ``[smoke]``: checks written before flows existed (no ``setup``
anywhere) get the account and items they relied on as ordinary steps (the bundled service's
register, login and item steps, ``config.DEFAULT_SMOKE_SETUP``), and ``auth = true`` becomes a
bearer header; then every ``{name}`` must be a value the run makes or an earlier step saves, or
the flow is refused (``ConfigError`` naming the step, the key and the name) before any request.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from loadkit.config import (
    DEFAULT_SMOKE_SETUP,
    SmokeCheck,
    SmokeConfig,
    SmokeRequest,
    SmokeStep,
    bundled_item_step,
)
from loadkit.engines.templates import names_in, strings_in
from loadkit.exceptions import ConfigError

RUN_VALUES = frozenset({"email", "password", "run_id"})
"""Values the run makes once: an account of its own (``{email}``, ``{password}``), its id."""
FRESH_VALUES = frozenset({"new_email", "uuid"})
"""Values made anew at each use."""
BUILT_IN = RUN_VALUES | FRESH_VALUES
BEARER = "Bearer {token}"


@dataclass(frozen=True)
class Flow:
    """What the runner does: ``setup`` in order, then each check's own setup, then the checks
    at once."""

    preflight_path: str
    setup: tuple[SmokeStep, ...]
    checks: tuple[SmokeCheck, ...]

    def shared_names(self) -> frozenset[str]:
        """Names the setup saves or relies on (its account): a check that uses one cannot run
        when the setup failed."""
        names: set[str] = set()
        for step in self.setup:
            names |= placeholders(step) | set(step.save)
        return frozenset(names - FRESH_VALUES)

    def needs_setup(self, check: SmokeCheck) -> bool:
        """Whether ``check`` (or its own setup) uses what the setup made."""
        used = placeholders(check).union(*(placeholders(s) for s in check.setup))
        return bool(used & self.shared_names())


def places(request: SmokeRequest) -> Iterator[tuple[str, str]]:
    """Every templated string of a request, with the key it is under (``headers.Authorization``)."""
    yield "path", request.path
    for key, value in request.query.items():
        if isinstance(value, str):
            yield f"query.{key}", value
    for key, text in request.headers.items():
        yield f"headers.{key}", text
    for text in strings_in(request.json_body):
        yield "json", text
    for key, value in (request.form or {}).items():
        if isinstance(value, str):
            yield f"form.{key}", value
    for index, expectation in enumerate(request.expect):
        for text in strings_in(expectation.operand):
            yield f"expect[{index}].{expectation.test}", text


def placeholders(request: SmokeRequest) -> set[str]:
    """The ``{name}`` placeholders a request uses."""
    return set().union(*(names_in(text)[0] for _, text in places(request)))


def env_variables(flow: Flow) -> dict[str, str]:
    """Each ``${ENV_VAR}`` of the flow, with the first place it is used (for the error)."""
    found: dict[str, str] = {}
    for where, request in _requests(flow):
        for key, text in places(request):
            for name in sorted(names_in(text)[1]):
                found.setdefault(name, f"{where}, key {key}")
    return found


def plan_flow(config: SmokeConfig) -> Flow:
    """The flow ``config`` describes, checked: a ``ConfigError`` for a name nothing provides."""
    setup = config.setup
    checks = tuple(_bearer(check) for check in config.checks)
    if not config.is_flow:
        setup, checks = _as_before_flows(checks)
    flow = Flow(preflight_path=config.preflight_path, setup=setup, checks=checks)
    _check_names(flow)
    return flow


def _bearer(check: SmokeCheck) -> SmokeCheck:
    if not check.auth or any(k.lower() == "authorization" for k in check.headers):
        return check
    return check.model_copy(update={"headers": {**check.headers, "Authorization": BEARER}})


def _as_before_flows(
    checks: tuple[SmokeCheck, ...],
) -> tuple[tuple[SmokeStep, ...], tuple[SmokeCheck, ...]]:
    # What the runner did for such checks before flows: register the run's account when a check
    # uses it, log in when one needs a token, and make an item for each {item_id} check.
    used = [placeholders(check) for check in checks]
    needs_login = any(c.auth or "item_id" in u for c, u in zip(checks, used, strict=True))
    needs_account = needs_login or any(u & {"email", "password"} for u in used)
    setup = DEFAULT_SMOKE_SETUP[: 2 if needs_login else 1 if needs_account else 0]
    planned = tuple(
        check.model_copy(
            update={"setup": (SmokeStep.model_validate(bundled_item_step(check.name)),)}
        )
        if "item_id" in names
        else check
        for check, names in zip(checks, used, strict=True)
    )
    return setup, planned


def _requests(flow: Flow) -> Iterator[tuple[str, SmokeRequest]]:
    for index, step in enumerate(flow.setup):
        yield f"smoke.setup[{index}] ({step.name})", step
    for index, check in enumerate(flow.checks):
        for own, step in enumerate(check.setup):
            yield f"smoke.checks[{index}].setup[{own}] ({step.name})", step
        yield f"smoke.checks[{index}] ({check.name})", check


def _check_names(flow: Flow) -> None:
    known = set(BUILT_IN)
    for index, step in enumerate(flow.setup):
        _known(f"smoke.setup[{index}] ({step.name})", step, known)
        known |= set(step.save)
    for index, check in enumerate(flow.checks):
        own = set(known)
        for number, step in enumerate(check.setup):
            _known(f"smoke.checks[{index}].setup[{number}] ({step.name})", step, own)
            own |= set(step.save)
        _known(f"smoke.checks[{index}] ({check.name})", check, own)


def _known(where: str, request: SmokeRequest, known: set[str]) -> None:
    for key, text in places(request):
        unknown = sorted(names_in(text)[0] - known)
        if unknown:
            name = unknown[0]
            listed = ", ".join("{" + n + "}" for n in sorted(known))
            raise ConfigError(
                f"{where}: unknown placeholder {{{name}}} in key {key}: neither made by the run "
                f'nor saved by an earlier step (save = {{ {name} = "<JMESPath>" }}); '
                f"known: {listed}"
            )

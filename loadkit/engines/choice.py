"""Which engine runs a ``loadkit load``, and ``loadkit accept``'s load (DESIGN.md, "Two engines,
one measurement"). Pure; ``run/load_plan.py`` applies it for every command that plans a load.

A URL and the declarative scenario of acceptance.toml (``[scenarios.NAME]``) run on the native
engine: no Python of the user's per request, about wrk's CPU each for a URL
(docs/benchmarks.md); a declarative scenario's users carry their saved values (a token, an id)
from request to request in the native engine's own pool (``engines/native/scenario.py``). A
scenario written as a Python user flow (a locustfile) runs on Locust, ~12 times that.
``--engine`` (or a profile's ``engine``) overrides for a URL or a declarative scenario;
``--http2`` needs Locust (the native engine speaks HTTP/1.1), and so do users ramped by a spawn
rate or closed-model stages."""

from __future__ import annotations

from typing import Literal

from loadkit.config import LoadProfile
from loadkit.exceptions import ConfigError

Engine = Literal["locust", "native"]
ENGINES: tuple[Engine, ...] = ("locust", "native")


def choose_engine(
    *,
    requested: str | None,
    url_run: bool,
    http2: bool = False,
    source: str = "--engine",
    worker: bool = False,
    ramped_users: bool = False,
    declarative: bool = False,
    to_locust: str = "--engine locust",
) -> Engine:
    """The engine for a run: ``requested`` (``--engine`` or the profile's ``engine``, named by
    ``source`` in errors) when given, else native for a URL run (``url_run``) or a
    ``declarative`` one without ``http2``, Locust otherwise. A ``worker`` (``--worker``) takes
    its URL or scenario from its master: ``--engine native`` is all it needs; without it, it is
    a Locust worker.

    ``ramped_users``: the run ramps Locust users (closed-model stages, a spawn rate), which
    only Locust does: a URL run then stays on Locust unless ``native`` is asked for.
    ``declarative``: the run is a declarative scenario of acceptance.toml: native, as a URL.

    A ConfigError (exit 2) names why a request cannot be met: an unknown engine, ``native`` for
    a locustfile, with HTTP/2 or with ramped users, and says to ask for Locust by ``to_locust``
    (``loadkit accept`` has no ``--engine``: its profile's ``engine`` says).
    """
    if requested is not None and requested not in ENGINES:
        raise ConfigError(f"{source} {requested!r}: choose locust or native")
    if requested == "native":
        if not url_run and not declarative and not worker:
            raise ConfigError(
                f"{source} native runs a URL (`loadkit load URL`) or a declarative scenario of "
                "acceptance.toml; a scenario written in Python is a locustfile and runs on "
                f"Locust: use {to_locust}"
            )
        if http2:
            raise ConfigError(
                f"{source} native speaks HTTP/1.1 only: remove --http2, or use {to_locust}"
            )
        if ramped_users:
            raise ConfigError(
                f"{source} native opens its connections at once: users ramped by closed-model "
                f"stages or a spawn rate run on Locust ({to_locust}); or give --rate for "
                "an open run whose stages ramp the rate"
            )
        return "native"
    if requested == "locust" or not (url_run or declarative) or http2 or ramped_users:
        return "locust"
    return "native"


def engine_for_profile(
    profile: LoadProfile,
    *,
    requested: str | None,
    source: str,
    url_run: bool,
    declarative: bool,
    http2: bool,
    worker: bool = False,
    to_locust: str = "--engine locust",
) -> Engine:
    """``choose_engine`` for a run of ``profile``, which ramps users when it is closed-model
    with stages or a spawn rate (``run.load_plan.plan_load_run`` calls it for ``loadkit load``,
    ``accept`` and ``ui``)."""
    return choose_engine(
        requested=requested,
        url_run=url_run,
        http2=http2,
        source=source,
        worker=worker,
        ramped_users=profile.model == "closed"
        and (profile.stages is not None or profile.spawn_rate is not None),
        declarative=declarative,
        to_locust=to_locust,
    )


def refuse_locust_args(engine: Engine, *, given: bool) -> None:
    """A ConfigError when arguments for Locust (after ``--``) are ``given`` to a native run.

    The only option left that Locust alone has: a spawn rate or closed-model stages already keep
    a URL or declarative run on Locust (``choose_engine``), and ``--master``/``--worker`` serve
    both engines."""
    if engine == "native" and given:
        raise ConfigError(
            "arguments after `--` (for Locust) are for the Locust engine only, and this run is "
            "on the native engine: add --engine locust, or remove `--` and what follows"
        )

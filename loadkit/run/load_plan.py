"""The load run a profile describes, resolved in one place for ``loadkit load``, ``loadkit
accept`` and ``loadkit ui`` (``plan_load_run`` → ``LoadPlan``), and handed to the runner of its
engine (``run_load_plan``).

One rule, so the three commands cannot drift apart: the profile of the acceptance file with the
flags on top (``run/profile.py``), HTTP/2 from the flag or the profile, the declarative scenario
looked up and checked (its names, its ``${ENV}`` secrets set), the engine (``engines/choice.py``)
and a URL run's request with the TLS choice and ``[target]``. What legitimately differs between
the commands is a parameter: which flags there are, an engine asked for (``--engine``; the web UI
is Locust's), how an error says to ask for Locust (``accept`` has no ``--engine``: its profile's
``engine`` says), the abort-on-fail criteria, and the target, which ``accept`` knows only once
the bundled service has started (``LoadPlan.request_to``).

Errors are ConfigErrors naming what is wrong; only the CLI turns them into exit codes.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from loadkit.config import AcceptanceConfig, Criterion, LoadProfile, TargetProfile
from loadkit.defaults import DEFAULT_MASTER_PORT, DEFAULT_WORKERS_WAIT_S, LOOPBACK
from loadkit.engines.choice import Engine, engine_for_profile, refuse_locust_args
from loadkit.engines.declarative import declarative_scenario, describe
from loadkit.engines.http_request import RequestSpec, TlsOptions
from loadkit.engines.url_request import request_spec
from loadkit.measure.results import LoadResults
from loadkit.run.profile import load_profile
from loadkit.stages import Stage

ENGINE_FLAG = "--engine"
TO_LOCUST = "--engine locust"
"""How an engine error says to ask for Locust, by default (``loadkit load``'s flag)."""


@dataclass(frozen=True, kw_only=True)
class ProfileFlags:
    """The flags that override the profile's keys of the same name (None: not given)."""

    scenario: str | None = None
    concurrency: int | None = None
    duration_s: float | None = None
    spawn_rate: float | None = None
    rate: float | None = None
    max_in_flight: int | None = None
    stages: tuple[Stage, ...] | None = None


@dataclass(frozen=True, kw_only=True)
class RequestShape:
    """A URL run's request but its URL, as typed: ``--method``, ``--header``, ``--body``
    (``loadkit load`` only; the others send a plain GET)."""

    method: str | None = None
    headers: tuple[str, ...] = ()
    body: str | None = None


@dataclass(frozen=True, kw_only=True)
class LoadPlan:
    """The load run a command describes, resolved and checked, for any target."""

    engine: Engine
    profile: LoadProfile
    """The profile with the flags applied."""
    tls: TlsOptions
    http2: bool
    declarative: bool
    """Whether the scenario is a declarative one ([scenarios.NAME])."""
    description: str | None
    """A declarative scenario's description (None on a worker: its master sends it)."""
    target_profile: TargetProfile | None
    """[target] of the acceptance file, when there is one."""
    shape: RequestShape = field(default_factory=RequestShape)
    processes: int = 1
    abort_on: tuple[Criterion, ...] = ()
    locust_args: tuple[str, ...] = ()

    def request_to(self, target: str) -> RequestSpec:
        """The run's request against ``target`` (the URL of a URL run, else the base URL): its
        shape, the TLS choice, and [target] (the native engine reads error kinds and sends the
        trace header as it says); a ConfigError naming a bad URL, method, header or body."""
        shape = self.shape
        request = request_spec(
            target, method=shape.method, headers=shape.headers, body=shape.body, tls=self.tls
        )
        if self.target_profile is not None:
            request = replace(request, target=self.target_profile)
        return request


def plan_load_run(
    config: AcceptanceConfig | None,
    profile: str,
    *,
    flags: ProfileFlags | None = None,
    shape: RequestShape | None = None,
    tls: TlsOptions,
    http2: bool = False,
    engine: str | None = None,
    to_locust: str = TO_LOCUST,
    worker: bool = False,
    processes: int = 1,
    abort_on: Sequence[Criterion] = (),
    locust_args: Sequence[str] = (),
    locust_args_given: bool = False,
) -> LoadPlan:
    """The run of ``profile`` in ``config`` (None: no acceptance file, the built-in default),
    with ``flags`` on top: its engine, its scenario and what its runner needs.

    ``engine``: the engine asked for over the profile's ``engine`` (``--engine``); errors about
    the profile's own name it, and say to ask for Locust by ``to_locust``. ``http2`` adds to the
    profile's ``http2``. A ``worker`` takes its scenario from its master (no description here).
    ``locust_args_given``: arguments for Locust (after ``--``) were given, which a native run
    refuses. Checked in the order a user fixes them: the profile, the engine, the scenario (its
    placeholders, its ``${ENV_VAR}``s set here); a ConfigError names what is wrong.
    """
    from loadkit.run.load import URL_SCENARIO

    flags = flags or ProfileFlags()
    chosen = load_profile(
        config,
        profile,
        scenario=flags.scenario,
        concurrency=flags.concurrency,
        duration_s=flags.duration_s,
        spawn_rate=flags.spawn_rate,
        rate=flags.rate,
        max_in_flight=flags.max_in_flight,
        stages=flags.stages,
    )
    http2 = http2 or chosen.http2
    declarative = declarative_scenario(config, chosen.scenario)
    chosen_engine = engine_for_profile(
        chosen,
        requested=engine or chosen.engine,
        source=ENGINE_FLAG if engine else f"profile {profile!r}'s engine",
        url_run=chosen.scenario == URL_SCENARIO,
        declarative=declarative is not None,
        http2=http2,
        worker=worker,
        to_locust=to_locust,
    )
    refuse_locust_args(chosen_engine, given=locust_args_given)
    description = describe(*declarative, os.environ) if declarative and not worker else None
    return LoadPlan(
        engine=chosen_engine,
        profile=chosen,
        tls=tls,
        http2=http2,
        declarative=declarative is not None,
        description=description,
        target_profile=config.target if config is not None else None,
        shape=shape or RequestShape(),
        processes=processes,
        abort_on=tuple(abort_on),
        locust_args=tuple(locust_args),
    )


@dataclass(frozen=True, kw_only=True)
class MasterRole:
    """``--master``: the run is split among ``expect`` workers elsewhere, which connect on
    ``bind_host:bind_port`` within ``wait_s`` seconds."""

    expect: int
    bind_host: str
    bind_port: int
    wait_s: int


def run_load_plan(
    plan: LoadPlan,
    request: RequestSpec,
    *,
    out: Path,
    quiet: bool,
    master: MasterRole | None = None,
) -> LoadResults:
    """Run ``plan`` with ``request`` (``plan.request_to(target)``) on its engine, locally or as
    the ``master``; its results (also at ``out``).

    Raises what the runner raises: TargetUnreachableError and ConfigError before the run,
    InvalidLoadRunError, GeneratorCrashedError and LoadInterrupted after the results were
    written (``run_native_load``, ``run_load``).
    """
    if plan.engine == "native":
        from loadkit.run.native import NativeMaster, run_native_load

        return run_native_load(
            request=request,
            profile=plan.profile,
            out=out,
            processes=plan.processes,
            quiet=quiet,
            master=(
                NativeMaster(
                    expect=master.expect,
                    bind_host=master.bind_host,
                    bind_port=master.bind_port,
                    wait_s=master.wait_s,
                )
                if master is not None
                else None
            ),
            abort_on=plan.abort_on,
            scenario=plan.description,
        )
    from loadkit.run.load import run_load

    # Locust's defaults where nobody is master (run_load ignores them then).
    where = master or MasterRole(
        expect=1, bind_host=LOOPBACK, bind_port=DEFAULT_MASTER_PORT, wait_s=DEFAULT_WORKERS_WAIT_S
    )
    return run_load(
        target=request.url,
        profile=plan.profile,
        out=out,
        processes=plan.processes,
        quiet=quiet,
        master=master is not None,
        expect_workers=where.expect,
        master_bind_host=where.bind_host,
        master_bind_port=where.bind_port,
        master_wait_s=where.wait_s,
        locust_args=plan.locust_args,
        request=request,
        tls=plan.tls,
        http2=plan.http2,
        abort_on=plan.abort_on,
        target_profile=plan.target_profile,
        declarative=plan.description,
    )

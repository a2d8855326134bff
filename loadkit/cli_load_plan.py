"""What a ``loadkit load`` command line asks for: its options in typed bundles (one per help
panel), checked together, and the run they describe (``LoadPlan``), ready for a runner.

The command (``cli.load``) parses into the bundles, ``plan_load`` resolves the profile, the
engine, the request and the criteria that may stop the run, and the command hands the plan to
the runner of its role. Errors are ConfigErrors naming the option at fault; only the CLI turns
them into exit codes. Everything heavy is imported inside the functions: ``loadkit --help``
imports this module and must not pay for the engines.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from loadkit.defaults import DEFAULT_TARGET
from loadkit.exceptions import ConfigError

if TYPE_CHECKING:
    from loadkit.config import Criterion, LoadProfile, TargetProfile
    from loadkit.engines.choice import Engine
    from loadkit.engines.http_request import RequestSpec, TlsOptions


@dataclass(frozen=True, kw_only=True)
class RequestOptions:
    """Target and request: the URL of a URL run or the base URL, and how a URL run's request
    is shaped (``--method``, ``--header``, ``--body``)."""

    url: str | None
    host: str | None
    method: str | None
    headers: tuple[str, ...]
    body: str | None

    def shaping(self) -> list[str]:
        """The request-shaping options given, by flag."""
        given = (("--method", self.method), ("--header", self.headers), ("--body", self.body))
        return [flag for flag, value in given if value]


@dataclass(frozen=True, kw_only=True)
class ProfileOptions:
    """Load profile and model: the profile of ``config`` and the flags that override it."""

    config: Path | None
    profile: str
    scenario: str | None
    concurrency: int | None
    duration_s: float | None
    spawn_rate: float | None
    rate: float | None
    max_in_flight: int | None
    stages: str | None


@dataclass(frozen=True, kw_only=True)
class EngineOptions:
    """Engine: which one (``--engine``, None: the rule), how many processes (as typed), HTTP/2."""

    engine: str | None
    processes: str
    http2: bool


@dataclass(frozen=True, kw_only=True)
class TlsFlags:
    """TLS: ``--insecure`` and ``--ca-cert`` as typed."""

    insecure: bool
    ca_cert: Path | None

    @property
    def given(self) -> bool:
        """Whether either was given (a native worker otherwise checks as its master says)."""
        return self.insecure or self.ca_cert is not None


@dataclass(frozen=True, kw_only=True)
class OutputOptions:
    """Output: the results file, the HTML report, the progress line."""

    out: Path
    html: Path | None
    quiet: bool


@dataclass(frozen=True, kw_only=True)
class DistributedOptions:
    """Distributed run: this process's role (``--master``, ``--worker`` or neither) and where
    master and workers meet."""

    master: bool
    expect_workers: int
    expect_workers_max_wait: int
    master_bind_host: str
    worker: bool
    master_host: str
    master_port: int


@dataclass(frozen=True, kw_only=True)
class LoadOptions:
    """Every option of ``loadkit load`` (but Locust's, after ``--``), by panel."""

    request: RequestOptions
    profile: ProfileOptions
    engine: EngineOptions
    tls: TlsFlags
    output: OutputOptions
    distributed: DistributedOptions


@dataclass(frozen=True, kw_only=True)
class LoadPlan:
    """The run a ``loadkit load`` command line describes, resolved and checked."""

    engine: Engine
    profile: LoadProfile
    """The profile with the flags applied."""
    target: str
    """The URL of a URL run, else the base URL."""
    request: RequestSpec
    """A URL run's request (the native engine's target for a declarative scenario)."""
    tls: TlsOptions
    http2: bool
    processes: int
    declarative: bool
    """Whether the scenario is a declarative one ([scenarios.NAME])."""
    description: str | None
    """A declarative scenario's description (None on a worker: its master sends it)."""
    abort_on: tuple[Criterion, ...]
    target_profile: TargetProfile | None
    """[target] of the acceptance file, when there is one."""
    locust_args: tuple[str, ...]


def plan_load(
    options: LoadOptions, *, locust_args: tuple[str, ...], locust_args_given: bool
) -> LoadPlan:
    """The run ``options`` describe: profile, engine, request, abort criteria.

    ``locust_args`` are the arguments after ``--`` (checked), ``locust_args_given`` whether a
    ``--`` was there at all (a native run refuses it). Checked in the order a user fixes them:
    TLS, the request's shape, ``--processes``, the profile, the engine, the scenario; a
    ConfigError names what is wrong.
    """
    from loadkit.engines.choice import engine_for_profile, refuse_locust_args
    from loadkit.engines.declarative import declarative_scenario, describe
    from loadkit.engines.tls import tls_options
    from loadkit.engines.url_request import request_spec
    from loadkit.run.load import URL_SCENARIO
    from loadkit.run.profile import find_config, load_profile, stages_option

    shape, distributed = options.request, options.distributed
    tls = tls_options(insecure=options.tls.insecure, ca_cert=options.tls.ca_cert)
    scenario = _scenario(shape, options.profile.scenario, url_scenario=URL_SCENARIO)
    processes = processes_count(options.engine.processes)
    acceptance = find_config(options.profile.config)
    chosen = load_profile(
        acceptance,
        options.profile.profile,
        scenario=scenario,
        concurrency=options.profile.concurrency,
        duration_s=options.profile.duration_s,
        spawn_rate=options.profile.spawn_rate,
        rate=options.profile.rate,
        max_in_flight=options.profile.max_in_flight,
        stages=stages_option(options.profile.stages),
    )
    http2 = options.engine.http2 or chosen.http2
    declarative = declarative_scenario(acceptance, chosen.scenario)
    engine = engine_for_profile(
        chosen,
        requested=options.engine.engine or chosen.engine,
        source=(
            "--engine" if options.engine.engine else f"profile {options.profile.profile!r}'s engine"
        ),
        url_run=chosen.scenario == URL_SCENARIO,
        declarative=declarative is not None,
        http2=http2,
        worker=distributed.worker,
    )
    refuse_locust_args(engine, given=locust_args_given)
    # Checked before anything starts: its placeholders, and its ${ENV_VAR}s set here.
    description = (
        describe(*declarative, os.environ) if declarative and not distributed.worker else None
    )
    if distributed.worker and engine == "native" and processes > 1:
        raise ConfigError(
            "--processes on a native worker: start one `loadkit load --worker --engine "
            "native` per core instead (the master splits the run among them)"
        )
    target = shape.url or shape.host or DEFAULT_TARGET
    request = request_spec(
        target, method=shape.method, headers=shape.headers, body=shape.body, tls=tls
    )
    target_profile = acceptance.target if acceptance is not None else None
    if target_profile is not None:
        # The native engine reads error kinds and sends the trace header as [target] says.
        request = replace(request, target=target_profile)
    return LoadPlan(
        engine=engine,
        profile=chosen,
        target=target,
        request=request,
        tls=tls,
        http2=http2,
        processes=processes,
        declarative=declarative is not None,
        description=description,
        abort_on=abort_criteria(options.profile.config),
        target_profile=target_profile,
        locust_args=locust_args,
    )


def _scenario(shape: RequestOptions, scenario: str | None, *, url_scenario: str) -> str | None:
    """The scenario asked for: a URL alone runs the ``url`` scenario; request shaping without a
    URL, or beside a scenario, is a ConfigError naming the flag."""
    shaping = shape.shaping()
    if shaping and scenario is not None:
        raise ConfigError(
            f"{shaping[0]} and --scenario cannot go together: {shaping[0]} shapes the "
            "request of a URL run; a scenario's requests are its own (its locustfile)"
        )
    if shaping and shape.url is None:
        raise ConfigError(
            f"{shaping[0]} shapes the request of a URL run: give the URL "
            f"(`loadkit load URL {shaping[0]} ...`)"
        )
    if shape.url is not None and scenario is None:
        return url_scenario
    return scenario


def abort_criteria(config: Path | None) -> tuple[Criterion, ...]:
    """The abort-on-fail criteria of ``--config`` (given explicitly: a load run does not gate,
    and ./acceptance.toml's criteria do not stop runs nobody asked to stop)."""
    if config is None:
        return ()
    from loadkit.config import load_config
    from loadkit.gate.abort import abort_criteria as of_criteria

    return of_criteria(load_config(config).criteria)


def processes_count(value: str) -> int:
    """``--processes``: a whole number of at least 1, or ``auto`` (one per core); a ConfigError
    naming the value otherwise."""
    if value.strip().lower() == "auto":
        return os.cpu_count() or 1
    try:
        count = int(value)
    except ValueError:
        count = 0
    if count < 1:
        raise ConfigError(f"--processes {value!r}: give a whole number of at least 1, or auto")
    return count


# Options that only one role of `loadkit load` reads: given to another, they would be ignored
# silently (or, --master with --worker, leave a worker waiting for a master that never comes).
_RUN_OPTIONS = (
    *("url", "host", "concurrency", "duration", "spawn_rate", "rate", "max_in_flight", "stages"),
    "out",
)
_ROLE_ONLY = {
    "expect_workers": ("master",),
    "expect_workers_max_wait": ("master",),
    "master_bind_host": ("master",),
    "master_host": ("worker",),
    "master_port": ("master", "worker"),
}


def check_load_roles(ctx: typer.Context) -> None:
    """Refuse options of `loadkit load` that cannot go together (exit 2), naming them."""
    # By name: typer vendors its own click, whose ParameterSource is not click's.
    sources = {name: ctx.get_parameter_source(name) for name in ctx.params}
    given = {name for name, source in sources.items() if source and source.name != "DEFAULT"}
    roles = {role for role in ("master", "worker") if ctx.params.get(role)}
    if roles == {"master", "worker"}:
        raise ConfigError(
            "--master and --worker cannot go together: run `loadkit load --master` on one "
            "machine and `loadkit load --worker --master-host H` on each of the others"
        )
    if "worker" in roles and (ignored := [n for n in _RUN_OPTIONS if n in given]):
        raise ConfigError(
            f"--worker takes the target, the load (users, rate, stages), duration and results "
            f"from its master; "
            f"give {_flags(ignored)} to `loadkit load --master` instead"
        )
    for name, needs in _ROLE_ONLY.items():
        if name in given and not roles & set(needs):
            raise ConfigError(
                f"{_flags([name])} is for {' or '.join(f'--{role}' for role in needs)} only"
            )
    from loadkit.engines.target import check_host

    # Locust would take a malformed host to its socket layer and die with a traceback (exit 4).
    if "worker" in roles:
        check_host(str(ctx.params["master_host"]), option="--master-host")
    if "master" in roles:
        check_host(
            str(ctx.params["master_bind_host"]), option="--master-bind-host", any_address=True
        )


def _flags(names: list[str]) -> str:
    return ", ".join("the URL" if n == "url" else "--" + n.replace("_", "-") for n in names)

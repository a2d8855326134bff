"""What a ``loadkit load`` command line asks for: its options in typed bundles (one per help
panel), checked together, and the run they describe (``LoadPlan``), ready for a runner.

The command (``cli.load``) parses into the bundles; ``plan_load`` resolves them into the plan
``loadkit accept`` and ``loadkit ui`` resolve theirs into (``run/load_plan.py``: the profile,
the engine, the scenario), with what only ``load`` has: request shaping, ``--processes``, the
roles, the criteria that may stop the run; the command hands the plan to the runner of its
role. Errors are ConfigErrors naming the option at fault; only the CLI turns
them into exit codes. Everything heavy is imported inside the functions: ``loadkit --help``
imports this module and must not pay for the engines.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from loadkit.defaults import DEFAULT_TARGET
from loadkit.exceptions import ConfigError

if TYPE_CHECKING:
    from loadkit.config import Criterion
    from loadkit.engines.http_request import RequestSpec
    from loadkit.run.load_plan import LoadPlan


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


def plan_load(
    options: LoadOptions, *, locust_args: tuple[str, ...], locust_args_given: bool
) -> tuple[LoadPlan, RequestSpec]:
    """The run ``options`` describe (profile, engine, scenario, abort criteria), and its request
    against the URL or ``--host``.

    ``locust_args`` are the arguments after ``--`` (checked), ``locust_args_given`` whether a
    ``--`` was there at all (a native run refuses it). Checked in the order a user fixes them:
    TLS, the request's shape, ``--processes``, then the run as ``loadkit accept`` and ``loadkit
    ui`` have theirs checked (``run/load_plan.py``: the profile, the engine, the scenario), the
    roles, the request; a ConfigError names what is wrong.
    """
    from loadkit.engines.tls import tls_options
    from loadkit.run.load import URL_SCENARIO
    from loadkit.run.load_plan import ProfileFlags, RequestShape, plan_load_run
    from loadkit.run.profile import find_config, stages_option

    shape, distributed, profile = options.request, options.distributed, options.profile
    tls = tls_options(insecure=options.tls.insecure, ca_cert=options.tls.ca_cert)
    scenario = _scenario(shape, profile.scenario, url_scenario=URL_SCENARIO)
    processes = processes_count(options.engine.processes)
    plan = plan_load_run(
        find_config(profile.config),
        profile.profile,
        flags=ProfileFlags(
            scenario=scenario,
            concurrency=profile.concurrency,
            duration_s=profile.duration_s,
            spawn_rate=profile.spawn_rate,
            rate=profile.rate,
            max_in_flight=profile.max_in_flight,
            stages=stages_option(profile.stages),
        ),
        shape=RequestShape(method=shape.method, headers=shape.headers, body=shape.body),
        tls=tls,
        http2=options.engine.http2,
        engine=options.engine.engine,
        worker=distributed.worker,
        processes=processes,
        abort_on=abort_criteria(profile.config),
        locust_args=locust_args,
        locust_args_given=locust_args_given,
    )
    if distributed.worker and plan.engine == "native" and processes > 1:
        raise ConfigError(
            "--processes on a native worker: start one `loadkit load --worker --engine "
            "native` per core instead (the master splits the run among them)"
        )
    return plan, plan.request_to(shape.url or shape.host or DEFAULT_TARGET)


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

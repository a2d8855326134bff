"""The loadkit command line: declares commands and hands work to plain functions.

This is the only module that turns errors into exit codes (DESIGN.md, "Exit codes"). Imports of
anything heavy happen inside the commands, so that ``loadkit --help`` and ``loadkit smoke`` stay
fast and never import Locust (which monkey-patches the process with gevent).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperCommand

from loadkit.cli_options import (
    MAX_PORT,
    AcceptDurationOption,
    AcceptEdgeTimeoutOption,
    AcceptHostOption,
    AcceptHttp2Option,
    AcceptProfileOption,
    BaselineOption,
    BodyOption,
    CaCertOption,
    ConcurrencyOption,
    ConfigOption,
    DurationOption,
    EngineOption,
    ExpectWorkersMaxWaitOption,
    ExpectWorkersOption,
    ForceBaselineOption,
    HeaderOption,
    InsecureOption,
    LoadConfigOption,
    LoadHostOption,
    LoadHtmlOption,
    LoadHttp2Option,
    LoadOutOption,
    LoadProfileOption,
    LoadUrlArgument,
    MasterBindHostOption,
    MasterHostOption,
    MasterOption,
    MasterPortOption,
    MaxInFlightOption,
    MethodOption,
    OutDirOption,
    ProcessesOption,
    QuietOption,
    RateOption,
    SaveBaselineOption,
    ScenarioOption,
    ServiceEnvOption,
    SpawnRateOption,
    StagesOption,
    WorkerOption,
)
from loadkit.defaults import (
    DEFAULT_CONFIG,
    DEFAULT_LOAD_OUT,
    DEFAULT_MASTER_PORT,
    DEFAULT_PROFILE,
    DEFAULT_REPORTS_DIR,
    DEFAULT_TARGET,
    DEFAULT_UI_DIR,
    DEFAULT_WEB_PORT,
    DEFAULT_WORKERS_WAIT_S,
    LOOPBACK,
    SERVE_PORT,
)
from loadkit.exceptions import (
    ConfigError,
    CriteriaNotMetError,
    GeneratorCrashedError,
    InputError,
    InvalidLoadRunError,
    InvalidRunError,
    LoadInterrupted,
    LoadkitError,
    ServiceStartError,
    TargetUnreachableError,
)

if TYPE_CHECKING:
    from loadkit.cli_load_plan import LoadOptions
    from loadkit.config import AcceptanceConfig, Criterion
    from loadkit.engines.http_request import RequestSpec
    from loadkit.gate.evaluate import GateReport
    from loadkit.measure.results import LoadResults, LockAuditResults, SmokeResults
    from loadkit.run.accept import AcceptanceRun
    from loadkit.run.baseline import Baselines
    from loadkit.run.load_plan import LoadPlan

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
EXIT_INVALID_RUN = 4
EXIT_INTERRUPTED = 130

EXIT_CODES: dict[type[BaseException], int] = {
    CriteriaNotMetError: EXIT_FAILED,
    ConfigError: EXIT_USAGE,  # GeneratorStartError too
    InputError: EXIT_USAGE,
    TargetUnreachableError: EXIT_UNREACHABLE,
    ServiceStartError: EXIT_UNREACHABLE,
    InvalidRunError: EXIT_INVALID_RUN,  # InvalidLoadRunError, GeneratorCrashedError
    # Ctrl-C and SIGTERM, LoadInterrupted among them (its partial results were written).
    KeyboardInterrupt: EXIT_INTERRUPTED,
}
"""Every error the commands let out, by class: the most specific class listed wins."""

app = typer.Typer(
    name="loadkit",
    help=(
        "Load-testing and acceptance harness for HTTP APIs: exact HDR latencies, an honest gate, "
        "errors explained by kind, endpoint and trace id."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain click help: it re-flows docstring paragraphs and leaves [brackets] alone, where rich
    # mode keeps the source's line breaks and eats "[profiles]" as markup.
    rich_markup_mode=None,
)


def exit_code_for(error: LoadkitError | KeyboardInterrupt) -> int:
    """The exit code for an error, by the most specific class ``EXIT_CODES`` lists."""
    for cls in type(error).__mro__:
        if cls in EXIT_CODES:
            return EXIT_CODES[cls]
    return EXIT_USAGE


@contextlib.contextmanager
def exit_on_error() -> Iterator[None]:
    """Print a loadkit error as one line on stderr and exit with its code; Ctrl-C exits 130."""
    try:
        yield
    except (LoadkitError, KeyboardInterrupt) as error:
        message = "interrupted" if isinstance(error, KeyboardInterrupt) else f"error: {error}"
        typer.echo(message, err=True)
        raise typer.Exit(code=exit_code_for(error)) from None


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM stops a run as Ctrl-C does (a KeyboardInterrupt), instead of killing loadkit on
    the spot: the run then leaves its results file marked aborted at --out (exit 130), so an
    earlier run's file is never left there for the gate to judge."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return
    previous = signal.signal(signal.SIGTERM, _as_sigint)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _as_sigint(signum: int, frame: FrameType | None) -> None:
    # SIGINT's own handler, not a KeyboardInterrupt raised here: inside asyncio.run (smoke) the
    # SIGINT handler cancels the main task cleanly, where an exception raised at an arbitrary
    # await breaks anyio's cancel scopes (a RuntimeError instead of exit 130).
    signal.raise_signal(signal.SIGINT)


# --- help panels -------------------------------------------------------------------------------

DEFAULT_PANEL = "Options"
"""Where an option without a ``rich_help_panel`` is listed."""


class PanelledCommand(TyperCommand):
    """A command whose ``--help`` lists its options under their ``rich_help_panel`` headings.

    Typer draws panels in rich mode only, and this app's help is plain click (see ``app``):
    options without a panel come first under "Options", then each panel in the order its first
    option is declared, as typer's rich help orders them.
    """

    # ctx and formatter are typer's vendored click objects (not public API to name).
    def format_options(self, ctx: Any, formatter: Any) -> None:
        """The arguments, then the options panel by panel."""
        arguments: list[tuple[str, str]] = []
        panels: dict[str, list[tuple[str, str]]] = {DEFAULT_PANEL: []}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            if param.param_type_name == "argument":
                arguments.append(record)
            elif param.param_type_name == "option":
                panel = getattr(param, "rich_help_panel", None) or DEFAULT_PANEL
                panels.setdefault(panel, []).append(record)
        for title, records in [("Arguments", arguments), *panels.items()]:
            if records:
                with formatter.section(title):
                    formatter.write_dl(records)


# --- `--`: the arguments for Locust ----------------------------------------------------------

LOCUST_ARGS = "loadkit.locust_args"
"""Where a command that takes Locust's arguments finds them (``ctx.meta``)."""
SEPARATOR = "--"


class LocustArgsCommand(PanelledCommand):
    """A command that hands everything after the first ``--`` to Locust (``load``, ``ui``).

    Split here, before click parses: click would give the first word after ``--`` to the
    optional URL argument of ``load``. A ``--`` that is an option's value (``--out --``) is not
    the separator.
    """

    # ctx is typer's vendored click Context (not public API to name): typed loosely.
    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        """Keep what follows ``--`` for Locust; parse the rest as loadkit's own."""
        index = _separator_index(self, args)
        if index is not None:
            ctx.meta[LOCUST_ARGS] = tuple(args[index + 1 :])
            args = args[:index]
        return super().parse_args(ctx, args)

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        """The usage line says where Locust's arguments go."""
        return [*super().collect_usage_pieces(ctx), "[-- LOCUST_ARGS...]"]


class NoLocustArgsCommand(PanelledCommand):
    """A command without arguments of its own, that says so when given ``--`` (which passes
    arguments to Locust in ``load`` and ``ui`` only)."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        """Refuse a ``--`` (exit 2) before click parses."""
        if _separator_index(self, args) is not None and not ctx.resilient_parsing:
            raise typer.BadParameter(
                f"`--` passes arguments to Locust, which only `loadkit load` and `loadkit ui` "
                f"take; `loadkit {ctx.info_name}` takes no arguments after it",
                ctx=ctx,
                param_hint="'--'",
            )
        return super().parse_args(ctx, args)


def _separator_index(command: TyperCommand, args: list[str]) -> int | None:
    """Where the first ``--`` that is not an option's value stands in ``args``."""
    takes_value = {
        name
        for param in command.params
        if param.param_type_name == "option" and not getattr(param, "is_flag", False)
        for name in [*param.opts, *param.secondary_opts]
    }
    index = 0
    while index < len(args):
        token = args[index]
        if token == SEPARATOR:
            return index
        if token in takes_value:
            index += 1  # its value, whatever it looks like (click takes it so too)
        index += 1
    return None


def locust_args_of(ctx: typer.Context) -> tuple[str, ...]:
    """The arguments after ``--``, checked: an option loadkit sets itself is exit 2."""
    from loadkit.engines.locust.passthrough import check_locust_args

    return check_locust_args(ctx.meta.get(LOCUST_ARGS, ()))


# --- serve -------------------------------------------------------------------------------------


@app.command(cls=NoLocustArgsCommand)
def serve(
    host: Annotated[str, typer.Option(help="Address to bind (loopback by default).")] = LOOPBACK,
    port: Annotated[
        int, typer.Option(min=1, max=MAX_PORT, help="TCP port to listen on.")
    ] = SERVE_PORT,
    database_url: Annotated[
        str | None,
        typer.Option(
            help=(
                "SQLAlchemy async URL, e.g. sqlite+aiosqlite:///./engines.db or "
                "postgresql+asyncpg://user:pw@127.0.0.1/engines (default: ENGINES_DATABASE_URL "
                "or ./engines.db)."
            )
        ),
    ] = None,
    http2: Annotated[
        bool,
        typer.Option(
            "--http2",
            help="Serve over HTTP/2: nginx (which must be installed) listens on --host/--port "
            "with h2c (or TLS with ALPN h2 given --certfile/--keyfile) in front of uvicorn.",
        ),
    ] = False,
    certfile: Annotated[
        Path | None,
        typer.Option(
            help="--http2: the certificate (PEM) to serve https with.", show_default=False
        ),
    ] = None,
    keyfile: Annotated[
        Path | None,
        typer.Option(help="--http2: the certificate's private key (PEM).", show_default=False),
    ] = None,
    edge_timeout: Annotated[
        float | None,
        typer.Option(
            min=0.001,
            help="--http2: seconds nginx waits on a silent handler (proxy_read_timeout): 504 "
            "before its headers, a stream reset with INTERNAL_ERROR after them.  [default: 60]",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Run the bundled API service (the "engines" API) under uvicorn.

    Settings come from ENGINES_* environment variables (see README); the options here override
    them. The service runs as `python -m service` in this same process (exec), so signals such as
    SIGTERM reach uvicorn directly and shut it down gracefully. With --http2 it runs as a child
    behind nginx, both stopped on Ctrl-C or SIGTERM.
    """
    from loadkit.run.bundled_service import service_command, service_environment

    if http2 or certfile or keyfile or edge_timeout is not None:
        from loadkit.run.http2_edge import DEFAULT_UPSTREAM_TIMEOUT_S, EdgeTls, serve_over_http2

        with exit_on_error(), sigterm_as_interrupt():
            if not http2:
                given = "--edge-timeout" if edge_timeout is not None else "--certfile/--keyfile"
                raise ConfigError(f"{given} is about the HTTP/2 edge: add --http2")
            if (certfile is None) != (keyfile is None):
                raise ConfigError("--certfile and --keyfile go together: give both, or neither")
            tls = EdgeTls(certfile=certfile, keyfile=keyfile) if certfile and keyfile else None
            try:
                serve_over_http2(
                    host=host,
                    port=port,
                    database_url=database_url,
                    tls=tls,
                    upstream_timeout_s=edge_timeout or DEFAULT_UPSTREAM_TIMEOUT_S,
                    announce=typer.echo,
                )
            except KeyboardInterrupt:
                return

    env = service_environment(os.environ)
    if database_url is not None:
        env["ENGINES_DATABASE_URL"] = database_url
    argv = service_command(host=host, port=port)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, argv, env)


# --- smoke -------------------------------------------------------------------------------------


@app.command(cls=NoLocustArgsCommand)
def smoke(
    host: Annotated[str, typer.Option(help="Base URL of the API under test.")] = DEFAULT_TARGET,
    config: Annotated[
        Path | None,
        typer.Option(
            help="The acceptance file whose [smoke] checks to run (default: ./acceptance.toml "
            "if present, else the built-in 10 checks).",
            show_default=False,
        ),
    ] = None,
    http2: Annotated[
        bool, typer.Option("--http2", help="Speak HTTP/2 with prior knowledge (h2c).")
    ] = False,
    timeout: Annotated[
        float | None,
        typer.Option(help="Seconds each request may take (default: [smoke] timeout_s, 10)."),
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Write the results file (loadkit.results/2) here.")
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the results as JSON instead of the table.")
    ] = False,
    insecure: InsecureOption = False,
    ca_cert: CaCertOption = None,
) -> None:
    """Run every smoke check once, concurrently, and show each one's status and latency.

    The run registers an account of its own, logs in, and creates the items its checks need.
    Exit 0 when every check passed, 1 when one failed, 2 on a bad configuration, 3 when the
    target cannot be reached.
    """
    from loadkit.config import SmokeConfig, TargetProfile, load_config
    from loadkit.engines.smoke import aborted_smoke_results, run_smoke
    from loadkit.engines.tls import tls_options
    from loadkit.files import write_output
    from loadkit.measure.results import dump_results
    from loadkit.measure.validity import INTERRUPTED
    from loadkit.report.smoke import render_smoke_table

    with exit_on_error(), sigterm_as_interrupt():
        tls = tls_options(insecure=insecure, ca_cert=ca_cert)
        if config is None and not DEFAULT_CONFIG.exists():
            checks, target = SmokeConfig(), TargetProfile()
        else:
            loaded = load_config(config or DEFAULT_CONFIG)
            checks, target = loaded.smoke, loaded.target
        try:
            results = run_smoke(
                host=host, config=checks, http2=http2, timeout_s=timeout, tls=tls, target=target
            )
        except (TargetUnreachableError, KeyboardInterrupt) as error:
            if out is not None:
                # Not a stale --out of an earlier passing smoke run for the gate to read.
                why = INTERRUPTED if isinstance(error, KeyboardInterrupt) else str(error)
                aborted = aborted_smoke_results(host=host, reason=why)
                # Best effort: the error that stopped the run is the one to report (exit 3 or
                # 130), not a second one about --out.
                with contextlib.suppress(ConfigError):
                    write_output(out, dump_results(aborted), option="--out")
            raise
        if out is not None:
            write_output(out, dump_results(results), option="--out")
        if json_output:
            sys.stdout.buffer.write(dump_results(results))
            sys.stdout.flush()
        else:
            typer.echo(render_smoke_table(results))
        failed = len(results.checks) - results.checks_passed
        if failed:
            raise CriteriaNotMetError(f"{failed} of {len(results.checks)} smoke checks failed")


# --- load / ui ---------------------------------------------------------------------------------


@app.command(cls=LocustArgsCommand)
def load(
    ctx: typer.Context,
    url: LoadUrlArgument = None,
    host: LoadHostOption = None,
    method: MethodOption = None,
    header: HeaderOption = None,
    body: BodyOption = None,
    scenario: ScenarioOption = None,
    config: LoadConfigOption = None,
    profile: LoadProfileOption = DEFAULT_PROFILE,
    concurrency: ConcurrencyOption = None,
    duration: DurationOption = None,
    spawn_rate: SpawnRateOption = None,
    rate: RateOption = None,
    max_in_flight: MaxInFlightOption = None,
    stages: StagesOption = None,
    engine: EngineOption = None,
    processes_option: ProcessesOption = "1",
    http2: LoadHttp2Option = False,
    insecure: InsecureOption = False,
    ca_cert: CaCertOption = None,
    out: LoadOutOption = DEFAULT_LOAD_OUT,
    html: LoadHtmlOption = None,
    quiet: QuietOption = False,
    master: MasterOption = False,
    expect_workers: ExpectWorkersOption = 1,
    expect_workers_max_wait: ExpectWorkersMaxWaitOption = DEFAULT_WORKERS_WAIT_S,
    master_bind_host: MasterBindHostOption = LOOPBACK,
    worker: WorkerOption = False,
    master_host: MasterHostOption = LOOPBACK,
    master_port: MasterPortOption = DEFAULT_MASTER_PORT,
) -> None:
    """Run a URL or a Locust scenario with exact HDR latencies, freeze and overload detection.

    A URL (`loadkit load http://host/path`, with --method, --header, --body) runs on the native
    engine, as does a declarative scenario of acceptance.toml (`--scenario NAME` for
    `[scenarios.NAME]`: setup steps per user, then a weighted mix of requests); a scenario
    written as a Python user flow (a locustfile) on Locust (--engine).
    Both distribute on Locust's master/worker transport: `loadkit load URL --master
    --expect-workers N` here and `loadkit load --worker --engine native --master-host H` on
    each worker machine give one results file at the master.

    Closed model (the default, --concurrency): each user sends its next request when the
    previous one answered, so a slow API also slows the load, as a fixed pool of clients would.
    Open model (--rate): iterations start on a timetable whatever the API does, as independent
    clients arrive, and latency counts from when each was due, so a freeze shows in the
    percentiles.

    Shows a progress bar and a live line while it runs, then a summary per endpoint, the top
    error kinds and the longest stall, and writes the results file. Exit 0 for a valid run, 2 on
    a bad option or a scenario Locust cannot load, 3 when the target cannot be reached, 4 when
    the run is invalid (load generator overloaded or crashed), 130 when interrupted (partial
    results are still written). A valid run whose Locust gave a nonzero exit code exits with
    it, as plain Locust does: the locustfile's environment.process_exit_code (set anywhere, a
    quitting listener included), or 2 after an exception in Locust's event handlers or
    greenlets; the results record it (locust_exit_code). Those codes can be 1, 2, 3, 4 or 130
    and then mean what the locustfile meant, not loadkit's meanings above.

    Everything after `--` goes to Locust as it is: tags, the locustfile's own arguments, user
    class names, e.g. `loadkit load --scenario f.py -- --tags checkout --my-arg x`. Options
    loadkit sets itself (--users, --run-time, --headless, --csv, ...) are refused, naming the
    loadkit option to use. A --master sends its tags and locustfile arguments to its workers.

    Locust's own locust.conf, ~/.locust.conf, pyproject.toml [tool.locust] and LOCUST_*
    variables are read as plain Locust reads them: loadkit says which on stderr, records them
    in the results, and refuses a key it sets itself.
    """
    from loadkit.cli_load_plan import (
        DistributedOptions,
        EngineOptions,
        LoadOptions,
        OutputOptions,
        ProfileOptions,
        RequestOptions,
        TlsFlags,
        check_load_roles,
        plan_load,
    )

    options = LoadOptions(
        request=RequestOptions(
            url=url, host=host, method=method, headers=tuple(header or ()), body=body
        ),
        profile=ProfileOptions(
            config=config,
            profile=profile,
            scenario=scenario,
            concurrency=concurrency,
            duration_s=duration,
            spawn_rate=spawn_rate,
            rate=rate,
            max_in_flight=max_in_flight,
            stages=stages,
        ),
        engine=EngineOptions(engine=engine, processes=processes_option, http2=http2),
        tls=TlsFlags(insecure=insecure, ca_cert=ca_cert),
        output=OutputOptions(out=out, html=html, quiet=quiet),
        distributed=DistributedOptions(
            master=master,
            expect_workers=expect_workers,
            expect_workers_max_wait=expect_workers_max_wait,
            master_bind_host=master_bind_host,
            worker=worker,
            master_host=master_host,
            master_port=master_port,
        ),
    )
    with exit_on_error(), sigterm_as_interrupt():
        check_load_roles(ctx)
        plan, request = plan_load(
            options,
            locust_args=locust_args_of(ctx),
            locust_args_given=ctx.meta.get(LOCUST_ARGS) is not None,
        )
        if worker:
            raise typer.Exit(code=_run_load_worker(plan, options))
        try:
            results = _run_load(plan, request, options)
        except (InvalidLoadRunError, GeneratorCrashedError, LoadInterrupted) as stopped:
            if stopped.results is not None:
                _show_load(stopped.results, str(stopped.path), plan, html=html)
            raise
        _show_load(results, str(out), plan, html=html)
        _raise_for_load_outcome(results, plan.abort_on)


def _run_load_worker(plan: LoadPlan, options: LoadOptions) -> int:
    """``--worker``: measure this machine's share of the master's run and send it there (the
    master writes the results); the exit code."""
    distributed = options.distributed
    if plan.engine == "native":
        from loadkit.run.native import run_native_worker

        done = run_native_worker(
            master_host=distributed.master_host,
            master_port=distributed.master_port,
            tls=plan.tls if options.tls.given else None,
            quiet=options.output.quiet,
        )
        typer.echo(
            f"{done.plan.source} of {done.plan.worker_count}: {done.requests} requests, "
            f"{done.errors} errors; share sent to the master at {distributed.master_host}:"
            f"{distributed.master_port}, which writes the results"
        )
        return 0
    from loadkit.run.load import DECLARATIVE_SCENARIO, run_worker

    return run_worker(
        # A declarative scenario's description comes from the master with each spawn.
        scenario=str(DECLARATIVE_SCENARIO) if plan.declarative else plan.profile.scenario,
        master_host=distributed.master_host,
        master_port=distributed.master_port,
        processes=plan.processes,
        locust_args=plan.locust_args,
        tls=plan.tls,
        http2=plan.http2,
        target_profile=plan.target_profile,
    )


def _run_load(plan: LoadPlan, request: RequestSpec, options: LoadOptions) -> LoadResults:
    """Run ``plan`` on its engine, locally or as the master; its results (also at --out)."""
    from loadkit.run.load_plan import MasterRole, run_load_plan

    output, distributed = options.output, options.distributed
    return run_load_plan(
        plan,
        request,
        out=output.out,
        quiet=output.quiet,
        master=(
            MasterRole(
                expect=distributed.expect_workers,
                bind_host=distributed.master_bind_host,
                bind_port=distributed.master_port,
                wait_s=distributed.expect_workers_max_wait,
            )
            if distributed.master
            else None
        ),
    )


def _show_load(results: LoadResults, path: str, plan: LoadPlan, *, html: Path | None) -> None:
    """A load run's summary table, and its HTML report with ``--html``."""
    from loadkit.report.load import render_load_table

    typer.echo(render_load_table(results, path=path, criteria=plan.abort_on))
    _write_load_html(html, path, results)


def _raise_for_load_outcome(results: LoadResults, abort_on: tuple[Criterion, ...]) -> None:
    """A valid run's exit code: 1 when an abort-on-fail criterion stopped it, else Locust's own
    verdict when nonzero (as plain Locust exits), else 0."""
    _raise_if_stopped_by_a_criterion(results, abort_on)
    if results.locust_exit_code:
        # Locust's own verdict (the locustfile's process_exit_code, 2 after an exception in
        # its event handlers or greenlets): exited with, as plain Locust does.
        raise typer.Exit(code=results.locust_exit_code)


def _write_load_html(html: Path | None, source: str, results: LoadResults) -> None:
    """``load --html``: the run's report (no verdict: a load run does not gate); its path is
    the terminal's last line."""
    if html is None:
        return
    from loadkit.files import write_output
    from loadkit.run.report import LoadedReport, render_report

    loaded = LoadedReport(results=((source, results),), gate=None, baselines=())
    typer.echo(
        f"HTML report: {write_output(html, render_report(loaded).encode(), option='--html')}"
    )


def _raise_if_stopped_by_a_criterion(results: LoadResults, abort_on: tuple[Criterion, ...]) -> None:
    """A run an abort-on-fail criterion stopped failed (exit 1), saying when and on what."""
    stopped = results.stopped
    if stopped is None or stopped.by != "criterion":
        return
    from loadkit.report.abort import stopped_early

    raise CriteriaNotMetError(stopped_early(stopped, abort_on))


@app.command(cls=LocustArgsCommand)
def ui(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Base URL of the API under test.")] = DEFAULT_TARGET,
    scenario: Annotated[
        str | None, typer.Option(help="Scenario name (login, api, url) or locustfile path.")
    ] = None,
    web_port: Annotated[
        int, typer.Option(min=1, max=MAX_PORT, help=f"Port of the web UI on {LOOPBACK}.")
    ] = DEFAULT_WEB_PORT,
    results_dir: Annotated[
        Path,
        typer.Option(help="Each test started from the UI writes its results and HTML report here."),
    ] = DEFAULT_UI_DIR,
    config: Annotated[
        Path | None,
        typer.Option(help="acceptance.toml with [profiles] (default: ./acceptance.toml if any)."),
    ] = None,
    profile: Annotated[
        str, typer.Option(help="Profile whose scenario and users to offer.")
    ] = DEFAULT_PROFILE,
    insecure: InsecureOption = False,
    ca_cert: CaCertOption = None,
    http2: Annotated[
        bool,
        typer.Option(
            "--http2",
            help="The users speak HTTP/2, as with `loadkit load --http2` (h2c by prior "
            "knowledge on http://, ALPN h2 on https://; a locustfile must be written on "
            "scenarios/http2_user.py). Default: the profile's http2.",
        ),
    ] = False,
) -> None:
    """Serve the Locust web UI on 127.0.0.1 with loadkit's exact measurement loaded.

    Every test you start from the UI writes a loadkit results file when it stops, and its HTML
    report beside it (linked in the UI's "Download data" tab). Ctrl-C ends.

    Everything after `--` goes to Locust as it is (tags, the locustfile's own arguments, user
    class names); options loadkit sets itself are refused. Locust's configuration files and
    LOCUST_* variables are read, said on stderr and recorded, as for `loadkit load`.
    """
    from loadkit.engines.tls import tls_options
    from loadkit.run.load import run_ui
    from loadkit.run.load_plan import ProfileFlags, plan_load_run
    from loadkit.run.profile import find_config

    with exit_on_error():
        locust_args = locust_args_of(ctx)
        tls = tls_options(insecure=insecure, ca_cert=ca_cert)
        plan = plan_load_run(
            find_config(config),
            profile,
            flags=ProfileFlags(scenario=scenario),
            tls=tls,
            http2=http2,
            engine="locust",  # the web UI is Locust's, whatever the profile's engine
            locust_args=locust_args,
        )
        chosen = plan.profile
        if chosen.rate is not None or chosen.stages is not None:
            # The UI's form sets users and spawn rate; a rate or stages would not be what it runs.
            typer.echo(
                f"note: the web UI runs users as its form sets them; profile {profile!r}'s "
                "rate and stages are for `loadkit load` and `loadkit accept`",
                err=True,
            )
        code = run_ui(
            target=host,
            scenario=chosen.scenario,
            web_port=web_port,
            results_dir=results_dir,
            concurrency=chosen.concurrency,
            spawn_rate=chosen.spawn_rate,
            announce=lambda line: typer.echo(line, err=True),
            locust_args=plan.locust_args,
            tls=plan.tls,
            target_profile=plan.target_profile,
            http2=plan.http2,
            declarative=plan.description,
        )
        raise typer.Exit(code=code)


# --- gate / accept / compare -------------------------------------------------------------------


@app.command()
def gate(
    results: Annotated[
        list[Path],
        typer.Argument(
            help="Results files (smoke, load, lock audit) to judge.", show_default=False
        ),
    ],
    config: ConfigOption = DEFAULT_CONFIG,
    junit: Annotated[
        Path | None, typer.Option(help="Write JUnit XML: one test case per criterion.")
    ] = None,
    markdown: Annotated[
        Path | None,
        typer.Option(help="Write the verdict as Markdown (also appended to $GITHUB_STEP_SUMMARY)."),
    ] = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write the verdict as JSON.")
    ] = None,
    baseline: BaselineOption = None,
    force_baseline: ForceBaselineOption = False,
) -> None:
    """Judge results files against the criteria of acceptance.toml.

    Prints each criterion's threshold, measured value, margin and verdict, and for each failure
    the evidence (top error kinds by endpoint, the stall's window, the lock sites). Criteria about
    a kind of results not given are listed as not evaluated. Exit 0 passed, 1 failed, 2 bad
    configuration or a measurement missing from a results file, 4 a run is invalid (aborted,
    generator overloaded): an invalid run never passes. Regression criteria are judged against
    --baseline; a baseline from a different load is exit 2 unless --force-baseline.
    """
    from loadkit.config import load_config
    from loadkit.gate.against_baseline import evaluate_gate
    from loadkit.gate.evaluate import raise_for_outcome
    from loadkit.measure.results_histograms import read_checked_results
    from loadkit.report.gate import (
        render_gate_headline,
        render_gate_table,
        write_gate_error_reports,
        write_gate_reports,
    )

    with exit_on_error():
        try:
            settings = load_config(config)
            loaded = [(str(path), read_checked_results(path)) for path in results]
            baselines = _baselines(baseline, settings, config, force=force_baseline)
            report = evaluate_gate(
                settings.criteria,
                settings.regressions,
                loaded,
                baselines=baselines.files,
                force_baseline=baselines.force,
            )
        except LoadkitError as error:
            # The requested reports still say why the gate could not judge (and a stale
            # junit.xml of an earlier, passing gate does not stay behind for CI to read).
            write_gate_error_reports(str(error), markdown=markdown, junit=junit, json=json_out)
            raise
        typer.echo(render_gate_table(report), nl=False)
        write_gate_reports(report, markdown=markdown, junit=junit, json=json_out)
        raise_for_outcome(report, message=render_gate_headline(report))


@app.command()
def compare(
    before: Annotated[Path, typer.Argument(help="Results file of the run before the change.")],
    after: Annotated[Path, typer.Argument(help="Results file of the run after the change.")],
    markdown: Annotated[
        Path | None, typer.Option(help="Also write the comparison as Markdown.")
    ] = None,
    fail_on_regression: Annotated[
        bool,
        typer.Option(
            "--fail-on-regression",
            help="Judge AFTER against BEFORE with the regression criteria of --config: exit 1 "
            "on a regression, 2 when the runs are not comparable (see --force-baseline).",
        ),
    ] = False,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="The acceptance file whose regression criteria --fail-on-regression applies.",
            show_default=False,
        ),
    ] = None,
    force_baseline: ForceBaselineOption = False,
) -> None:
    """Compare two runs side by side: requests, RPS, error rate, P50/P95/P99/max, stalls, per
    endpoint and per error kind, with the change in percent. With --fail-on-regression, also
    judge the change by the regression criteria of --config (exit 1 on a regression)."""
    from loadkit.files import write_output
    from loadkit.gate.compare import compare_results
    from loadkit.measure.results_histograms import read_checked_results
    from loadkit.report.compare import render_compare_markdown, render_compare_table

    with exit_on_error():
        if config is not None and not fail_on_regression:
            raise ConfigError("--config is for --fail-on-regression; give both or neither")
        before_results = read_checked_results(before)
        after_results = read_checked_results(after)
        comparison = compare_results(
            before_results,
            after_results,
            before_source=str(before),
            after_source=str(after),
        )
        if fail_on_regression:
            # Judged before anything is printed: an incomparable pair is exit 2 with no table.
            report = _regression_report(
                config, (str(before), before_results), (str(after), after_results), force_baseline
            )
        typer.echo(render_compare_table(comparison), nl=False)
        if markdown is not None:
            write_output(
                markdown, render_compare_markdown(comparison).encode(), option="--markdown"
            )
        if fail_on_regression:
            from loadkit.gate.evaluate import raise_for_outcome
            from loadkit.report.gate import render_gate_headline, render_gate_table

            typer.echo("")
            typer.echo(render_gate_table(report), nl=False)
            raise_for_outcome(report, message=render_gate_headline(report))


@app.command()
def report(
    results: Annotated[
        list[Path],
        typer.Argument(
            help="Results files (smoke, load, lock audit) to render.", show_default=False
        ),
    ],
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="The acceptance file: its criteria's verdict is shown (nothing is gated).",
            show_default=False,
        ),
    ] = None,
    baseline: BaselineOption = None,
    force_baseline: ForceBaselineOption = False,
    html: Annotated[
        Path | None,
        typer.Option(
            help="Write one self-contained HTML report (charts, verdict, tables; opens offline).",
            show_default=False,
        ),
    ] = None,
    hgrm: Annotated[
        Path | None,
        typer.Option(
            help="Write HdrHistogram .hgrm percentile files into this folder: all.hgrm and one "
            "per endpoint (in a subfolder of its own per results file when several are given).",
            show_default=False,
        ),
    ] = None,
    csv: Annotated[
        Path | None,
        typer.Option(
            help="Write the per-second timeline as CSV (completions, errors, P50/P95/P99/max, "
            "errors by kind).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Render results files: an HTML report, .hgrm files, the timeline as CSV.

    It renders, it never gates: exit 0 when the files are written (whatever the verdict), 2 on
    a results, acceptance or baseline file that cannot be read. With --config the verdict of
    its criteria is shown (regression criteria against --baseline or [baseline]); with
    --baseline the baseline's latency distribution is drawn beside the run's. Without --html,
    prints the terminal summary of each file.
    """
    from loadkit.run.report import (
        hgrm_folders,
        load_report,
        render_report,
        write_hgrm_files,
        write_timeline_csv,
    )

    with exit_on_error():
        loaded = load_report(
            results, config=config, baseline=baseline or (), force_baseline=force_baseline
        )
        if loaded.note is not None:
            typer.echo(f"note: {loaded.note}", err=True)
        if html is None:
            from loadkit.report.summary import render_summary

            typer.echo(render_summary(loaded.results, loaded.gate), nl=False)
        if csv is not None:
            typer.echo(f"timeline CSV: {write_timeline_csv(loaded, csv)}")
        if hgrm is not None:
            written = write_hgrm_files(loaded, hgrm)
            typer.echo(f"HdrHistogram percentile files: {len(written)} in {hgrm}")
            folders = hgrm_folders(loaded, hgrm)
            if len(folders) > 1:
                for source, folder in folders:
                    typer.echo(f"  {source}: {folder}")
        if html is not None:
            from loadkit.files import write_output

            path = write_output(html, render_report(loaded).encode(), option="--html")
            typer.echo(f"HTML report: {path}")


def _baselines(
    options: list[Path] | None, settings: AcceptanceConfig, config: Path, *, force: bool
) -> Baselines:
    """The baselines to judge regression criteria against, saying when [baseline]'s is absent."""
    from loadkit.run.baseline import read_baselines

    baselines = read_baselines(options, settings, config, force=force)
    if baselines.note is not None:
        typer.echo(f"note: {baselines.note}", err=True)
    return baselines


def _regression_report(
    config: Path | None,
    before: tuple[str, SmokeResults | LoadResults | LockAuditResults],
    after: tuple[str, SmokeResults | LoadResults | LockAuditResults],
    force: bool,
) -> GateReport:
    """``compare --fail-on-regression``: AFTER judged by the regression criteria of ``config``
    with BEFORE as its baseline."""
    from loadkit.config import load_config
    from loadkit.gate.against_baseline import evaluate_gate

    if config is None:
        raise ConfigError("--fail-on-regression needs --config FILE with regression criteria")
    settings = load_config(config)
    if not settings.regressions:
        raise ConfigError(
            f'{config}: no regression criteria ([[criteria]] with op = "regression"): '
            "--fail-on-regression has nothing to judge"
        )
    return evaluate_gate(
        (), settings.regressions, [after], baselines=[before], force_baseline=force
    )


@app.command(cls=NoLocustArgsCommand)
def accept(
    host: AcceptHostOption = None,
    service_env: ServiceEnvOption = None,
    http2: AcceptHttp2Option = False,
    edge_timeout: AcceptEdgeTimeoutOption = None,
    config: ConfigOption = DEFAULT_CONFIG,
    profile: AcceptProfileOption = DEFAULT_PROFILE,
    duration: AcceptDurationOption = None,
    insecure: InsecureOption = False,
    ca_cert: CaCertOption = None,
    out_dir: OutDirOption = DEFAULT_REPORTS_DIR,
    baseline: BaselineOption = None,
    force_baseline: ForceBaselineOption = False,
    save_baseline: SaveBaselineOption = None,
) -> None:
    """The whole acceptance: lock audit, smoke, load profile, gate; every report in one folder.

    Without --host it starts the bundled service and stops it afterwards (also on failure or
    Ctrl-C). The load runs on the engine `loadkit load` would choose for the profile: its
    engine, else native for a declarative scenario [scenarios.NAME] without --http2, Locust
    for a locustfile (login). Writes lock_audit.json, smoke.json, load.json, gate.md,
    junit.xml, verdict.json and report.html (the HTML report) to reports/<timestamp>/, and
    the bundled service's spans.jsonl (every request traced), from which a failed latency
    criterion's evidence says where the time went. Exit 0 passed, 1 a criterion not met, 2 bad
    configuration or a missing measurement, 3 target unreachable or service not starting, 4
    run invalid, 130 interrupted.
    """
    from loadkit.config import load_config
    from loadkit.engines.tls import tls_options
    from loadkit.gate.evaluate import raise_for_outcome
    from loadkit.report.gate import render_gate_headline
    from loadkit.run.accept import run_acceptance

    with exit_on_error(), sigterm_as_interrupt():
        env = _service_env(service_env or [])
        # Read before anything runs: a missing or invalid baseline is exit 2 at once, not
        # after minutes of load.
        baselines = _baselines(baseline, load_config(config), config, force=force_baseline)
        run = run_acceptance(
            config_path=config,
            profile=profile,
            host=host,
            duration_s=duration,
            out_dir=out_dir,
            service_env=env,
            progress=typer.echo,
            tls=tls_options(insecure=insecure, ca_cert=ca_cert),
            http2=http2,
            edge_timeout_s=edge_timeout,
            baselines=baselines,
            save_baseline_to=save_baseline,
        )
        _show_acceptance(run, save_baseline)
        raise_for_outcome(run.report, message=render_gate_headline(run.report))


def _service_env(entries: list[str]) -> dict[str, str]:
    """``--service-env KEY=VALUE`` entries as the bundled service's settings; a ConfigError
    naming an entry of another shape."""
    env: dict[str, str] = {}
    for entry in entries:
        key, sep, value = entry.partition("=")
        if not sep or not key:
            raise ConfigError(f"--service-env {entry!r} must look like KEY=VALUE")
        env[key] = value
    return env


def _show_acceptance(run: AcceptanceRun, save_baseline: Path | None) -> None:
    """The gate's table after the run, and where its reports (and baseline) went."""
    from loadkit.report.gate import render_gate_table
    from loadkit.run.accept import HTML_FILE

    typer.echo("")
    typer.echo(render_gate_table(run.report), nl=False)
    typer.echo(f"reports: {run.folder}")
    if run.saved_baseline is not None:
        typer.echo(f"baseline saved: {run.saved_baseline}")
    elif save_baseline is not None:
        typer.echo(f"baseline not saved to {save_baseline}: the gate did not pass")
    typer.echo(f"HTML report: {run.folder / HTML_FILE}")


# --- audit-locks -------------------------------------------------------------------------------


@app.command("audit-locks")
def audit_locks(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(help="Files or directories to audit (default: the configured paths)."),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="The acceptance file with the lock_audit section (default: ./acceptance.toml "
            "when it exists, else built-in defaults).",
        ),
    ] = None,
    output_format: Annotated[
        str,
        typer.Option(
            "--format", help="text (path:line:col: CODE message), json, or github annotations."
        ),
    ] = "text",
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Also write a results file for the gate (lock_violations)."),
    ] = None,
) -> None:
    """Find locks held during slow work or awaits, and locks taken without a timeout.

    LK001 slow call under a lock · LK002 await under a lock

    LK003 lock taken without a timeout · LK004 release() not in a finally

    Silence one line with `# lockaudit: ignore[LK001] <reason>`.

    Exit 0 when clean, 1 on findings, 2 on bad configuration or unparsable code.
    """
    from loadkit.lockaudit.run import (
        audit_paths,
        audit_scope,
        write_audit_results,
        write_failed_audit,
    )
    from loadkit.report.locks import parse_format, render_locks

    with exit_on_error():
        fmt = parse_format(output_format)
        settings, targets = audit_scope(paths or [], config, default_config=DEFAULT_CONFIG)
        try:
            run = audit_paths(targets, settings)
        except InputError as error:
            if out is not None:
                # Not a stale --out of an earlier clean audit for the gate to read.
                write_failed_audit(out, targets, settings, str(error))
            raise
        typer.echo(render_locks(run.summary, fmt), nl=False)
        if out is not None:
            write_audit_results(out, run, settings)
    if run.summary.violations:
        raise typer.Exit(code=EXIT_FAILED)


# --- errors ------------------------------------------------------------------------------------


@app.command()
def errors(
    log_files: Annotated[
        list[str] | None,
        typer.Argument(
            help="The logs (gzip too): the service's JSON log, or the format of --preset or "
            "[logs]; '-' reads stdin, as does no file at all.",
            show_default=False,
        ),
    ] = None,
    results: Annotated[
        list[Path] | None,
        typer.Option(
            "--results",
            help="Results files of loadkit smoke/load runs: the client's errors beside the "
            "server's, joined by trace id.",
            show_default=False,
        ),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(help="Keep lines from this time: ISO 8601 (UTC if no offset) or 15m, 2h, 1d."),
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Keep lines up to this time (same forms as --since).")
    ] = None,
    top: Annotated[int, typer.Option(min=1, help="How many (endpoint, kind) offenders.")] = 5,
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            help="table, markdown (the runbook page) or json (loadkit.errors/1: docs/errors.md).",
        ),
    ] = "table",
    out: Annotated[
        Path | None, typer.Option(help="Write the report to this file instead of stdout.")
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help='An acceptance file whose [logs] says the log format: preset = "nginx", or '
            'field paths of another JSON log (status = "status", path = "req.path", ...). '
            "Read only when given.",
            show_default=False,
        ),
    ] = None,
    preset: Annotated[
        str | None,
        typer.Option(
            help="The log format, over [logs]: loadkit (the bundled service's JSON log, the "
            "default) or nginx (nginx's default combined access log: kind from the status, ids "
            "in paths folded into {id}).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Break errors down by kind and endpoint, from service logs and loadkit runs.

    Top offenders (endpoint, kind) with status codes, P95, first/last seen, a trace id each.

    --results sets the client's errors beside the server's, joined by trace id.

    Other logs: --preset nginx reads nginx's combined access log; [logs] in --config maps the
    fields of another JSON log.

    Lines that are not in the format read are skipped and counted.

    Exit 0 with a report, 2 when an input cannot be read or holds no log line of the format,
    or --config/--preset is wrong.
    """
    from loadkit.run.errors import run_errors

    with exit_on_error():
        report = run_errors(
            log_files=log_files or [],
            results=results or [],
            since=since,
            until=until,
            top=top,
            fmt=fmt,
            out=out,
            config=config,
            preset=preset,
        )
        if report.written_to is None:
            typer.echo(report.text, nl=False)
        else:
            typer.echo(f"wrote {report.written_to}", err=True)


# --- traces ------------------------------------------------------------------------------------


@app.command()
def traces(
    span_files: Annotated[
        list[Path],
        typer.Argument(
            help="Span files: the service's ENGINES_TRACE_FILE (one OTLP-JSON record per "
            "line) or a collector's OTLP-JSON export; gzip too.",
            show_default=False,
        ),
    ],
    top: Annotated[int, typer.Option(min=1, help="How many of the slowest traces to show.")] = 10,
    fmt: Annotated[str, typer.Option("--format", help="table or json.")] = "table",
) -> None:
    """Where the time went: per endpoint, how the time of all requests, the slowest 1 % and the
    failed ones splits into lock wait, lock hold, database, password hashing, token work and
    the rest (exact sums of the spans' self time); then the slowest traces and their critical
    paths.

    Exit 0 with a report, 2 when a file cannot be read or no SERVER span is found.
    """
    from loadkit.report.traces import parse_format, render_traces
    from loadkit.run.traces import read_span_files

    with exit_on_error():
        report_format = parse_format(fmt)
        reading = read_span_files(span_files, top=top)
        typer.echo(
            render_traces(
                reading.breakdown,
                fmt=report_format,
                read=reading.read,
                assembled=reading.assembled,
                sources=[str(p) for p in reading.sources],
            ),
            nl=False,
        )


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()

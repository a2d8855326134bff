"""``loadkit load`` / ``ui`` / ``--worker``: what to run, against what, and what came of it.

Resolves the target and the scenario, checks what can be checked before a run (target
reachable, results path writable, UI port free, Locust's own configuration files and variables
read, those loadkit's command line overrides said so, and none of them one that loadkit
refuses), describes the run as a ``LocustLaunch`` and
runs it in a process of its own (``loadkit.engines.locust``; Locust is never imported here),
then reads back the results file the plugin wrote, marking it aborted when the run was
interrupted.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import sys
import tempfile
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from loadkit.config import Criterion, LoadProfile, TargetProfile
from loadkit.defaults import (
    DEFAULT_MASTER_PORT,
    DEFAULT_TARGET,
    DEFAULT_UI_DIR,
    DEFAULT_WEB_PORT,
    DEFAULT_WORKERS_WAIT_S,
    LOOPBACK,
)
from loadkit.engines.declarative import secret_names
from loadkit.engines.http_request import RequestSpec, TlsOptions
from loadkit.engines.locust.launch import (
    Headless,
    LocalWorkers,
    LocustLaunch,
    RemoteWorkers,
    Schedule,
    Users,
    WebUI,
    Worker,
    options_loadkit_sets,
)
from loadkit.engines.locust.locust_config import (
    Command,
    LocustConfig,
    check_locust_config,
    read_locust_config,
)
from loadkit.engines.locust.locustfile import locustfile_problem
from loadkit.engines.locust.passthrough import locust_usage_error
from loadkit.engines.locust.process import STOP_GRACE_S, LocustRun, ProgressCallback, run_locust
from loadkit.engines.locust.usage_error import ERROR_PREFIX
from loadkit.engines.target import parse_target, scenario_target
from loadkit.exceptions import (
    ConfigError,
    GeneratorCrashedError,
    InputError,
    InvalidLoadRunError,
    LoadInterrupted,
    LoadkitError,
    TargetUnreachableError,
    WorkersNotConnectedError,
)
from loadkit.files import write_file
from loadkit.measure.load_results import mark_aborted, unmeasured_load_results
from loadkit.measure.results import LoadResults, read_results, write_results
from loadkit.measure.validity import (
    INTERRUPTED,
    InvalidReason,
    aborted_reason,
    exit_description,
    generator_crashed_reason,
)
from loadkit.run.bundle import bundled_scenarios_dir
from loadkit.run.bundled_service import free_port
from loadkit.run.ui_reports import UiReportWriter
from loadkit.stages import users_for
from loadkit.url_credentials import mask_password

BUNDLED_SCENARIOS = bundled_scenarios_dir()
"""Where the scenarios shipped with loadkit live (in a wheel or a checkout: loadkit.run.bundle)."""
URL_SCENARIO = "url"
DECLARATIVE_SCENARIO = BUNDLED_SCENARIOS / "declarative.py"
"""The locustfile that runs a declarative scenario of acceptance.toml (``[scenarios.NAME]``)."""

CONNECT_TIMEOUT_S = 3.0
START_GRACE_S = 60.0
"""Time allowed for Locust to start, a master's workers to connect and the locustfile's
``test_start`` hooks to run, before a run is bounded (the plugin's clock, and so ``--duration``,
starts after those hooks; Locust gets no ``--run-time`` that would count them)."""

OPEN_DRAIN_ALLOWANCE_S = 60.0
"""An open run's end waits for the iterations still in flight, each for at most its request
timeout (Locust's HTTP users: 60 s by default): the run's time bound allows for that."""

Announce = Callable[[str], None]


@dataclass(frozen=True)
class Target:
    """Where the load goes: the URL as the user wrote it, its scheme and host, and its path."""

    url: str
    """Locust's ``--host`` for every scenario but the bundled ``url`` one: plain Locust prepends
    it, path included, to every relative request path."""
    host: str
    """``scheme://host[:port]``: the bundled ``url`` scenario's ``--host``."""
    path: str
    """Path and query ("/" when none): what the bundled ``url`` scenario requests."""

    @classmethod
    def parse(cls, url: str) -> Target:
        """Split and check a target URL (``loadkit.engines.target``: http or https, a host)."""
        parsed = parse_target(url, option="target")
        return cls(url=url.strip(), host=parsed.base, path=parsed.path)

    @property
    def address(self) -> tuple[str, int]:
        """(host, port) to connect to."""
        parsed = parse_target(self.host, option="target")
        return parsed.hostname, parsed.port


def locust_config_for_run(command: Command, announce: Announce | None = None) -> LocustConfig:
    """Locust's own configuration that the Locust started here for ``command`` will read (files
    in the current folder and home, ``LOCUST_*`` variables), with what loadkit's command line
    overrides of it, said on stderr (or to ``announce``) when there is any; a ConfigError naming
    the file and key (or variable) that loadkit refuses."""
    config = read_locust_config(cwd=Path.cwd(), environ=os.environ)
    config = check_locust_config(config, command=command, overridden=options_loadkit_sets(command))
    if not config.empty:
        (announce or _to_stderr)(config.notice())
    return config


def _to_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def check_reachable(target: Target, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """Refuse to start a run against a target nobody answers on (TCP connect)."""
    host, port = target.address
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise TargetUnreachableError(
            f"cannot connect to {mask_password(target.host)} ({reason}); is the service running? "
            f"(`loadkit serve` starts the bundled one on {DEFAULT_TARGET})"
        ) from None


def resolve_scenario(name: str) -> Path:
    """A scenario by name (``login`` → ``scenarios/login.py``) or by path to a locustfile."""
    candidate = Path(name)
    if candidate.suffix == ".py" or os.sep in name or "/" in name:
        if candidate.is_file():
            return candidate.resolve()
        raise ConfigError(f"scenario file {name} does not exist")
    folders = [Path.cwd() / "scenarios", BUNDLED_SCENARIOS]
    for folder in folders:
        path = folder / f"{name}.py"
        if path.is_file():
            return path.resolve()
    known = sorted(
        {p.stem for folder in folders if folder.is_dir() for p in folder.glob("[!_]*.py")}
    )
    raise ConfigError(
        f"no scenario named {name!r}; known: {', '.join(known) or 'none'} "
        "(or pass the path to a locustfile, or write [scenarios.NAME] in the acceptance file "
        "given by --config)"
    )


def run_load(
    *,
    target: str,
    profile: LoadProfile,
    out: Path,
    processes: int = 1,
    quiet: bool = False,
    master: bool = False,
    expect_workers: int = 1,
    master_bind_host: str = LOOPBACK,
    master_bind_port: int = DEFAULT_MASTER_PORT,
    master_wait_s: int = DEFAULT_WORKERS_WAIT_S,
    locust_args: Sequence[str] = (),
    progress: ProgressCallback | None = None,
    announce: Announce | None = None,
    request: RequestSpec | None = None,
    tls: TlsOptions | None = None,
    http2: bool = False,
    abort_on: Sequence[Criterion] = (),
    target_profile: TargetProfile | None = None,
    declarative: str | None = None,
) -> LoadResults:
    """Run one headless load test on Locust and return its results (also written to ``out``).

    ``target`` is the base URL (or, for the ``url`` scenario, the full URL to hit). ``processes``
    > 1 runs Locust's master and that many workers on this machine; ``master`` waits for
    ``expect_workers`` workers from elsewhere (``loadkit load --worker --master-host ...``), at
    most ``master_wait_s`` seconds (then WorkersNotConnectedError; an aborted file at ``out``).
    ``locust_args`` are passed on to Locust as they are (the CLI refuses those loadkit sets
    itself: ``passthrough.check_locust_args``; the plugin what Locust parsed otherwise); Locust's
    own configuration files and variables are read, said (to ``announce``, else stderr) and
    refused as ``locust_config_for_run`` does.
    Progress goes to ``progress``, else to stderr unless ``quiet``. ``request``: the bundled
    ``url`` scenario's method, headers and body (``--method``, ``--header``, ``--body``);
    ``tls`` how https certificates are checked (default: verified), given to the plugin.
    ``http2``: the locustfile's HTTP users speak HTTP/2 (``--http2``; the plugin refuses a
    locustfile written on FastHttpUser, exit 2).
    ``abort_on``: abort-on-fail criteria the plugin checks every second (a master on its
    workers' merged figures, which then report every second instead of Locust's 3 s).
    ``declarative``: the JSON description of the profile's scenario when it is a declarative
    one (``loadkit.engines.declarative.describe``), run by ``scenarios/declarative.py``.

    Raises TargetUnreachableError before the run; ConfigError for a bad profile or a scenario
    Locust cannot load; GeneratorCrashedError when Locust died (or hung) without results;
    InvalidLoadRunError when the run is invalid (generator overloaded, cut short) and
    LoadInterrupted (a KeyboardInterrupt) on Ctrl-C or SIGTERM, both after the results were
    written.
    """
    if processes < 1:
        raise ConfigError(f"--processes must be at least 1, not {processes}")
    if master and processes > 1:
        raise ConfigError("--master cannot be combined with --processes (Locust's own rule)")
    workers = expect_workers if master else processes
    bound = profile.in_flight_bound
    if bound is not None and workers > 1 and bound < workers:
        # Locust would give some workers no user: their share of the timetable would never run.
        flag = "--expect-workers" if master else "--processes"
        raise ConfigError(
            f"--max-in-flight {bound} is below {flag} {workers}: each worker needs at least "
            f"one iteration in flight; raise --max-in-flight to {workers} or more"
        )
    scenario = (
        DECLARATIVE_SCENARIO if declarative is not None else resolve_scenario(profile.scenario)
    )
    parsed = Target.parse(target)
    check_writable(out)
    locust_config = locust_config_for_run("load", announce)
    run_id = uuid.uuid4().hex
    try:
        run, results = _run_headless(
            parsed,
            scenario,
            profile,
            out=out,
            run_id=run_id,
            processes=processes,
            quiet=quiet,
            master=master,
            expect_workers=expect_workers,
            master_bind_host=master_bind_host,
            master_bind_port=master_bind_port,
            master_wait_s=master_wait_s,
            locust_args=locust_args,
            locust_config=locust_config,
            progress=progress,
            request=request,
            tls=tls or TlsOptions(),
            http2=http2,
            abort_on=abort_on,
            target_profile=target_profile,
            declarative=declarative,
        )
    except (LoadkitError, KeyboardInterrupt) as error:
        written = _read_run_results(out, run_id)
        if written is not None:
            if not isinstance(error, KeyboardInterrupt):
                raise
            # Interrupted once the plugin had written this run's results: kept, marked aborted.
            results = mark_aborted(written, INTERRUPTED)
            write_results(out, results)
            raise LoadInterrupted(results, out) from None
        # Stopped before the plugin wrote this run's results (unreachable, Ctrl-C or SIGTERM
        # before Locust measured anything, Locust dead): an invalid results file replaces
        # whatever --out held, so that a passing file of an earlier run cannot stay behind
        # for the gate to judge.
        unmeasured = unmeasured_load_results(
            target=target,
            config=_unmeasured_config(
                profile,
                run_id=run_id,
                processes=processes,
                locust_args=locust_args,
                locust_config=locust_config,
                http2=http2,
            ),
            reason=_unmeasured_reason(error),
        )
        # Best effort: --out was writable a moment ago; if it no longer is, the error that
        # stopped the run is still the one to report.
        with contextlib.suppress(OSError):
            write_results(out, unmeasured)
        if isinstance(error, GeneratorCrashedError):
            error.results, error.path = unmeasured, out
            raise
        if isinstance(error, KeyboardInterrupt):
            raise LoadInterrupted(unmeasured, out) from None
        raise
    if run.interrupted or run.timed_out:
        why = INTERRUPTED if run.interrupted else "ran past its time bound"
        results = mark_aborted(results, why)
        write_results(out, results)
    else:
        results = _with_locust_exit_code(results, run, out)
    if run.interrupted:
        raise LoadInterrupted(results, out)
    if not results.valid:
        raise InvalidLoadRunError(results, out)
    return results


def _abort_json(criteria: Sequence[Criterion]) -> str | None:
    """The abort-on-fail criteria as the plugin's ``--loadkit-abort`` takes them (None: none)."""
    if not criteria:
        return None
    return json.dumps([c.model_dump(mode="json", exclude_none=True) for c in criteria])


def _with_locust_exit_code(results: LoadResults, run: LocustRun, out: Path) -> LoadResults:
    """The results of a run Locust ended on its own, with the exit code Locust gave it
    (``locust_exit_code``, written to ``out``): the locustfile's ``process_exit_code``, which it
    may set as late as in its ``quitting`` listener, after the plugin wrote the results; 2 after
    an unhandled exception in Locust's event handlers or greenlets; else 0 (failed requests do
    not count: loadkit passes ``--exit-code-on-error 0``). The plugin leaves that code alone
    when loadkit launched it (``--loadkit-keep-exit-code``), so it is never the plugin's own 4
    for an invalid run. A valid run exits with it, as plain Locust does (``cli.load``)."""
    if run.returncode < 0:  # killed by a signal: Locust gave no verdict
        return results
    results = results.model_copy(update={"locust_exit_code": run.returncode})
    write_results(out, results)
    return results


def _run_headless(
    target: Target,
    scenario: Path,
    profile: LoadProfile,
    *,
    out: Path,
    run_id: str,
    processes: int,
    quiet: bool,
    master: bool,
    expect_workers: int,
    master_bind_host: str,
    master_bind_port: int,
    locust_args: Sequence[str],
    locust_config: LocustConfig,
    progress: ProgressCallback | None,
    request: RequestSpec | None = None,
    tls: TlsOptions | None = None,
    http2: bool = False,
    abort_on: Sequence[Criterion] = (),
    target_profile: TargetProfile | None = None,
    master_wait_s: int = DEFAULT_WORKERS_WAIT_S,
    declarative: str | None = None,
) -> tuple[LocustRun, LoadResults]:
    """Run Locust headless; how it ended and the results its plugin wrote for ``run_id``.

    Raises when there are none: KeyboardInterrupt when the run was interrupted first,
    ConfigError when the scenario cannot be loaded or Locust refused its arguments,
    GeneratorCrashedError otherwise.
    """
    check_reachable(target)
    workers: LocalWorkers | RemoteWorkers | None = None
    if processes > 1:
        workers = LocalWorkers(count=processes, port=free_port())
    elif master:
        workers = RemoteWorkers(
            expect=expect_workers,
            bind_host=master_bind_host,
            bind_port=master_bind_port,
            wait_s=master_wait_s,
        )
    with tempfile.TemporaryDirectory(prefix="loadkit-load-") as tmp:
        users = _with_declarative(_users(target, scenario, profile), declarative, Path(tmp))
        if request is not None and _is_url_scenario(scenario):
            users = replace(
                users, url_request=request, url_body_file=_body_file(request, Path(tmp))
            )
        launch = LocustLaunch(
            scenario=scenario,
            role=Headless(
                users=users,
                duration_s=profile.run_duration_s,
                schedule=_schedule(profile),
                # Absolute, not resolved: a symlink at --out is replaced, never written through.
                out=Path(os.path.abspath(out)),
                status=Path(tmp) / "status.json",
                run_id=run_id,
                workers=workers,
                abort_criteria=_abort_json(abort_on),
            ),
            parent_pid=os.getpid(),
            locust_args=tuple(locust_args),
            locust_config=locust_config,
            tls=tls or TlsOptions(),
            http2=http2,
            target=target_profile or TargetProfile(),
        )
        bound_s = START_GRACE_S + profile.run_duration_s + _drain_allowance_s(profile)
        bound_s += STOP_GRACE_S + (master_wait_s if isinstance(workers, RemoteWorkers) else 0)
        if progress is None and not quiet:
            from loadkit.report.load import ProgressPrinter

            printer: ProgressPrinter | None = ProgressPrinter(
                duration_s=profile.run_duration_s,
                open_model=profile.model == "open",
                rate=profile.rate if profile.stages is None else None,
            )
            progress = printer
        else:
            printer = None
        try:
            run = run_locust(
                launch, log_path=Path(tmp) / "locust.log", bound_s=bound_s, progress=progress
            )
        finally:
            if printer is not None:
                printer.close()
        results = _read_run_results(out, run_id)
        if results is None:
            if run.interrupted:
                raise KeyboardInterrupt
            _raise_if_unloadable(scenario)
            _raise_if_refused_by_locust(run)
            if isinstance(workers, RemoteWorkers):
                _raise_if_workers_never_came(run, workers)
            raise GeneratorCrashedError(
                f"the load generator (Locust) {_how_it_ended(run, bound_s)} without writing "
                f"results, though the scenario loads ({out} is marked generator_crashed)",
                log_tail=run.log_tail,
                exit_code=run.returncode,
            )
    return run, results


LOCUST_GAVE_UP = "Gave up waiting for workers to connect"
"""What Locust's master logs when --expect-workers-max-wait ran out (locust/main.py; exit 1)."""
LOCUST_WAITING = re.compile(r"Waiting for workers to be ready, (\d+) of \d+ connected")


def _raise_if_workers_never_came(run: LocustRun, workers: RemoteWorkers) -> None:
    """Locust's master gave up waiting for its workers (its own log line says so, the only
    trace it leaves): WorkersNotConnectedError, with how many came when Locust said it."""
    if LOCUST_GAVE_UP not in run.log_tail:
        return
    counts = LOCUST_WAITING.findall(run.log_tail)
    raise WorkersNotConnectedError.waited(
        expect=workers.expect,
        address=f"{workers.bind_host}:{workers.bind_port}",
        wait_s=workers.wait_s,
        connected=int(counts[-1]) if counts else None,
    )


def _with_declarative(users: Users, declarative: str | None, folder: Path) -> Users:
    """``users`` running the declarative scenario ``declarative`` (its JSON description, None:
    none): written to a file in ``folder``, the run's own (Linux caps one argument at 128 KiB,
    which a big JSON body outgrows), and its secrets named for the plugin to mask."""
    if declarative is None:
        return users
    path = write_file(folder / "declarative.json", declarative.encode(), durable=False)
    return replace(users, declarative_file=path, secret_names=secret_names(declarative))


def _body_file(request: RequestSpec, folder: Path) -> Path | None:
    """A body a command line cannot carry as text (not UTF-8, or a NUL) goes to Locust as a
    file in ``folder``; None for a text body."""
    try:
        if b"\0" not in request.body:
            request.body.decode()
            return None
    except UnicodeDecodeError:
        pass
    return write_file(folder / "url-body", request.body, durable=False)


def _unmeasured_config(
    profile: LoadProfile,
    *,
    run_id: str,
    processes: int,
    locust_args: Sequence[str],
    locust_config: LocustConfig,
    http2: bool = False,
) -> dict[str, object]:
    """What a run that measured nothing was asked to do (the keys the plugin writes)."""
    config: dict[str, object] = {
        "scenario": profile.scenario,
        "concurrency": _users_count(profile),
        "spawn_rate": profile.spawn_rate,
        "duration_s": profile.run_duration_s,
        "processes": processes,
        "model": profile.model,
        "engine": "locust",
    }
    if profile.rate is not None:
        config |= {"rate": profile.rate, "max_in_flight": profile.in_flight_bound}
    if profile.stages is not None:
        config["stages"] = [asdict(stage) for stage in profile.stage_list]
    if http2:
        config["http2"] = True
    return config | {
        "run_id": run_id,
        "locust_args": list(locust_args),
        "locust_config": locust_config.to_results(),
    }


def _unmeasured_reason(error: LoadkitError | KeyboardInterrupt) -> InvalidReason:
    if isinstance(error, KeyboardInterrupt):
        return aborted_reason(f"{INTERRUPTED} before the run measured anything")
    if isinstance(error, GeneratorCrashedError):
        return generator_crashed_reason(exit_code=error.exit_code)
    return aborted_reason(f"the run could not start: {error}")


def run_ui(
    *,
    target: str,
    scenario: str,
    web_port: int = DEFAULT_WEB_PORT,
    results_dir: Path = DEFAULT_UI_DIR,
    concurrency: int = 10,
    spawn_rate: float | None = None,
    announce: Callable[[str], None] | None = None,
    locust_args: Sequence[str] = (),
    tls: TlsOptions | None = None,
    target_profile: TargetProfile | None = None,
    http2: bool = False,
    declarative: str | None = None,
) -> int:
    """Serve Locust's web UI on loopback with the plugin loaded, until Ctrl-C or SIGTERM.

    Every test started from the UI writes ``<results_dir>/ui-<time>.json`` when it stops, and
    this process its HTML report beside it (``ui-<time>.html``), which the UI links.
    ``http2``: the users speak HTTP/2 (as ``run_load``'s; the plugin refuses a locustfile whose
    users cannot, before the UI serves).
    Returns Locust's exit code (0 after a Ctrl-C: that is how the UI is closed); a ConfigError
    when Locust failed because it cannot load the scenario. ``declarative``: as ``run_load``'s.
    """
    path = DECLARATIVE_SCENARIO if declarative is not None else resolve_scenario(scenario)
    parsed = Target.parse(target)
    _check_port_free(web_port)
    check_reachable(parsed)
    locust_config = locust_config_for_run("ui", announce)
    users = Users(
        host=_locust_host(parsed, path),
        count=concurrency,
        spawn_rate=spawn_rate or concurrency,
        scenario_label=scenario,
        url_path=_url_path(parsed, path),
    )
    with tempfile.TemporaryDirectory(prefix="loadkit-ui-") as tmp:
        launch = LocustLaunch(
            scenario=path,
            role=WebUI(
                users=_with_declarative(users, declarative, Path(tmp)),
                port=web_port,
                results_dir=results_dir.resolve(),
            ),
            parent_pid=os.getpid(),
            locust_args=tuple(locust_args),
            locust_config=locust_config,
            tls=tls or TlsOptions(),
            http2=http2,
            target=target_profile or TargetProfile(),
        )
        if announce is not None:
            announce(
                f"Locust web UI with loadkit{', users over HTTP/2' if http2 else ''}: "
                f"http://{LOOPBACK}:{web_port} (Ctrl-C to stop); "
                f"each test writes its results to {results_dir}/ui-<time>.json "
                "and its HTML report beside them"
            )
        with UiReportWriter(results_dir.resolve(), announce=announce):
            return _run_until_quit(launch)


def run_worker(
    *,
    scenario: str,
    master_host: str,
    master_port: int = DEFAULT_MASTER_PORT,
    processes: int = 1,
    locust_args: Sequence[str] = (),
    announce: Announce | None = None,
    tls: TlsOptions | None = None,
    http2: bool = False,
    target_profile: TargetProfile | None = None,
) -> int:
    """Run Locust worker(s) with the plugin for a master elsewhere, until it quits.

    The master (``loadkit load --master``) decides the target, users and duration, and writes
    the results; workers only measure and ship their shares. Locust sends the master's tags and
    locustfile arguments to the workers with each spawn; ``locust_args`` here reach what the
    workers read before (an ``init`` hook) or for themselves (``--loglevel``). Returns Locust's
    exit code; a ConfigError when Locust failed because it cannot load the scenario or refused
    its arguments.
    """
    path = resolve_scenario(scenario)
    locust_config = locust_config_for_run("worker", announce)
    launch = LocustLaunch(
        scenario=path,
        role=Worker(master_host=master_host, master_port=master_port, processes=processes),
        parent_pid=os.getpid(),
        locust_args=tuple(locust_args),
        locust_config=locust_config,
        tls=tls or TlsOptions(),
        http2=http2,
        target=target_profile or TargetProfile(),
    )
    return _run_until_quit(launch)


def _run_until_quit(launch: LocustLaunch) -> int:
    """Run a Locust that ends when it is told to (the web UI, workers): 0 when it quit as
    asked. A scenario it cannot load is a ConfigError (exit 2); any other failure is a crash of
    the generator (exit 4), never Locust's own exit code (1 would read as "criteria not met")."""
    run = run_locust(launch)
    if run.interrupted or run.returncode == 0:
        return 0
    _raise_if_unloadable(launch.scenario)
    _raise_if_refused_by_locust(run)
    raise GeneratorCrashedError(
        f"the load generator (Locust) {_how_it_ended(run, 0.0)}", log_tail=run.log_tail
    )


def _raise_if_unloadable(scenario: Path) -> None:
    """A ConfigError (exit 2) naming the file when Locust cannot load the scenario.

    Asked only after Locust failed: a broken locustfile is the user's input, not a crash.
    """
    problem = locustfile_problem(scenario)
    if problem is not None:
        raise ConfigError(f"scenario {scenario} cannot be loaded: {problem}")


def _raise_if_refused_by_locust(run: LocustRun) -> None:
    """A ConfigError (exit 2) with Locust's own line when Locust refused its command line (an
    argument after ``--``, a key of its configuration files): the user's input, not a crash."""
    refused = locust_usage_error(run.returncode, run.log_tail)
    if refused is not None and refused.startswith(ERROR_PREFIX):
        # The plugin refused what loadkit asked of it (stages with the locustfile's own shape).
        raise ConfigError(refused.removeprefix(ERROR_PREFIX))
    if refused is not None:
        raise ConfigError(
            f"Locust refused its arguments (those after `--`, or its configuration files): "
            f"{refused}"
        )


def _how_it_ended(run: LocustRun, bound_s: float) -> str:
    if run.timed_out:
        return f"was stopped after running {bound_s:.0f} s, past its time bound,"
    return exit_description(run.returncode)


def _users(target: Target, scenario: Path, profile: LoadProfile) -> Users:
    """The users of a headless run: all started at once unless the profile says how fast."""
    count = _users_count(profile)
    return Users(
        host=_locust_host(target, scenario),
        count=count,
        spawn_rate=profile.spawn_rate or float(count),
        scenario_label=profile.scenario,
        url_path=_url_path(target, scenario),
    )


def _users_count(profile: LoadProfile) -> int:
    """Locust's ``--users``: an open run's slots (one user per iteration that may run at once),
    closed-model stages' peak (the stages then drive them), else the profile's concurrency."""
    if profile.in_flight_bound is not None:
        return profile.in_flight_bound
    if profile.stages is not None:
        return max(1, max(users_for(stage.target) for stage in profile.stage_list))
    return profile.concurrency


def _schedule(profile: LoadProfile) -> Schedule:
    """What the plugin gets of the profile's open model and stages."""
    return Schedule(
        rate=profile.rate, max_in_flight=profile.in_flight_bound, stages=profile.stage_list
    )


def _drain_allowance_s(profile: LoadProfile) -> float:
    """Time allowed past the planned end for an open run's iterations still in flight, which the
    plugin waits for (closed runs stop their users at once)."""
    return OPEN_DRAIN_ALLOWANCE_S if profile.model == "open" else 0.0


def _is_url_scenario(scenario: Path) -> bool:
    return scenario.stem == URL_SCENARIO and scenario.parent == BUNDLED_SCENARIOS


def _locust_host(target: Target, scenario: Path) -> str:
    """Locust's ``--host``: the target as written (as plain Locust gets it), except for the
    bundled ``url`` scenario, which requests the target's path on its scheme and host, and the
    declarative one, whose paths follow the target's base path as on the native engine
    (``scenario_target``: no trailing slash, a query refused)."""
    if _is_url_scenario(scenario):
        return target.host
    if scenario == DECLARATIVE_SCENARIO:
        return scenario_target(target.url, option="target")
    return target.url


def _url_path(target: Target, scenario: Path) -> str | None:
    """The target's path, for the bundled ``url`` scenario (which requests it) only."""
    return target.path if _is_url_scenario(scenario) else None


def _check_port_free(port: int) -> None:
    """Refuse a web UI port something else listens on (Locust would exit with a traceback)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As Locust's server does: a port in TIME_WAIT from an earlier UI is free to reuse.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LOOPBACK, port))
        except OSError as exc:
            raise ConfigError(
                f"--web-port {port}: cannot listen on {LOOPBACK}:{port} ({exc.strerror}); "
                "pick another port"
            ) from None


def check_writable(out: Path) -> None:
    """Refuse, before the run, a results path Locust could not write at its end."""
    folder = Path(os.path.abspath(out)).parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"--out {out}: cannot create {folder}: {exc.strerror}") from None
    # A symlink at --out (to a folder or not) is fine: the results file replaces the link.
    is_folder = out.is_dir() and not out.is_symlink()
    if is_folder or not os.access(folder, os.W_OK):
        raise ConfigError(f"--out {out}: not a writable file path")


def _read_run_results(path: Path, run_id: str) -> LoadResults | None:
    """The results this run wrote (None when the file is missing, stale or not load results)."""
    try:
        results = read_results(path)
    except InputError:
        return None
    if not isinstance(results, LoadResults) or results.config.get("run_id") != run_id:
        return None
    return results

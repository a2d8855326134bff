"""``loadkit load`` / ``ui`` / ``--worker``: what to run, against what, and what came of it.

Resolves the target and the scenario, checks what can be checked before a run (target
reachable, results path writable, UI port free), describes the run as a ``LocustLaunch`` and
runs it in a process of its own (``loadkit.engines.locust``; Locust is never imported here),
then reads back the results file the plugin wrote, marking it aborted when the run was
interrupted.
"""

from __future__ import annotations

import os
import signal
import socket
import tempfile
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from loadkit.config import LoadProfile
from loadkit.defaults import (
    DEFAULT_MASTER_PORT,
    DEFAULT_TARGET,
    DEFAULT_UI_DIR,
    DEFAULT_WEB_PORT,
    LOOPBACK,
)
from loadkit.engines.locust.launch import (
    Headless,
    LocalWorkers,
    LocustLaunch,
    RemoteWorkers,
    Users,
    WebUI,
    Worker,
)
from loadkit.engines.locust.locustfile import locustfile_problem
from loadkit.engines.locust.process import STOP_GRACE_S, LocustRun, ProgressCallback, run_locust
from loadkit.engines.target import parse_target
from loadkit.exceptions import (
    ConfigError,
    GeneratorCrashedError,
    InputError,
    InvalidLoadRunError,
    LoadInterrupted,
    TargetUnreachableError,
)
from loadkit.measure.load_results import mark_aborted
from loadkit.measure.results import LoadResults, read_results, write_results
from loadkit.run.bundle import bundled_scenarios_dir
from loadkit.run.bundled_service import free_port

BUNDLED_SCENARIOS = bundled_scenarios_dir()
"""Where the scenarios shipped with loadkit live (in a wheel or a checkout: loadkit.run.bundle)."""
URL_SCENARIO = "url"

CONNECT_TIMEOUT_S = 3.0
START_GRACE_S = 60.0
"""Time allowed for Locust to start (and a master's workers to connect) before a run is bounded."""


@dataclass(frozen=True)
class Target:
    """Where the load goes: the base URL Locust gets as ``--host``, and a path for ``url.py``."""

    host: str
    path: str

    @classmethod
    def parse(cls, url: str) -> Target:
        """Split and check a target URL (``loadkit.engines.target``: http or https, a host)."""
        parsed = parse_target(url, option="target")
        return cls(host=parsed.base, path=parsed.path)

    @property
    def address(self) -> tuple[str, int]:
        """(host, port) to connect to."""
        parsed = parse_target(self.host, option="target")
        return parsed.hostname, parsed.port


def check_reachable(target: Target, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """Refuse to start a run against a target nobody answers on (TCP connect)."""
    host, port = target.address
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise TargetUnreachableError(
            f"cannot connect to {target.host} ({reason}); is the service running? "
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
        "(or pass the path to a locustfile)"
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
    locust_args: Sequence[str] = (),
    progress: ProgressCallback | None = None,
) -> LoadResults:
    """Run one headless load test and return its results (also written to ``out``).

    ``target`` is the base URL (or, for the ``url`` scenario, the full URL to hit). ``processes``
    > 1 runs Locust's master and that many workers on this machine; ``master`` waits for
    ``expect_workers`` workers from elsewhere (``loadkit load --worker --master-host ...``).
    ``locust_args`` are passed on to Locust as they are. Progress goes to ``progress``, else to
    stderr unless ``quiet``.

    Raises TargetUnreachableError before the run; ConfigError for a bad profile or a scenario
    Locust cannot load; GeneratorCrashedError when Locust died (or hung) without results;
    InvalidLoadRunError when the run is invalid (generator overloaded, cut short) and
    LoadInterrupted (a KeyboardInterrupt) on Ctrl-C or SIGTERM, both after the results were
    written.
    """
    if profile.rate is not None:
        raise ConfigError(
            "rate (open model) is not supported by `loadkit load` yet: Locust's users are "
            "closed-loop; remove `rate` from the profile"
        )
    if processes < 1:
        raise ConfigError(f"--processes must be at least 1, not {processes}")
    if master and processes > 1:
        raise ConfigError("--master cannot be combined with --processes (Locust's own rule)")
    scenario = resolve_scenario(profile.scenario)
    parsed = Target.parse(target)
    _check_writable(out)
    check_reachable(parsed)
    workers: LocalWorkers | RemoteWorkers | None = None
    if processes > 1:
        workers = LocalWorkers(count=processes, port=free_port())
    elif master:
        workers = RemoteWorkers(
            expect=expect_workers, bind_host=master_bind_host, bind_port=master_bind_port
        )
    run_id = uuid.uuid4().hex
    with tempfile.TemporaryDirectory(prefix="loadkit-load-") as tmp:
        launch = LocustLaunch(
            scenario=scenario,
            role=Headless(
                users=_users(parsed, scenario, profile),
                duration_s=profile.duration_s,
                out=out.resolve(),
                status=Path(tmp) / "status.json",
                run_id=run_id,
                workers=workers,
            ),
            parent_pid=os.getpid(),
            locust_args=tuple(locust_args),
        )
        bound_s = START_GRACE_S + profile.duration_s + STOP_GRACE_S
        if progress is None and not quiet:
            from loadkit.report.load import ProgressPrinter

            printer: ProgressPrinter | None = ProgressPrinter(duration_s=profile.duration_s)
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
                raise LoadInterrupted(None, None)
            _raise_if_unloadable(scenario)
            raise GeneratorCrashedError(
                f"the load generator (Locust) {_how_it_ended(run, bound_s)} without writing "
                "results, though the scenario loads",
                log_tail=run.log_tail,
            )
    if run.interrupted or run.timed_out:
        why = "interrupted (Ctrl-C or SIGTERM)" if run.interrupted else "ran past its time bound"
        results = mark_aborted(results, why)
        write_results(out, results)
    if run.interrupted:
        raise LoadInterrupted(results, out)
    if not results.valid:
        raise InvalidLoadRunError(results, out)
    return results


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
) -> int:
    """Serve Locust's web UI on loopback with the plugin loaded, until Ctrl-C or SIGTERM.

    Every test started from the UI writes ``<results_dir>/ui-<time>.json`` when it stops.
    Returns Locust's exit code (0 after a Ctrl-C: that is how the UI is closed); a ConfigError
    when Locust failed because it cannot load the scenario.
    """
    path = resolve_scenario(scenario)
    parsed = Target.parse(target)
    _check_port_free(web_port)
    check_reachable(parsed)
    users = Users(
        host=parsed.host,
        count=concurrency,
        spawn_rate=spawn_rate or concurrency,
        scenario_label=scenario,
        url_path=_url_path(parsed, path),
    )
    launch = LocustLaunch(
        scenario=path,
        role=WebUI(users=users, port=web_port, results_dir=results_dir.resolve()),
        parent_pid=os.getpid(),
        locust_args=tuple(locust_args),
    )
    if announce is not None:
        announce(
            f"Locust web UI with loadkit: http://{LOOPBACK}:{web_port} (Ctrl-C to stop); "
            f"each test writes its results to {results_dir}/ui-<time>.json"
        )
    run = run_locust(launch)
    if run.interrupted:
        return 0
    if run.returncode != 0:
        _raise_if_unloadable(path)
    return run.returncode


def run_worker(
    *,
    scenario: str,
    master_host: str,
    master_port: int = DEFAULT_MASTER_PORT,
    processes: int = 1,
    locust_args: Sequence[str] = (),
) -> int:
    """Run Locust worker(s) with the plugin for a master elsewhere, until it quits.

    The master (``loadkit load --master``) decides the target, users and duration, and writes
    the results; workers only measure and ship their shares. Returns Locust's exit code; a
    ConfigError when Locust failed because it cannot load the scenario.
    """
    path = resolve_scenario(scenario)
    launch = LocustLaunch(
        scenario=path,
        role=Worker(master_host=master_host, master_port=master_port, processes=processes),
        parent_pid=os.getpid(),
        locust_args=tuple(locust_args),
    )
    run = run_locust(launch)
    if run.interrupted:
        return 0
    if run.returncode != 0:
        _raise_if_unloadable(path)
    return run.returncode


def _raise_if_unloadable(scenario: Path) -> None:
    """A ConfigError (exit 2) naming the file when Locust cannot load the scenario.

    Asked only after Locust failed: a broken locustfile is the user's input, not a crash.
    """
    problem = locustfile_problem(scenario)
    if problem is not None:
        raise ConfigError(f"scenario {scenario} cannot be loaded: {problem}")


def _how_it_ended(run: LocustRun, bound_s: float) -> str:
    if run.timed_out:
        return f"was stopped after running {bound_s:.0f} s, past its time bound,"
    if run.returncode < 0:
        try:
            return f"was killed by {signal.Signals(-run.returncode).name}"
        except ValueError:
            return f"was killed by signal {-run.returncode}"
    return f"exited with code {run.returncode}"


def _users(target: Target, scenario: Path, profile: LoadProfile) -> Users:
    """The users of a headless run: all started at once unless the profile says how fast."""
    return Users(
        host=target.host,
        count=profile.concurrency,
        spawn_rate=profile.spawn_rate or float(profile.concurrency),
        scenario_label=profile.scenario,
        url_path=_url_path(target, scenario),
    )


def _url_path(target: Target, scenario: Path) -> str | None:
    """The target's path, for the bundled ``url`` scenario (which requests it) only."""
    if scenario.stem == URL_SCENARIO and scenario.parent == BUNDLED_SCENARIOS:
        return target.path
    return None


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


def _check_writable(out: Path) -> None:
    """Refuse, before the run, a results path Locust could not write at its end."""
    folder = out.resolve().parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"--out {out}: cannot create {folder}: {exc.strerror}") from None
    if out.is_dir() or not os.access(folder, os.W_OK):
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

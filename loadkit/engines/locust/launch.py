"""How loadkit starts Locust, as one value: the role it plays, and the command line and
environment that say so.

Every way loadkit runs Locust is a ``LocustLaunch``: a headless test (alone, with workers forked
on this machine, or as the master of workers elsewhere), the web UI, or workers of a master
elsewhere. ``argv()`` is the one place a Locust command line is written; building a launch
starts nothing (``loadkit.engines.locust.process.run_locust`` runs it).

Locust always gets the scenario and loadkit's plugin (``-f scenario,plugin``) and our pid, so
that it shuts down by itself should we be killed outright. A headless run gets no ``--run-time``:
the plugin stops the test ``duration`` after it started (after the locustfile's ``test_start``
hooks, however long they take), and ``process.run_locust``'s time bound is the backstop.
What the user passed after ``--`` comes last, and is recorded with the Locust configuration
read (``--loadkit-launch``) in the results. The same record tells the plugin what Locust's
parsed options must be for the run loadkit measures (``expected_options``): an abbreviation
after ``--`` or a configuration key that changed one is refused there, before the test starts
(``plugin/launch_check.py``).

The target goes to Locust as ``LOCUST_HOST`` in its environment (``environ()``), never on its
command line: a password in the URL (``http://bob:Pa55word@host``) would show there in every
user's process list (``ps``), where ``/proc/PID/environ`` is readable by its own user alone.
Locust takes the variable over its configuration files and under its command line, so a
``host`` key in a ``locust.conf`` is overridden as before, and the launch record carries the
host masked (the plugin compares Locust's with ``LOCUST_HOST`` itself).

The bundled ``url`` scenario's request goes the same way, for the same reason (a bearer token
in a header, a password in a body or a query string): its path and query, headers and text body
are its options' variables (``URL_REQUEST_ENV``: the headers as one JSON list, which
configargparse turns into one ``--url-header`` each), never its command line; only the method
and a body file's path (in the run's private temp folder) are there. Locust's master sends its
parsed options, these included, to its workers with each spawn, so forked and remote workers
carry none of them on their command line either. The launch record names the variables
(``from_env``), never their values, and the plugin checks that Locust's parsed options hold
what they hold: a ``--url-header`` after ``--`` would make configargparse skip the variable and
silently drop the headers loadkit was given.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from loadkit.config import TargetProfile
from loadkit.defaults import DEFAULT_WORKERS_WAIT_S, LOOPBACK
from loadkit.engines.http_request import RequestSpec, TlsOptions
from loadkit.engines.locust.locust_config import ENV_OPTIONS, Command, LocustConfig
from loadkit.engines.locust.passthrough import DESTS, PLUGIN_PREFIX, SHORT, refusal
from loadkit.stages import Stage, stages_to_json
from loadkit.url_credentials import mask_password

PLUGIN_PATH = Path(__file__).with_name("loadkit_plugin.py")

URL_REQUEST_ENV: dict[str, str] = {
    "url_path": "LOCUST_URL_PATH",
    "url_header": "LOCUST_URL_HEADER",
    "url_body": "LOCUST_URL_BODY",
}
"""The bundled ``url`` scenario's options that may hold a secret (``dest`` → the ``env_var``
``scenarios/url.py`` gives each): loadkit passes them in Locust's environment alone, and owns
them there in a url run (a user's own ``LOCUST_URL_BODY`` never adds a body to it)."""


@dataclass(frozen=True, kw_only=True)
class Users:
    """What the simulated users do: where they send requests, how many, how fast they start."""

    host: str
    """Locust's host: the target as the user wrote it, path included (Locust prepends it to
    every relative request path); for the bundled ``url`` scenario, scheme and host only.
    Passed as ``LOCUST_HOST`` (``LocustLaunch.environ``), credentials and all."""
    count: int
    spawn_rate: float
    """Users started per second."""
    scenario_label: str
    """The scenario as the user named it (``login``, a path), carried into the results."""
    url_path: str | None = None
    """The path and query the bundled ``url`` scenario requests (``LOCUST_URL_PATH``); None
    for other scenarios."""
    url_request: RequestSpec | None = None
    """The bundled ``url`` scenario's method (``--url-method``), headers
    (``LOCUST_URL_HEADER``) and body (``LOCUST_URL_BODY``); None: a plain GET."""
    url_body_file: Path | None = None
    """Where ``url_request``'s body was written when it is not text an environment variable
    can carry (NUL, not UTF-8): ``--url-body-file``, a path in the run's private folder."""
    declarative_file: Path | None = None
    """The declarative scenario ``scenarios/declarative.py`` runs: its JSON description
    (``loadkit.engines.declarative.describe``) in a file of the run's own temp folder
    (``--declarative-file``: one argument holds at most 128 KiB); None for others. A master's
    locustfile reads it and sends it to its workers with the spawn message."""
    secret_names: tuple[str, ...] = ()
    """Environment variables whose values the plugin masks in the tracebacks it records
    (``--loadkit-secrets``: a declarative scenario's ``${NAME}``s)."""


@dataclass(frozen=True, kw_only=True)
class Schedule:
    """How the load is shaped beyond its users: an open model's rate and bound, and stages.

    Without a rate the run is closed-model (the users loop); with one, iterations start on the
    plugin's timetable and Locust's users are its slots (``Users.count`` is ``max_in_flight``).
    Stages ramp the users (closed) or the rate (open, from ``rate``).
    """

    rate: float | None = None
    """Iterations started per second, over all workers (None: closed model)."""
    max_in_flight: int | None = None
    """Open model: the most iterations running at once."""
    stages: tuple[Stage, ...] = ()

    @property
    def model(self) -> str:
        """ "open" with a rate, else "closed"."""
        return "open" if self.rate is not None else "closed"


@dataclass(frozen=True, kw_only=True)
class LocalWorkers:
    """``--processes``: a master and ``count`` workers forked on this machine.

    They talk over ``port`` on loopback, not Locust's fixed 5557: two runs on one machine (a CI
    job next to a developer's) must not collide, nor listen beyond it.
    """

    count: int
    port: int


@dataclass(frozen=True, kw_only=True)
class RemoteWorkers:
    """``--master``: start once ``expect`` workers from elsewhere (``loadkit load --worker``) are
    connected.

    Locust listens on every interface by default; loadkit only where ``bind_host`` says.
    """

    expect: int
    bind_host: str
    bind_port: int
    wait_s: int = DEFAULT_WORKERS_WAIT_S
    """Locust gives up (exit 1, no results) when they have not all connected by then."""


@dataclass(frozen=True, kw_only=True)
class Headless:
    """A test that starts at once, is stopped by the plugin after ``duration_s`` and writes
    its results to ``out``, its live status to ``status`` every second."""

    users: Users
    duration_s: float
    """The planned run time (with stages, their total)."""
    out: Path
    status: Path
    run_id: str
    """Carried into the results, so that a stale file at ``out`` is never taken for this run's."""
    schedule: Schedule = field(default_factory=Schedule)
    """Closed model with a fixed number of users unless it says otherwise."""
    workers: LocalWorkers | RemoteWorkers | None = None
    """Where the users run: in this one process (None), in forked workers, in remote workers."""
    abort_criteria: str | None = None
    """Abort on fail (one process): the criteria's JSON list, for ``--loadkit-abort``."""


@dataclass(frozen=True, kw_only=True)
class WebUI:
    """Locust's web UI on loopback; each test started from it writes its results to
    ``results_dir/ui-<time>.json``."""

    users: Users
    """What the UI's form offers (the user may change it there)."""
    port: int
    results_dir: Path


@dataclass(frozen=True, kw_only=True)
class Worker:
    """Workers of a master elsewhere, which decides the target, users and duration."""

    master_host: str
    master_port: int
    processes: int = 1
    """Worker processes started on this machine."""


@dataclass(frozen=True, kw_only=True)
class LocustLaunch:
    """One start of Locust with loadkit's plugin: the scenario, the role, and the command line."""

    scenario: Path
    """The locustfile (resolved)."""
    role: Headless | WebUI | Worker
    parent_pid: int
    """Locust shuts down (as on SIGTERM) when this process, the launcher, is gone."""
    locust_args: tuple[str, ...] = ()
    """Passed on to Locust as they are, after loadkit's own (``loadkit load … -- <args>``)."""
    locust_config: LocustConfig = field(default_factory=LocustConfig)
    """Locust's own configuration files and variables it will read: recorded in the results."""
    tls: TlsOptions = field(default_factory=TlsOptions)
    """How https targets' certificates are checked (``--loadkit-insecure``,
    ``--loadkit-ca-cert``; the plugin applies it to the locustfile's HTTP users)."""
    http2: bool = False
    """The HTTP users speak HTTP/2 (``--loadkit-http2``; ``loadkit load --http2``)."""
    target: TargetProfile = field(default_factory=TargetProfile)
    """How the API reports errors and trace ids, and the trace header sent
    (``--loadkit-target``, given only when not the bundled service's)."""

    @property
    def status_path(self) -> Path | None:
        """The live-status file the plugin replaces every second (headless runs only)."""
        return self.role.status if isinstance(self.role, Headless) else None

    def argv(self) -> list[str]:
        """The whole command line: ``python -m locust -f <scenario>,<plugin> ...``."""
        command = [sys.executable, "-m", "locust", "-f", f"{self.scenario},{PLUGIN_PATH}"]
        command += ["--loadkit-parent-pid", str(self.parent_pid)]
        match self.role:
            case Headless():
                command += _headless_args(self.role)
            case WebUI():
                command += _web_ui_args(self.role)
            case Worker():
                command += _worker_args(self.role)
        command += tls_args(self.tls)
        command += ["--loadkit-http2"] if self.http2 else []
        command += target_args(self.target)
        command += ["--loadkit-launch", self._launch_record()]
        return command + list(self.locust_args)

    def environ(self) -> dict[str, str]:
        """The variables Locust gets besides ours: the target, which may carry a password, as
        ``LOCUST_HOST``; the ``url`` scenario's path, headers and body (``URL_REQUEST_ENV``)."""
        return _role_environ(self.role)

    def child_environ(self, base: Mapping[str, str]) -> dict[str, str]:
        """Locust's whole environment, from ``base`` (ours): the variables of ``environ()``
        set, and in a ``url`` run those of ``URL_REQUEST_ENV`` that it does not set removed
        (so that the request is the one loadkit was given, and the plugin's check agrees)."""
        owned = _url_environ_owned(self.role)
        kept = {name: value for name, value in base.items() if name not in owned}
        return kept | self.environ()

    def expected_options(self) -> dict[str, object]:
        """Locust's parsed options (``dest`` → value) that the run loadkit measures needs, as
        its command line sets them (``plugin/launch_check.py`` compares). An option the caller
        passed itself, as it is spelled, in ``locust_args`` is left to the caller (the CLI
        refuses those; a library caller may want Locust's ``--json-file`` beside loadkit's)."""
        expected = _expected_options(self.role)
        given = {found.option for arg in self.locust_args if (found := refusal(arg)) is not None}
        return {dest: value for dest, value in expected.items() if DESTS[dest] not in given}

    def _launch_record(self) -> str:
        """What the results' config records of this launch (the master writes them), and what
        the plugin checks Locust's parsed options against (``expect``)."""
        record: dict[str, object] = {
            "locust_args": list(self.locust_args),
            "locust_config": self.locust_config.to_results(),
            "expect": self.expected_options(),
        }
        if owned := _url_environ_owned(self.role):
            # Names only: the values may be secrets, and this record is on the command line.
            record["from_env"] = {dest: URL_REQUEST_ENV[dest] for dest in sorted(owned.values())}
        return json.dumps(record, separators=(",", ":"))


def _role_environ(role: Headless | WebUI | Worker) -> dict[str, str]:
    match role:
        case Headless(users=users) | WebUI(users=users):
            return {"LOCUST_HOST": users.host} | _url_environ(users)
        case Worker():
            # A worker takes the host and the url scenario's options from its master, with
            # each spawn (Locust sends its parsed options).
            return {}


def _url_environ(users: Users) -> dict[str, str]:
    """The ``url`` scenario's path, headers and text body as its options' variables (none for
    other scenarios)."""
    if users.url_path is None:
        return {}
    environ = {URL_REQUEST_ENV["url_path"]: users.url_path}
    request = users.url_request
    if request is not None and request.headers:
        # One JSON list: configargparse gives an append option one value per item.
        headers = [f"{name}: {value}" for name, value in request.headers]
        environ[URL_REQUEST_ENV["url_header"]] = json.dumps(headers)
    if request is not None and request.body and users.url_body_file is None:
        environ[URL_REQUEST_ENV["url_body"]] = request.body.decode()
    return environ


def _url_environ_owned(role: Headless | WebUI | Worker) -> dict[str, str]:
    """Variable → ``dest`` of the ``url`` scenario's options loadkit owns in Locust's
    environment: set by ``_url_environ`` or else removed (none outside a ``url`` run)."""
    match role:
        case Headless(users=users) | WebUI(users=users) if users.url_path is not None:
            return {variable: dest for dest, variable in URL_REQUEST_ENV.items()}
        case _:
            return {}


def _role_args(role: Headless | WebUI | Worker) -> list[str]:
    match role:
        case Headless():
            return _headless_args(role)
        case WebUI():
            return _web_ui_args(role)
        case Worker():
            return _worker_args(role)


# Only the option names of these matter: every variant of a command's command line.
_SAMPLE_USERS = Users(host="http://h", count=1, spawn_rate=1.0, scenario_label="s")
_SAMPLE_HEADLESS = Headless(
    users=_SAMPLE_USERS, duration_s=1.0, out=Path("o"), status=Path("s"), run_id="r"
)
_SAMPLES: dict[Command, tuple[Headless | WebUI | Worker, ...]] = {
    "load": (
        _SAMPLE_HEADLESS,
        replace(_SAMPLE_HEADLESS, workers=LocalWorkers(count=2, port=1)),
        replace(_SAMPLE_HEADLESS, workers=RemoteWorkers(expect=1, bind_host="h", bind_port=1)),
    ),
    "ui": (WebUI(users=_SAMPLE_USERS, port=1, results_dir=Path("d")),),
    "worker": (
        Worker(master_host="h", master_port=1),
        Worker(master_host="h", master_port=1, processes=2),
    ),
}


def options_loadkit_sets(command: Command) -> frozenset[str]:
    """Locust's long options on every command line loadkit writes for ``command`` (``-f`` as
    ``--locustfile``; loadkit's own ``--loadkit-*`` left out), and those of the variables it
    sets (``--host``): Locust's command line wins over its configuration files and variables,
    and loadkit's variables replace the user's and win over the files, so a key or variable for
    one of these is overridden."""
    common: set[str] | None = None
    for role in _SAMPLES[command]:
        names = {SHORT.get(arg, arg) for arg in ["-f", *_role_args(role)] if arg.startswith("-")}
        names |= {ENV_OPTIONS[name] for name in _role_environ(role) if name in ENV_OPTIONS}
        names = {name for name in names if name.startswith("--")}
        common = names if common is None else common & names
    return frozenset(name for name in common or () if not name.startswith(PLUGIN_PREFIX))


_OUTPUTS_UNSET: dict[str, object] = {
    # Locust's own outputs and its stats reset: never part of a run loadkit measures.
    "reset_stats": False,
    "json": False,
    "json_file": None,
    "csv_prefix": None,
    "stats_history_enabled": False,
    "html_file": None,
    # Without --autostart, Locust exits 1 at once; with it, the web UI quits by itself.
    "autoquit": -1,
}


def _users_expected(users: Users) -> dict[str, object]:
    return {
        # Masked: the record is on the command line (the plugin compares with LOCUST_HOST).
        "host": mask_password(users.host),
        "num_users": users.count,
        # As Locust parses what _users_args writes.
        "spawn_rate": float(f"{users.spawn_rate:g}"),
        "exit_code_on_error": 0,
    }


def _expected_options(role: Headless | WebUI | Worker) -> dict[str, object]:
    expected = dict(_OUTPUTS_UNSET)
    match role:
        case Headless(users=users, workers=workers):
            expected |= _users_expected(users)
            expected |= {"headless": True, "run_time": None, "worker": False}
            match workers:
                case LocalWorkers(count=count, port=port):
                    # As Locust's main leaves them in the parent once it forked its workers.
                    expected |= {"processes": count, "master": True, "expect_workers": count}
                    expected |= {"master_bind_host": LOOPBACK, "master_bind_port": port}
                    expected |= {"master_host": LOOPBACK, "master_port": port}
                case RemoteWorkers(
                    expect=expect, bind_host=bind_host, bind_port=bind_port, wait_s=wait_s
                ):
                    expected |= {"processes": None, "master": True, "expect_workers": expect}
                    expected |= {"master_bind_host": bind_host, "master_bind_port": bind_port}
                    expected |= {"expect_workers_max_wait": wait_s}
                case None:
                    expected |= {"processes": None, "master": False}
        case WebUI(users=users, port=port):
            expected |= _users_expected(users)
            expected |= {"headless": False, "autostart": False, "run_time": None}
            expected |= {"web_host": LOOPBACK, "web_port": port}
            expected |= {"processes": None, "master": False, "worker": False}
        case Worker(master_host=master_host, master_port=master_port, processes=processes):
            # --processes only when more than one (_worker_args).
            expected |= {"worker": True, "master": False}
            expected["processes"] = processes if processes > 1 else None
            expected |= {"master_host": master_host, "master_port": master_port}
    return expected


def target_args(target: TargetProfile) -> list[str]:
    """The plugin's ``--loadkit-target`` (none for the bundled service's profile, its default)."""
    if target.is_bundled:
        return []
    return ["--loadkit-target", target.model_dump_json(exclude_defaults=True)]


def tls_args(tls: TlsOptions) -> list[str]:
    """The plugin's TLS options (none: verify against the system's CAs, its default too)."""
    if not tls.verify:
        return ["--loadkit-insecure"]
    if tls.ca_cert is not None:
        return ["--loadkit-ca-cert", str(tls.ca_cert)]
    return []


def _url_request_args(request: RequestSpec, body_file: Path | None) -> list[str]:
    """The bundled ``url`` scenario's options for what is not a plain GET and may show in the
    process list: the method, a body file's path (headers and a text body: ``_url_environ``)."""
    args: list[str] = []
    if request.method != "GET":
        args += ["--url-method", request.method]
    if body_file is not None:
        args += ["--url-body-file", str(body_file)]
    return args


def _users_args(users: Users) -> list[str]:
    # No --host: the target goes in LOCUST_HOST (environ()), out of the process list.
    args = ["--users", str(users.count)]
    args += ["--spawn-rate", f"{users.spawn_rate:g}"]
    # A failed request is a measurement, not Locust's exit 1: loadkit judges the run itself.
    args += ["--exit-code-on-error", "0", "--loadkit-scenario", users.scenario_label]
    # No --url-path, --url-header, --url-body: they go in the environment (_url_environ).
    if users.url_request is not None:
        args += _url_request_args(users.url_request, users.url_body_file)
    if users.declarative_file is not None:
        args += ["--declarative-file", str(users.declarative_file)]
    if users.secret_names:
        args += ["--loadkit-secrets", ",".join(users.secret_names)]
    return args


def _headless_args(role: Headless) -> list[str]:
    args = ["--headless", *_users_args(role.users)]
    # No --run-time: Locust's clock starts before the test_start hooks, the plugin's after them.
    args += ["--only-summary"]
    args += ["--loadkit-out", str(role.out), "--loadkit-status", str(role.status)]
    args += ["--loadkit-duration", f"{role.duration_s:g}", "--loadkit-run-id", role.run_id]
    # Locust's exit code as Locust gives it (the locustfile's verdict), never the plugin's 4:
    # loadkit judges validity from the results and records that code beside them.
    args += ["--loadkit-keep-exit-code"]
    args += _schedule_args(role.schedule)
    if role.abort_criteria is not None:
        args += ["--loadkit-abort", role.abort_criteria]
    match role.workers:
        case LocalWorkers(count=count, port=port):
            args += ["--processes", str(count), "--master-bind-host", LOOPBACK]
            args += ["--master-bind-port", str(port), "--master-port", str(port)]
        case RemoteWorkers(expect=expect, bind_host=bind_host, bind_port=bind_port, wait_s=wait_s):
            args += ["--master", "--expect-workers", str(expect)]
            args += ["--master-bind-host", bind_host, "--master-bind-port", str(bind_port)]
            args += ["--expect-workers-max-wait", str(wait_s)]
        case None:
            pass
    return args


def _schedule_args(schedule: Schedule) -> list[str]:
    """The plugin's options for an open run and for stages (none for a plain closed run)."""
    args: list[str] = []
    if schedule.rate is not None:
        args += ["--loadkit-rate", repr(schedule.rate)]  # exact, never 1e+06
    if schedule.max_in_flight is not None:
        args += ["--loadkit-max-in-flight", str(schedule.max_in_flight)]
    if schedule.stages:
        args += ["--loadkit-stages", stages_to_json(schedule.stages)]
    return args


def _web_ui_args(role: WebUI) -> list[str]:
    args = ["--web-host", LOOPBACK, "--web-port", str(role.port), *_users_args(role.users)]
    return [*args, "--loadkit-dir", str(role.results_dir)]


def _worker_args(role: Worker) -> list[str]:
    args = ["--worker", "--master-host", role.master_host, "--master-port", str(role.master_port)]
    if role.processes > 1:
        args += ["--processes", str(role.processes)]
    return args

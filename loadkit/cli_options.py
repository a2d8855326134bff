"""The options of ``loadkit load`` and ``loadkit accept``, and those several commands share,
declared once as typed aliases (``Annotated[type, typer.Option(...)]``) under their help panels.

Declarations only: ``cli.py`` names them in its commands' signatures and does the work. An
alias carries its option's name, so a command can name its parameter as it likes; the panel
(``rich_help_panel``) is the heading the option is listed under in ``--help``
(``cli.PanelledCommand``). Nothing here imports more than typer: ``loadkit --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from loadkit.defaults import DEFAULT_TARGET

MAX_PORT = 65_535

# The panels, in the order ``loadkit load --help`` lists them (SERVICE_PANEL: accept's).
TARGET_PANEL = "Target and request"
SERVICE_PANEL = "Target or bundled service"
PROFILE_PANEL = "Load profile"
MODEL_PANEL = "Load model"
ENGINE_PANEL = "Engine"
TLS_PANEL = "TLS"
OUTPUT_PANEL = "Output"
DISTRIBUTED_PANEL = "Distributed run (master and workers)"
BASELINE_PANEL = "Baseline"

# --- shared by several commands ----------------------------------------------------------------

ConfigOption = Annotated[
    Path,
    typer.Option(
        "--config",
        help="The acceptance file: criteria, smoke checks, load profiles.",
        rich_help_panel=PROFILE_PANEL,
    ),
]
InsecureOption = Annotated[
    bool,
    typer.Option(
        "--insecure",
        help="https: check no certificate (by default they are verified against the system's "
        "CAs, on every engine).",
        rich_help_panel=TLS_PANEL,
    ),
]
CaCertOption = Annotated[
    Path | None,
    typer.Option(
        "--ca-cert",
        help="https: verify the target's certificate against this PEM file (e.g. a private CA).",
        show_default=False,
        rich_help_panel=TLS_PANEL,
    ),
]
BaselineOption = Annotated[
    list[Path] | None,
    typer.Option(
        "--baseline",
        help='Results file of the baseline run the regression criteria (op = "regression") '
        "are judged against; one per kind (default: [baseline] path of the acceptance file).",
        show_default=False,
        rich_help_panel=BASELINE_PANEL,
    ),
]
ForceBaselineOption = Annotated[
    bool,
    typer.Option(
        "--force-baseline",
        help="Judge against a baseline whose run differs (scenario, model, engine, users or "
        "rate, duration, stages) instead of refusing it (exit 2).",
        rich_help_panel=BASELINE_PANEL,
    ),
]

# --- loadkit load: target and request ------------------------------------------------------------

LoadUrlArgument = Annotated[
    str | None,
    typer.Argument(
        help="A URL to hit again and again: on the native engine (or Locust's `url` "
        "scenario with --engine locust).",
        show_default=False,
    ),
]
LoadHostOption = Annotated[
    str | None,
    typer.Option(
        "--host",
        help=f"Base URL of the API under test (default: {DEFAULT_TARGET}).",
        show_default=False,
        rich_help_panel=TARGET_PANEL,
    ),
]
MethodOption = Annotated[
    str | None,
    typer.Option(
        "--method",
        help="A URL run's HTTP method (default GET).",
        show_default=False,
        rich_help_panel=TARGET_PANEL,
    ),
]
HeaderOption = Annotated[
    list[str] | None,
    typer.Option(
        "--header",
        help="A URL run's header, 'Name: value' (repeatable).",
        show_default=False,
        rich_help_panel=TARGET_PANEL,
    ),
]
BodyOption = Annotated[
    str | None,
    typer.Option(
        "--body",
        help="A URL run's request body: the text, or @FILE for a file's bytes.",
        show_default=False,
        rich_help_panel=TARGET_PANEL,
    ),
]

# --- loadkit load: profile and model -------------------------------------------------------------

ScenarioOption = Annotated[
    str | None,
    typer.Option(
        "--scenario",
        help="Scenario name (login, api, url), a declarative scenario [scenarios.NAME] of "
        "the acceptance file, or path to a locustfile.",
        rich_help_panel=PROFILE_PANEL,
    ),
]
LoadConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help="acceptance.toml with [profiles] (default: ./acceptance.toml if any).",
        rich_help_panel=PROFILE_PANEL,
    ),
]
LoadProfileOption = Annotated[
    str,
    typer.Option(
        "--profile", help="Load profile in [profiles.<name>].", rich_help_panel=PROFILE_PANEL
    ),
]
ConcurrencyOption = Annotated[
    int | None,
    typer.Option(
        "--concurrency",
        help="Closed model: simulated users on Locust, connections on the native engine "
        "(profile default: 10).",
        rich_help_panel=MODEL_PANEL,
    ),
]
DurationOption = Annotated[
    float | None,
    typer.Option(
        "--duration", help="Seconds to run (profile default: 60).", rich_help_panel=MODEL_PANEL
    ),
]
SpawnRateOption = Annotated[
    float | None,
    typer.Option(
        "--spawn-rate",
        help="Users started per second (default: all at once).",
        rich_help_panel=MODEL_PANEL,
    ),
]
RateOption = Annotated[
    float | None,
    typer.Option(
        "--rate",
        help="Open model: iterations (task runs) started per second, on a timetable; "
        "latency is measured from when each was due. With --stages: the rate they ramp from.",
        show_default=False,
        rich_help_panel=MODEL_PANEL,
    ),
]
MaxInFlightOption = Annotated[
    int | None,
    typer.Option(
        "--max-in-flight",
        help="Open model: the most iterations running at once; later ones wait, still "
        "measured from when they were due (default: 30 s worth at the highest rate, at "
        "most 2000).",
        show_default=False,
        rich_help_panel=MODEL_PANEL,
    ),
]
StagesOption = Annotated[
    str | None,
    typer.Option(
        "--stages",
        help="Ramp the load in stages, e.g. 30s:50,60s:200,30s:0 (for 30 s to 50, for 60 s "
        "to 200, for 30 s down to 0): users in a closed run, iterations/s with --rate. "
        "Their total is the run's duration (not with --duration).",
        show_default=False,
        rich_help_panel=MODEL_PANEL,
    ),
]

# --- loadkit load: engine ------------------------------------------------------------------------

EngineOption = Annotated[
    str | None,
    typer.Option(
        "--engine",
        help="locust or native. A URL or a declarative scenario [scenarios.NAME] runs on "
        "the native engine (asyncio + uvloop, about wrk's CPU per request, 12-14 µs here "
        "for a URL) unless --engine locust, --http2 or it ramps users (--spawn-rate, closed "
        "--stages); a locustfile always runs on Locust (~110-170 µs of CPU per request: one "
        "process tops out near 8 k req/s). Default: the profile's engine, else that rule.",
        show_default=False,
        rich_help_panel=ENGINE_PANEL,
    ),
]
ProcessesOption = Annotated[
    str,
    typer.Option(
        "--processes",
        help="Generator processes on this machine, a number or `auto` (one per core): "
        "native engine processes whose shares merge exactly, or Locust's master and N "
        "workers.",
        rich_help_panel=ENGINE_PANEL,
    ),
]
LoadHttp2Option = Annotated[
    bool,
    typer.Option(
        "--http2",
        help="Speak HTTP/2: h2c by prior knowledge on http://, ALPN h2 on https://. Runs on "
        "Locust; the bundled scenarios switch, a locustfile must be written on "
        "scenarios/http2_user.py (Http2User or FastOrHttp2User). Default: the profile's "
        "http2.",
        rich_help_panel=ENGINE_PANEL,
    ),
]

# --- loadkit load: output ------------------------------------------------------------------------

LoadOutOption = Annotated[
    Path,
    typer.Option("--out", help="Where to write the results file.", rich_help_panel=OUTPUT_PANEL),
]
LoadHtmlOption = Annotated[
    Path | None,
    typer.Option(
        "--html",
        help="Also write the run's HTML report here (charts and tables; `loadkit report "
        "--html` makes one from a results file later, with a verdict).",
        show_default=False,
        rich_help_panel=OUTPUT_PANEL,
    ),
]
QuietOption = Annotated[
    bool,
    typer.Option("--quiet", "-q", help="No progress line.", rich_help_panel=OUTPUT_PANEL),
]

# --- loadkit load: distributed run ---------------------------------------------------------------

MasterOption = Annotated[
    bool,
    typer.Option(
        "--master",
        help="Run as master; workers connect from elsewhere (either engine: a URL's native "
        "run splits its connections or its rate among them).",
        rich_help_panel=DISTRIBUTED_PANEL,
    ),
]
ExpectWorkersOption = Annotated[
    int,
    typer.Option(
        "--expect-workers",
        min=1,
        help="--master: start once this many workers are connected.",
        rich_help_panel=DISTRIBUTED_PANEL,
    ),
]
ExpectWorkersMaxWaitOption = Annotated[
    int,
    typer.Option(
        "--expect-workers-max-wait",
        min=1,
        help="--master: give up when the workers have not all connected within this many "
        "seconds (exit 4, an aborted results file at --out).",
        rich_help_panel=DISTRIBUTED_PANEL,
    ),
]
MasterBindHostOption = Annotated[
    str,
    typer.Option(
        "--master-bind-host",
        help="--master: the address workers connect to; loopback by default, give the "
        "machine's address (or 0.0.0.0) to accept workers from other machines.",
        rich_help_panel=DISTRIBUTED_PANEL,
    ),
]
WorkerOption = Annotated[
    bool,
    typer.Option(
        "--worker",
        help="Run as a worker of the master at --master-host (a native master's: add "
        "--engine native; the URL and the load come from the master).",
        rich_help_panel=DISTRIBUTED_PANEL,
    ),
]
MasterHostOption = Annotated[
    str,
    typer.Option(
        "--master-host",
        help="--worker: the master's address.",
        rich_help_panel=DISTRIBUTED_PANEL,
    ),
]
MasterPortOption = Annotated[
    int,
    typer.Option(
        "--master-port",
        min=1,
        max=MAX_PORT,
        help="The master's port for workers.",
        rich_help_panel=DISTRIBUTED_PANEL,
    ),
]

# --- loadkit accept ------------------------------------------------------------------------------

AcceptHostOption = Annotated[
    str | None,
    typer.Option(
        "--host",
        help="Base URL of the API under test (default: start the bundled service on a free "
        "loopback port with a fresh SQLite database).",
        show_default=False,
        rich_help_panel=SERVICE_PANEL,
    ),
]
ServiceEnvOption = Annotated[
    list[str] | None,
    typer.Option(
        "--service-env",
        help="KEY=VALUE setting for the bundled service (repeatable), e.g. a fault switch.",
        show_default=False,
        rich_help_panel=SERVICE_PANEL,
    ),
]
AcceptHttp2Option = Annotated[
    bool,
    typer.Option(
        "--http2",
        help="Smoke and load speak HTTP/2; the bundled service is served over h2c through "
        "nginx (which must be installed) in front of uvicorn.",
        rich_help_panel=SERVICE_PANEL,
    ),
]
AcceptEdgeTimeoutOption = Annotated[
    float | None,
    typer.Option(
        "--edge-timeout",
        min=0.001,
        help="--http2, bundled service: seconds nginx waits on a silent handler "
        "(proxy_read_timeout): 504 before its headers, a stream reset with INTERNAL_ERROR "
        "after them.  [default: 60]",
        show_default=False,
        rich_help_panel=SERVICE_PANEL,
    ),
]
AcceptProfileOption = Annotated[
    str,
    typer.Option(
        "--profile",
        help="Which load profile of acceptance.toml to run (profiles.NAME).",
        rich_help_panel=PROFILE_PANEL,
    ),
]
AcceptDurationOption = Annotated[
    float | None,
    typer.Option(
        "--duration",
        help="Seconds of load, overriding the profile's duration_s.",
        show_default=False,
        rich_help_panel=PROFILE_PANEL,
    ),
]
OutDirOption = Annotated[
    Path,
    typer.Option(
        "--out-dir",
        help="Where the timestamped report folder is created.",
        rich_help_panel=OUTPUT_PANEL,
    ),
]
SaveBaselineOption = Annotated[
    Path | None,
    typer.Option(
        "--save-baseline",
        help="After a pass, write the run's load results here as the new baseline (e.g. on "
        "the main branch); nothing is written when the gate does not pass.",
        show_default=False,
        rich_help_panel=BASELINE_PANEL,
    ),
]

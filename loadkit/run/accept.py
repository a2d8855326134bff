"""``loadkit accept``: the whole acceptance in one command.

The stages, in order: the lock audit of the configured paths (it needs no service, so a bad
scope fails before anything starts); the bundled service on a free loopback port with a fresh
SQLite database, unless a ``host`` is given; smoke; the load profile; the gate. Every artifact
lands in one timestamped folder: the three results files, the gate as Markdown, JUnit XML and a
JSON verdict, and the service's log. The bundled service records the spans of every request
there too (``spans.jsonl``, ``OTEL_TRACES_SAMPLER=always_on``); when a latency criterion fails,
where the time of its requests went is read from them into its evidence
(``loadkit.gate.trace_evidence``). The service this started is stopped by its own process
handle whatever happens (a failed stage, an error, Ctrl-C).

A failed acceptance (a stage that fails, Ctrl-C or SIGTERM) leaves the files of the stages done
(an aborted smoke.json or load.json for the stage cut short) and the gate's three reports with
an ``error`` outcome naming the stage and why; a folder left empty all the same (not even the
reason could be written) is removed.

No printing here: progress goes through the ``progress`` callback the CLI hands in, and errors
are raised for the CLI to map to exit codes.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from loadkit.config import AcceptanceConfig, load_config
from loadkit.defaults import DEFAULT_PROFILE, DEFAULT_REPORTS_DIR
from loadkit.engines.http_request import TlsOptions
from loadkit.engines.target import parse_target
from loadkit.exceptions import (
    ConfigError,
    GeneratorCrashedError,
    InvalidLoadRunError,
    LoadkitError,
    TargetUnreachableError,
)
from loadkit.gate.against_baseline import evaluate_gate
from loadkit.gate.evaluate import GateReport
from loadkit.gate.trace_evidence import wants_time_breakdowns, with_time_breakdowns
from loadkit.measure.results import LoadResults, LockAuditResults, SmokeResults, write_results
from loadkit.measure.validity import INTERRUPTED
from loadkit.report.load import describe_load
from loadkit.report.units import format_fraction, format_ms
from loadkit.run.baseline import Baselines, save_baseline
from loadkit.run.bundled_service import TRACE_FILE_ENV, BundledService, span_recording_env
from loadkit.run.http2_edge import DEFAULT_UPSTREAM_TIMEOUT_S, Http2Edge
from loadkit.run.load_plan import LoadPlan, ProfileFlags, plan_load_run, run_load_plan
from loadkit.traces.breakdown import ran_between

LOCK_AUDIT_FILE = "lock_audit.json"
SMOKE_FILE = "smoke.json"
LOAD_FILE = "load.json"
MARKDOWN_FILE = "gate.md"
JUNIT_FILE = "junit.xml"
VERDICT_FILE = "verdict.json"
HTML_FILE = "report.html"
SERVICE_DIR = "service"
SPANS_FILE = "spans.jsonl"
SPAN_CLOCK_SLACK_S = 0.01
"""Spans that started this long before the load run's start, or ended this long after its end,
still count as its requests. Small: the service reads the same clock, a request's SERVER span
starts after the client sent it and ends before the client has the answer, and a run's figures
leave out the requests still in flight when it stopped (the service answers them later)."""

Progress = Callable[[str], None]


@dataclass(frozen=True)
class AcceptanceRun:
    """What ``run_acceptance`` produced: the gate's report and where everything was written."""

    folder: Path
    report: GateReport
    artifacts: tuple[Path, ...]
    target: str
    saved_baseline: Path | None = None
    """Where the load results were saved as the new baseline (only after a pass)."""


def report_folder(base: Path, *, now: datetime | None = None) -> Path:
    """A new folder ``base/<UTC timestamp>`` (``-2``, ``-3``... if one already exists)."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    base.mkdir(parents=True, exist_ok=True)
    for attempt in range(1, 1000):
        folder = base / (stamp if attempt == 1 else f"{stamp}-{attempt}")
        try:
            folder.mkdir()
        except FileExistsError:
            continue
        return folder
    raise ConfigError(f"{base}: cannot create a report folder for {stamp}; clean up old reports")


def run_acceptance(
    *,
    config_path: Path,
    profile: str = DEFAULT_PROFILE,
    host: str | None = None,
    duration_s: float | None = None,
    out_dir: Path = DEFAULT_REPORTS_DIR,
    service_env: Mapping[str, str] | None = None,
    progress: Progress = lambda _line: None,
    quiet_load: bool = False,
    tls: TlsOptions | None = None,
    http2: bool = False,
    edge_timeout_s: float | None = None,
    baselines: Baselines | None = None,
    save_baseline_to: Path | None = None,
) -> AcceptanceRun:
    """Run the lock audit, smoke and load against ``host`` or the bundled service, then gate.

    ``service_env`` adds ENGINES_* settings for the bundled service on top of the environment
    (which the service inherits too). The report files are written whatever the verdict; the
    caller decides what the outcome means (``loadkit.gate.evaluate.raise_for_outcome``).
    ``tls`` says how an https ``host``'s certificate is checked by smoke and load (default:
    verified). ``http2``: smoke and load speak HTTP/2, and the bundled service is served over
    h2c through nginx (``run/http2_edge.py``), whose upstream read timeout is ``edge_timeout_s``
    (nginx's 60 s when None; a ConfigError without HTTP/2 or with ``host``: there is no edge).
    ``baselines`` are what the regression criteria are judged against;
    ``save_baseline_to`` receives the load results as the new baseline when the gate passed.
    The load is planned and run as ``loadkit load`` plans and runs it (``run/load_plan.py``):
    on the profile's ``engine``, else native for a declarative scenario without HTTP/2, Locust
    for a locustfile (the bundled ``login``); a ConfigError before anything runs when it cannot.
    """
    if host is not None:
        # Before anything is audited or written: a malformed --host is a usage error.
        parse_target(host, option="--host")
    config = load_config(config_path)
    if not config.criteria and not config.regressions:
        raise ConfigError(f"{config_path}: no [[criteria]]: there is nothing to accept against")
    # The run `loadkit load` would plan for this profile (DESIGN.md, "Two engines"), checked
    # before anything runs: the engine, a declarative scenario's names and secrets.
    plan = plan_load_run(
        config,
        profile,
        flags=ProfileFlags(duration_s=duration_s),
        tls=tls or TlsOptions(),
        http2=http2,
        to_locust=f'engine = "locust" in [profiles.{profile}]',
    )
    if edge_timeout_s is not None and (not plan.http2 or host is not None):
        why = "add --http2" if host is None else "--host is served by its own edge, not loadkit's"
        raise ConfigError(f"--edge-timeout is about the bundled service's HTTP/2 edge: {why}")
    folder = report_folder(out_dir)
    step = _Steps(5 if host is None else 4, progress)
    try:
        progress(f"acceptance: profile {profile!r}, reports in {folder}")
        return _run_stages(
            config,
            config_path,
            plan,
            folder=folder,
            host=host,
            service_env=service_env,
            step=step,
            quiet_load=quiet_load,
            edge_timeout_s=edge_timeout_s or DEFAULT_UPSTREAM_TIMEOUT_S,
            baselines=baselines or Baselines(files=(), force=False),
            save_baseline_to=save_baseline_to,
        )
    except BaseException as error:
        _leave_reason(folder, step, error)
        raise


def _run_stages(
    config: AcceptanceConfig,
    config_path: Path,
    plan: LoadPlan,
    *,
    folder: Path,
    host: str | None,
    service_env: Mapping[str, str] | None,
    step: _Steps,
    quiet_load: bool,
    edge_timeout_s: float,
    baselines: Baselines,
    save_baseline_to: Path | None,
) -> AcceptanceRun:
    with step("lock audit"):
        audit = _lock_audit(config, config_path)
        write_results(folder / LOCK_AUDIT_FILE, audit)
        step.done(f"{audit.violations} violation(s) in {audit.files_checked} files")

    spans = _span_file(host, folder, service_env)
    with _target(
        host,
        folder,
        service_env,
        step,
        http2=plan.http2,
        edge_timeout_s=edge_timeout_s,
        spans=spans,
    ) as target:
        with step(f"smoke against {target}"):
            smoke = _smoke_or_aborted(
                config, target, folder / SMOKE_FILE, tls=plan.tls, http2=plan.http2
            )
            write_results(folder / SMOKE_FILE, smoke)
            step.done(f"{smoke.checks_passed}/{len(smoke.checks)} checks passed")
        with step(f"load: {describe_load(plan.profile, engine=plan.engine)}"):
            results = _load(plan, target, folder / LOAD_FILE, quiet=quiet_load)
            step.done(
                f"{results.totals.requests} requests, "
                f"{format_fraction(results.totals.error_rate)} errors, "
                f"p95 {format_ms(results.latency_ms.p95, unit=True)}"
                + ("" if results.valid else " — INVALID RUN")
            )

    with step("gate"):
        # A gate that cannot judge (a measurement missing from the run) raises here; its
        # reports then say why (run_acceptance), as for a stage that failed.
        report = evaluate_gate(
            config.criteria,
            config.regressions,
            [
                (str(folder / LOCK_AUDIT_FILE), audit),
                (str(folder / SMOKE_FILE), smoke),
                (str(folder / LOAD_FILE), results),
            ],
            baselines=baselines.files,
            force_baseline=baselines.force,
        )
        traced = ""
        if spans is not None and wants_time_breakdowns(report):
            report, traced = _explained_by_spans(report, spans, results)
        artifacts = _write_gate_reports(report, folder)
        artifacts.append(
            _write_html_report(
                report,
                folder,
                [
                    (str(folder / LOCK_AUDIT_FILE), audit),
                    (str(folder / SMOKE_FILE), smoke),
                    (str(folder / LOAD_FILE), results),
                ],
                baselines,
            )
        )
        step.done(report.outcome.upper() + traced)
    all_files = (
        folder / LOCK_AUDIT_FILE,
        folder / SMOKE_FILE,
        folder / LOAD_FILE,
        *((spans,) if spans is not None and spans.is_file() else ()),
        *artifacts,
    )
    saved = None
    if save_baseline_to is not None and report.outcome == "passed":
        # Only a passing run becomes the reference the next ones are judged against.
        saved = save_baseline(save_baseline_to, results)
    return AcceptanceRun(
        folder=folder, report=report, artifacts=all_files, target=target, saved_baseline=saved
    )


def _span_file(
    host: str | None, folder: Path, service_env: Mapping[str, str] | None
) -> Path | None:
    """Where the bundled service writes its spans: the report folder's ``spans.jsonl``, unless
    ``--service-env ENGINES_TRACE_FILE=`` says elsewhere (relative to the service's folder, its
    working directory) or, empty, turns the file off. None with a ``host``: not ours to trace."""
    if host is not None:
        return None
    given = (service_env or {}).get(TRACE_FILE_ENV)
    if given is None:
        return folder / SPANS_FILE
    if not given:
        return None
    path = Path(given)
    return path if path.is_absolute() else folder / SERVICE_DIR / path


def _explained_by_spans(
    report: GateReport, spans: Path, load: LoadResults
) -> tuple[GateReport, str]:
    """The report with where the time went in each failed latency criterion, from the requests
    the load run recorded, from the bundled service's span file (which also holds smoke's, and
    those still in flight when the load stopped), and a few words
    for the progress line. No span file (tracing off in the service), or one that cannot be
    read: the report as it was, and why, since the verdict stands without it."""
    from loadkit.run.traces import read_span_files

    if not spans.is_file():
        return report, " (no span file: where the time went is not shown)"
    try:
        reading = read_span_files([spans])
    except LoadkitError as error:
        return report, f" (spans not read: {error})"
    started = load.started_at
    if started.tzinfo is None:
        started = started.replace(tzinfo=UTC)  # results times are UTC
    start_ns = int(started.timestamp() * 1e9)
    requests = ran_between(
        reading.requests,
        start_ns - int(SPAN_CLOCK_SLACK_S * 1e9),
        start_ns + int((load.duration_s + SPAN_CLOCK_SLACK_S) * 1e9),
    )
    explained = with_time_breakdowns(report, requests)
    return explained, f" (where the time went: {len(requests)} traced requests of the load run)"


def _leave_reason(folder: Path, step: _Steps, error: BaseException) -> None:
    """A failed acceptance leaves its folder with what was done and why it stopped: the gate's
    three reports with an ``error`` outcome naming the stage (a CI step reading junit.xml must
    not find nothing). A folder that ends up empty all the same is removed."""
    why = INTERRUPTED if isinstance(error, KeyboardInterrupt) else str(error)
    message = f"acceptance stopped at {step.current}: {why or type(error).__name__}"
    # The error that stopped the run is the one to report, not a second one about its reports.
    with contextlib.suppress(LoadkitError, OSError):
        _write_gate_error_reports(message, folder)
    with contextlib.suppress(OSError):
        folder.rmdir()  # only when empty


# --- stages --------------------------------------------------------------------------------------


def _lock_audit(config: AcceptanceConfig, config_path: Path) -> LockAuditResults:
    from loadkit.lockaudit.run import audit_paths, to_results

    # Paths are relative to the acceptance file, as `loadkit audit-locks` takes them.
    targets = [config_path.parent / entry for entry in config.lock_audit.paths]
    return to_results(audit_paths(targets, config.lock_audit), config.lock_audit)


def _smoke(
    config: AcceptanceConfig, target: str, *, tls: TlsOptions, http2: bool = False
) -> SmokeResults:
    from loadkit.engines.smoke import run_smoke

    return run_smoke(host=target, config=config.smoke, tls=tls, http2=http2, target=config.target)


def _smoke_or_aborted(
    config: AcceptanceConfig, target: str, out: Path, *, tls: TlsOptions, http2: bool = False
) -> SmokeResults:
    """Smoke's results; when it cannot finish (unreachable, Ctrl-C or SIGTERM), an aborted
    results file at ``out`` says so before the error goes on."""
    try:
        return _smoke(config, target, tls=tls, http2=http2)
    except (TargetUnreachableError, KeyboardInterrupt) as error:
        from loadkit.engines.smoke import aborted_smoke_results

        why = INTERRUPTED if isinstance(error, KeyboardInterrupt) else str(error)
        write_results(out, aborted_smoke_results(host=target, reason=why))
        raise


def _load(plan: LoadPlan, target: str, out: Path, *, quiet: bool) -> LoadResults:
    """The load stage's results: ``plan`` run against ``target`` as ``loadkit load`` runs it
    (``run_load_plan``), an invalid or crashed run's results included."""
    try:
        return run_load_plan(plan, plan.request_to(target), out=out, quiet=quiet)
    except InvalidLoadRunError as invalid:
        # The results were written; the gate shows the run as invalid (exit 4) with the
        # criteria measured on it, and writes its reports, rather than stopping here.
        return invalid.results
    except GeneratorCrashedError as crashed:
        # Likewise for a generator that died: its results say generator_crashed.
        if crashed.results is None:
            raise
        return crashed.results


@contextlib.contextmanager
def _target(
    host: str | None,
    folder: Path,
    service_env: Mapping[str, str] | None,
    step: _Steps,
    *,
    http2: bool = False,
    edge_timeout_s: float = DEFAULT_UPSTREAM_TIMEOUT_S,
    spans: Path | None = None,
) -> Iterator[str]:
    if host is not None:
        yield host.rstrip("/")
        return
    workdir = (folder / SERVICE_DIR).resolve()
    # A fresh database in the report folder, whatever ENGINES_DATABASE_URL says: acceptance
    # runs on a known, empty state.
    env = {"ENGINES_DATABASE_URL": f"sqlite+aiosqlite:///{workdir / 'engines.db'}"}
    if spans is not None:
        # Every request's spans, for where the time went when a latency criterion fails.
        env.update(span_recording_env(spans.resolve()))
    env.update(service_env or {})
    service = BundledService(workdir=workdir, env=env)
    edge: Http2Edge | None = None
    try:
        with step("bundled service"):
            service.start()
            if http2:
                edge = Http2Edge(
                    workdir=workdir / "edge",
                    upstream=f"{service.host}:{service.port}",
                    upstream_timeout_s=edge_timeout_s,
                )
                edge.start()
                step.done(
                    f"healthy at {service.url}, over HTTP/2 (h2c) at {edge.url} through nginx, "
                    f"proxy_read_timeout {edge_timeout_s:g} s (log: {service.log_path})"
                )
            else:
                step.done(f"healthy at {service.url} (log: {service.log_path})")
        yield edge.url if edge is not None else service.url
    finally:
        if edge is not None:
            edge.stop()
        service.stop()


def _write_gate_reports(report: GateReport, folder: Path) -> list[Path]:
    from loadkit.report.gate import write_gate_reports

    return write_gate_reports(
        report,
        markdown=folder / MARKDOWN_FILE,
        junit=folder / JUNIT_FILE,
        json=folder / VERDICT_FILE,
        from_options=False,
    )


def _write_html_report(
    report: GateReport,
    folder: Path,
    results: Sequence[tuple[str, LockAuditResults | SmokeResults | LoadResults]],
    baselines: Baselines,
) -> Path:
    """``report.html``: the charts and tables of the three runs under the verdict just given
    (the one the gate reports say, its time breakdowns included)."""
    from loadkit.files import write_file
    from loadkit.run.report import LoadedReport, render_report

    loaded = LoadedReport(results=tuple(results), gate=report, baselines=baselines.files)
    return write_file(folder / HTML_FILE, render_report(loaded).encode())


def _write_gate_error_reports(message: str, folder: Path) -> list[Path]:
    from loadkit.report.gate import write_gate_error_reports

    return write_gate_error_reports(
        message,
        markdown=folder / MARKDOWN_FILE,
        junit=folder / JUNIT_FILE,
        json=folder / VERDICT_FILE,
        from_options=False,
    )


class _Steps:
    """Numbered progress lines: ``[2/5] smoke ...`` when a stage starts, ``✓`` when it ends."""

    def __init__(self, total: int, progress: Progress) -> None:
        self._total = total
        self._progress = progress
        self._index = 0
        self._started = 0.0
        self._name = ""

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        self._index += 1
        self._name = name
        self._started = time.perf_counter()
        self._progress(f"[{self._index}/{self._total}] {name} …")
        yield

    @property
    def current(self) -> str:
        """The stage running (or the last one): ``[2/5] smoke against ...``."""
        return f"[{self._index}/{self._total}] {self._name}" if self._index else "the start"

    def done(self, summary: str) -> None:
        elapsed = time.perf_counter() - self._started
        self._progress(f"[{self._index}/{self._total}] {self._name}: {summary} ({elapsed:.1f} s)")

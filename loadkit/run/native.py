"""``loadkit load URL`` (or ``--scenario NAME`` for a declarative scenario) on the native engine:
checks before the run, the run (in this process, or in ``processes`` of its own), the results
file, and what the run's end means.

Mirrors ``run/load.py``'s ``run_load`` for the Locust engine: the target must answer first
(``TargetUnreachableError``), ``--out`` must be writable, a progress line goes to stderr
(``ProgressPrinter``) unless ``quiet`` or a ``progress`` callback is given, results are written
atomically, also when Ctrl-C or SIGTERM stopped the run (marked aborted; ``LoadInterrupted``),
and an invalid run raises ``InvalidLoadRunError`` after its results were written.
"""

from __future__ import annotations

import signal
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from loadkit.config import Criterion, LoadProfile
from loadkit.defaults import DEFAULT_WORKERS_WAIT_S
from loadkit.engines.http_request import RequestSpec, TlsOptions
from loadkit.engines.native.distributed import (
    WorkerOutcome,
    WorkersNotReadyError,
    run_master,
    run_worker,
)
from loadkit.engines.native.processes import (
    READY_TIMEOUT_S,
    ProcessesCrashed,
    ProcessShare,
    run_processes,
)
from loadkit.engines.native.request_bytes import encode_request
from loadkit.engines.native.share import (
    ShareControl,
    SharePlan,
    crashed_reason,
    plan_scenario,
    run_share,
)
from loadkit.engines.target import parse_target, scenario_target
from loadkit.exceptions import (
    ConfigError,
    GeneratorCrashedError,
    InvalidLoadRunError,
    LoadInterrupted,
    TargetUnreachableError,
    WorkersNotConnectedError,
)
from loadkit.measure.live_status import LiveStatus
from loadkit.measure.load_results import (
    build_load_results,
    live_results,
    unmeasured_load_results,
)
from loadkit.measure.recorder import LatencyRecorder, RunClock
from loadkit.measure.results import GeneratorHealth, LoadResults, Stopped, write_results
from loadkit.measure.validity import (
    INTERRUPTED,
    InvalidReason,
    aborted_reason,
    generator_crashed_reason,
    overload_reason,
    worker_share_missing_reason,
)
from loadkit.measure.worker_share import WorkerShare
from loadkit.run.load import Target, check_reachable, check_writable

ENGINE = "native"
DISTRIBUTED_START_LEAD_S = 0.25
"""A distributed run's common start after the last worker said its share is set up (its plan
decoded and checked, its loop, pool and recorder built, an open run's users' setup done: a
login takes what the target makes it take, so the master waits for it rather than guess).
All the start message has left to cross is the master's relay, one network hop and the
worker's relay, milliseconds; each worker is on its master's clock already (``sent_at``, taken
when its plan arrived), so its own clock is not in it either. The rest is a busy machine's room,
as ``--processes`` leaves (``processes.START_MARGIN_S``), so that no worker begins late on the
timetable (``bench/bench_distributed_start.py``, docs/benchmarks.md)."""

LAG_P99_BOUND_MS = 10.0
"""The native engine's bound on scheduler lag P99 (half the Locust path's 20 ms, which a file
cannot loosen): a run over it is invalid (``generator_overloaded``).

Measured on the 2-core machine this project is built on, shared with other test runs (December
2026, ``bench/bench_native.py --seconds 5``, open runs against nginx on loopback, in-flight bound
200): healthy runs had a lag P99 of 1.5-2.8 ms at 100/s, 1.5-1.7 ms at 1,000/s, 0.7-1.4 ms at
5,000/s (max 4-9 ms: a preemption now and then); uvloop's timers tick in milliseconds, so a
low-rate run lags up to a tick, and at high rates iterations go out after each response, within
a loop turn. A generator past its limit (20,000/s there, loop delay P90 4 ms) is caught by the
loop delay bound first. 10 ms is over three times the worst healthy P99, so a busy machine does
not void a sound run, and half of what the Locust path allows, whose healthy lag is higher
(2.9-8.6 ms at 500/s)."""

Progress = Callable[[LiveStatus], None]


@dataclass(frozen=True)
class NativeMaster:
    """``--master``: the run's shares go to ``expect`` workers elsewhere (``loadkit load
    --worker --engine native``), which connect on ``bind_host:bind_port``."""

    expect: int
    bind_host: str
    bind_port: int
    wait_s: int = DEFAULT_WORKERS_WAIT_S
    """Give up (WorkersNotConnectedError, an aborted file at --out) when they have not all
    connected by then."""
    ready_wait_s: float = READY_TIMEOUT_S
    """Give up (WorkersNotReadyError, an aborted file at --out) when one is still not set up
    this long after the plans went (a worker's setup is itself bounded by
    ``share.SETUP_WAIT_S``, then it starts anyway): as long as ``--processes`` waits."""


def run_native_load(
    *,
    request: RequestSpec,
    profile: LoadProfile,
    out: Path,
    processes: int = 1,
    quiet: bool = False,
    progress: Progress | None = None,
    timeout_s: float | None = None,
    master: NativeMaster | None = None,
    abort_on: Sequence[Criterion] = (),
    scenario: str | None = None,
) -> LoadResults:
    """Run ``request`` as ``profile`` says on the native engine; its results (also at ``out``).

    ``scenario``: a declarative scenario's description (``engines.declarative.describe``), run
    by simulated users against ``request``'s host instead of ``request`` itself (one user per
    connection, or per slot of the open model's in-flight bound; ``engines/native/scenario.py``).

    ``processes`` > 1 splits the run across that many processes on this machine (closed:
    connections; open: the timetable, interleaved) and merges their shares exactly.
    ``master`` splits it the same way across workers elsewhere, on Locust's transport
    (``engines/native/distributed.py``); a worker whose share never arrives makes the run
    invalid (``worker_share_missing``).
    ``timeout_s``: each request's bound (default 60 s, as the Locust path).
    ``abort_on``: abort-on-fail criteria, checked every second (with ``processes`` or
    ``master``, here, on every process's or worker's figures so far merged: each sends its own
    every second): the first that fails stops the run, recorded as ``stopped: {by:
    "criterion", ...}``.

    Raises ConfigError (a bad request, profile or --out) and TargetUnreachableError before the
    run; InvalidLoadRunError (generator overloaded, timetable not kept) and LoadInterrupted
    (Ctrl-C, SIGTERM) after the results were written.
    """
    if processes < 1:
        raise ConfigError(f"--processes must be at least 1, not {processes}")
    if scenario is not None:
        # The URL its paths follow, as the Locust path gives it to Locust (and records it).
        request = replace(request, url=scenario_target(request.url, option="target"))
    if master is not None and processes > 1:
        raise ConfigError(
            "--master cannot be combined with --processes: run `loadkit load --worker --engine "
            "native` once per core on the workers' machines instead"
        )
    splits, split_flag = (
        (master.expect, "--expect-workers") if master else (processes, "--processes")
    )
    if profile.model == "closed" and profile.stages is not None:
        raise ConfigError(
            "the native engine runs closed-model stages not yet: give --rate for an open run "
            "with stages, or --engine locust"
        )
    if profile.model == "closed" and profile.concurrency < splits:
        raise ConfigError(
            f"--concurrency {profile.concurrency} is below {split_flag} {splits}: each "
            "process needs at least one connection"
        )
    bound = profile.in_flight_bound
    if bound is not None and bound < splits:
        raise ConfigError(
            f"--max-in-flight {bound} is below {split_flag} {splits}: each process needs at "
            "least one request in flight"
        )
    encode_request(request)  # a bad method or header is refused before anything connects
    if scenario is not None:
        # Its secrets set and its headers sendable, before anything connects.
        plan_scenario(SharePlan(request=request, model=profile.model, start=None,
                                duration_s=0.0, scenario=scenario))  # fmt: skip
    target = parse_target(request.url, option="URL")
    check_writable(out)
    run_id = uuid.uuid4().hex
    config = _config(
        request,
        profile,
        processes=splits,
        run_id=run_id,
        path=target.path,
        distributed=master is not None,
        scenario=profile.scenario if scenario is not None else None,
    )
    printer = None
    shares_missing: list[InvalidReason] = []
    stops: list[Stopped] = []
    try:
        _check_reachable(request.url, config, out)
        if progress is None and not quiet:
            from loadkit.report.load import ProgressPrinter

            printer = ProgressPrinter(
                duration_s=profile.run_duration_s,
                open_model=profile.model == "open",
                rate=profile.rate if profile.stages is None else None,
            )
            progress = printer
        if master is not None:
            watch = _abort_watch(abort_on, target=request.url, stops=stops)
            recorder, health, interrupted, shares_missing = _run_distributed(
                master, request, profile, timeout_s, progress, watch, scenario
            )
            if stops:
                interrupted = False  # the workers' stop was the criterion's, not a signal
        else:
            # One process starts when its loop runs; several at the common start they are sent
            # once all are ready (``run_processes``).
            plans = _plans(request, profile, processes=processes, timeout_s=timeout_s)
            plans = [replace(plan, scenario=scenario) for plan in plans]
            watch = _abort_watch(abort_on, target=request.url, stops=stops)
            if watch is not None and processes > 1:
                plans = [replace(plan, live_shares=True) for plan in plans]
            recorder, health, interrupted, shares_missing = _run(plans, progress, watch)
            if stops and processes > 1:
                interrupted = False  # the children's stop was the criterion's, not a signal
    except (
        KeyboardInterrupt,
        GeneratorCrashedError,
        WorkersNotConnectedError,
        WorkersNotReadyError,
    ) as stopped:
        # Stopped before any share was measured (Ctrl-C during the reachability check or while
        # the processes start, the generator lost): an invalid file replaces --out, as on the
        # Locust path, so that an earlier run's passing file is never judged for this one.
        if isinstance(stopped, KeyboardInterrupt):
            reason = aborted_reason(f"{INTERRUPTED} before the run measured anything")
        elif isinstance(stopped, WorkersNotConnectedError | WorkersNotReadyError):
            reason = aborted_reason(f"the run could not start: {stopped}")
        else:
            reason = generator_crashed_reason(exit_code=stopped.exit_code)
        unmeasured = unmeasured_load_results(target=request.url, config=config, reason=reason)
        write_results(out, unmeasured)
        if isinstance(stopped, KeyboardInterrupt):
            raise LoadInterrupted(unmeasured, out) from None
        if isinstance(stopped, GeneratorCrashedError):
            stopped.results, stopped.path = unmeasured, out
        raise
    finally:
        if printer is not None:
            printer.close()
    results = build_load_results(
        recorder,
        target=request.url,
        config=config,
        generator=health,
        aborted=interrupted,
        invalid_reasons=(
            [
                overload_reason(
                    cpu_warnings=health.cpu_warnings, max_cpu_percent=health.max_cpu_percent
                )
            ]
            if health.overloaded
            else []
        )
        + shares_missing,
        stopped=stops[0] if stops and not interrupted else None,
    )
    if interrupted:
        results = results.model_copy(update={"invalid_reasons": _aborted_why(results, INTERRUPTED)})
    results = _with_lag_bound(results)
    with signals_deferred():
        write_results(out, results)
    if interrupted:
        raise LoadInterrupted(results, out)
    if not results.valid:
        raise InvalidLoadRunError(results, out)
    return results


def _abort_watch(
    criteria: Sequence[Criterion], *, target: str, stops: list[Stopped]
) -> Callable[[LatencyRecorder, float], bool] | None:
    """The share's once-a-second check of the abort-on-fail criteria; the stop that ended the
    run is appended to ``stops``. None without such criteria (nothing is snapshotted)."""
    if not criteria:
        return None
    from loadkit.gate.abort import first_failure, named_endpoints

    endpoints = named_endpoints(criteria)

    def watch(recorder: LatencyRecorder, elapsed_s: float) -> bool:
        live = live_results(recorder, target=target, endpoints=endpoints)
        stop = first_failure(criteria, live, elapsed_s=elapsed_s)
        if stop is None:
            return False
        stops.append(stop)
        return True

    return watch


def _run(
    plans: Sequence[SharePlan],
    progress: Progress | None,
    watch: Callable[[LatencyRecorder, float], bool] | None = None,
) -> tuple[LatencyRecorder, GeneratorHealth, bool, list[InvalidReason]]:
    """Run the plans: the run's recorder (finished), its generator health, whether interrupted,
    and why it is invalid beyond that (a process that crashed). ``watch``: abort on fail, on
    the one share's recorder, or on the processes' figures merged (``_merged_watch``)."""
    if len(plans) == 1:
        outcome = run_share(plans[0], on_status=progress, control=ShareControl(watch=watch))
        return (
            outcome.recorder,
            _health([(outcome.cpu_warnings, outcome.max_cpu_percent)]),
            outcome.interrupted,
            [crashed_reason(outcome.crashed)] if outcome.crashed is not None else [],
        )

    def merged_status(latest: list[LiveStatus | None]) -> None:
        if progress is not None:
            progress(_combine_status(latest))

    def merged_live(latest: list[WorkerShare | None], start: float) -> bool:
        assert watch is not None
        return _merged_watch(start, watch)(latest)

    try:
        run = run_processes(
            plans, on_status=merged_status, on_live=merged_live if watch is not None else None
        )
    except ProcessesCrashed as crash:
        # What the other processes measured is kept. Stopped by the user (a child still
        # starting dies of a Ctrl-C): interrupted. Else the others were stopped for the crash,
        # and the run is invalid for the one lost.
        recorder, health = _merged(plans[0], crash.shares, start=crash.start)
        if crash.interrupted:
            return recorder, health, True, []
        return recorder, health, False, [generator_crashed_reason(exit_code=crash.exit_code)]
    shares = run.shares
    recorder, health = _merged(plans[0], shares, start=run.start)
    return recorder, health, any(p.interrupted for p in shares), _crashed_reasons(shares)


def _merged_watch(
    start: float, watch: Callable[[LatencyRecorder, float], bool]
) -> Callable[[Sequence[WorkerShare | None]], bool]:
    """``watch`` on the processes' latest figures, merged exactly into one recorder (each
    process's share is cumulative), at the seconds since their common ``start``."""
    clock = RunClock()

    def merged(latest: Sequence[WorkerShare | None]) -> bool:
        recorder = LatencyRecorder(start=start, source="parent")
        for share in latest:
            if share is not None:
                recorder.merge_share(share)
        return watch(recorder, clock.now() - start)

    return merged


def _crashed_reasons(shares: Sequence[ProcessShare]) -> list[InvalidReason]:
    """Why the run is invalid when a process's own code failed (the first such failure)."""
    crashed = [part.crashed for part in shares if part.crashed is not None]
    return [crashed_reason(crashed[0])] if crashed else []


def _merged(
    plan: SharePlan, shares: Sequence[ProcessShare], *, start: float
) -> tuple[LatencyRecorder, GeneratorHealth]:
    """The run's recorder (finished) from the shares of plans like ``plan`` that began at
    ``start``, merged exactly."""
    with signals_deferred():
        return _merge(plan, shares, start=start)


def _merge(
    plan: SharePlan, shares: Sequence[ProcessShare], *, start: float
) -> tuple[LatencyRecorder, GeneratorHealth]:
    recorder = LatencyRecorder(
        start=start,
        source="parent",
        stages=plan.stages if plan.model == "open" else (),
    )
    if plan.model == "open":
        recorder.start_stages_at(start)
        recorder.count_span_from(start)
    for part in shares:
        recorder.merge_share(part.share)
    recorder.finish(end=max((part.share.end or start for part in shares), default=start))
    return recorder, _health([(p.cpu_warnings, p.max_cpu_percent) for p in shares])


def _run_distributed(
    master: NativeMaster,
    request: RequestSpec,
    profile: LoadProfile,
    timeout_s: float | None,
    progress: Progress | None,
    watch: Callable[[LatencyRecorder, float], bool] | None = None,
    scenario: str | None = None,
) -> tuple[LatencyRecorder, GeneratorHealth, bool, list[InvalidReason]]:
    """The run split across ``master.expect`` workers elsewhere, from the common start the
    master sends once all are set up: the merged recorder, the generator health, whether
    interrupted, and why shares are missing (if they are). ``watch``: abort on fail, on the
    workers' figures merged (each sends its own every second). ``scenario``: a declarative
    scenario's description, sent with each plan."""
    plans: list[SharePlan] = []

    def make_plans(workers: int) -> list[SharePlan]:
        made = _plans(request, profile, processes=workers, timeout_s=timeout_s)
        live_shares = watch is not None
        plans.extend(
            replace(
                plan,
                source=f"worker-{plan.worker_index + 1}",
                live_shares=live_shares,
                scenario=scenario,
            )
            for plan in made
        )
        return plans

    def merged_status(latest: list[LiveStatus | None]) -> None:
        if progress is not None:
            progress(_combine_status(latest))

    def merged_live(latest: list[WorkerShare | None], start: float) -> bool:
        assert watch is not None
        return _merged_watch(start, watch)(latest)

    outcome = run_master(
        expect_workers=master.expect,
        bind_host=master.bind_host,
        bind_port=master.bind_port,
        make_plans=make_plans,
        on_status=merged_status,
        on_live=merged_live if watch is not None else None,
        wait_s=master.wait_s,
        ready_wait_s=master.ready_wait_s,
        start_lead_s=DISTRIBUTED_START_LEAD_S,
    )
    arrived = [share for share in outcome.shares if share is not None]
    # Never started (stopped, or every worker gone before all were set up): empty shares.
    start = outcome.start if outcome.start is not None else RunClock().now()
    recorder, health = _merged(plans[0], arrived, start=start)
    health = health.model_copy(
        update={"notes": [f"distributed: {len(outcome.workers)} native worker(s), shares merged"]}
    )
    reasons = _crashed_reasons(arrived)
    if outcome.missing or outcome.refused:
        reasons.append(worker_share_missing_reason(outcome.missing, refused=outcome.refused))
    interrupted = outcome.interrupted or any(p.interrupted for p in arrived)
    return recorder, health, interrupted, reasons


def run_native_worker(
    *,
    master_host: str,
    master_port: int,
    tls: TlsOptions | None = None,
    quiet: bool = False,
) -> WorkerOutcome:
    """``loadkit load --worker --engine native``: run the share the master at
    ``master_host:master_port`` sends, and send it back; the master writes the results.

    ``tls`` is this worker's own ``--insecure``/``--ca-cert`` when given (None: the master's):
    a CA file lives on each machine, so the worker's ``--ca-cert`` replaces the master's path;
    checking certificates where the master does not (or the reverse) contradicts it and is a
    ConfigError (exit 2), as is a request this worker cannot encode. GeneratorCrashedError when
    the master never answered (Locust's retries ran out) or went away; RunGivenUpError (exit 4)
    when the master gave the run up before its start (a worker not set up in time)."""

    printers: list[Any] = []

    def check_plan(plan: SharePlan) -> SharePlan:
        encode_request(plan.request)
        plan_scenario(plan)  # its secrets set here, on this worker
        if not quiet:
            from loadkit.report.load import ProgressPrinter

            printers.append(
                ProgressPrinter(
                    duration_s=plan.duration_s,
                    open_model=plan.model == "open",
                    rate=plan.rate / plan.worker_count if plan.rate and not plan.stages else None,
                )
            )
        if tls is None:
            return plan
        theirs = plan.request.tls
        if tls.verify != theirs.verify:
            said = "--insecure" if not tls.verify else "certificate checking"
            master_says = "checks certificates" if theirs.verify else "runs --insecure"
            raise ConfigError(
                f"this worker's {said} contradicts its master, which {master_says}: give the "
                "master's TLS options (or none) to the worker"
            )
        return replace(plan, request=replace(plan.request, tls=tls))

    def progress(status: LiveStatus) -> None:
        for printer in printers:
            printer(status)

    try:
        return run_worker(
            master_host=master_host,
            master_port=master_port,
            check_plan=check_plan,
            on_status=progress,
        )
    finally:
        for printer in printers:
            printer.close()


def _health(readings: Sequence[tuple[int, float | None]]) -> GeneratorHealth:
    warnings = sum(w for w, _ in readings)
    peaks = [p for _, p in readings if p is not None]
    return GeneratorHealth(
        overloaded=warnings > 0,
        cpu_warnings=warnings,
        max_cpu_percent=round(max(peaks), 1) if peaks else None,
    )


def _combine_status(latest: Sequence[LiveStatus | None]) -> LiveStatus:
    known = [s for s in latest if s is not None]
    p95s = [s.p95_ms for s in known if s.p95_ms is not None]
    service_p95s = [s.service_p95_ms for s in known if s.service_p95_ms is not None]
    requests = sum(s.requests for s in known)
    rps = sum(s.rps for s in known)
    return LiveStatus(
        state="running" if any(s.state == "running" for s in known) else "starting",
        elapsed_s=max((s.elapsed_s for s in known), default=0.0),
        users=sum(s.users for s in known),
        requests=requests,
        rps=round(rps, 1),
        error_rate=(round(sum(s.error_rate * s.rps for s in known) / rps, 4) if rps > 0 else 0.0),
        p95_ms=max(p95s) if p95s else None,
        service_p95_ms=max(service_p95s) if service_p95s else None,
        target_rate=(
            sum(s.target_rate or 0.0 for s in known)
            if any(s.target_rate is not None for s in known)
            else None
        ),
        achieved_rate=(
            round(sum(s.achieved_rate or 0.0 for s in known), 1)
            if any(s.achieved_rate is not None for s in known)
            else None
        ),
        queue=(
            sum(s.queue or 0 for s in known) if any(s.queue is not None for s in known) else None
        ),
    )


def _check_reachable(url: str, config: dict[str, Any], out: Path) -> None:
    """The target must answer before the run; if it does not, an invalid file replaces --out
    (as on the Locust path), so that an earlier run's passing file is never judged for this
    one."""
    try:
        check_reachable(Target.parse(url))
    except TargetUnreachableError as error:
        reason = aborted_reason(f"the run could not start: {error}")
        write_results(out, unmeasured_load_results(target=url, config=config, reason=reason))
        raise


def _plans(
    request: RequestSpec,
    profile: LoadProfile,
    *,
    processes: int,
    timeout_s: float | None,
) -> list[SharePlan]:
    """One plan per process: closed, the connections split as evenly as they go; open, the
    timetable interleaved (``Timetable(worker_index=k, worker_count=n)``) and the in-flight
    bound split as the connections are (the shares add up to the bound). No plan fixes its
    start: one process begins once its loop runs, several (processes or workers) at the
    common start they are sent once all are ready."""
    base = SharePlan(
        request=request,
        model=profile.model,
        start=None,
        duration_s=profile.run_duration_s,
        rate=profile.rate,
        stages=profile.stage_list if profile.model == "open" else (),
        worker_count=processes,
    )
    if timeout_s is not None:
        base = replace(base, timeout_s=timeout_s)
    plans = []
    for k in range(processes):
        if profile.model == "closed":
            share = profile.concurrency // processes + (k < profile.concurrency % processes)
            plan = replace(base, concurrency=share, worker_index=k)
        else:
            # Split as the connections are: the shares add up to the bound, never above it.
            bound = profile.in_flight_bound or processes
            share = bound // processes + (k < bound % processes)
            plan = replace(base, max_in_flight=share, worker_index=k)
        plans.append(replace(plan, source="local" if processes == 1 else f"process-{k + 1}"))
    return plans


def _config(
    request: RequestSpec,
    profile: LoadProfile,
    *,
    processes: int,
    run_id: str,
    path: str,
    distributed: bool = False,
    scenario: str | None = None,
) -> dict[str, Any]:
    """The results' config: the Locust plugin's keys (as ``loadkit load`` on the url scenario
    writes them), with ``engine`` and the request's method; a declarative ``scenario``'s name
    instead of ``url`` (its requests are its own: no path or method)."""
    config: dict[str, Any] = {
        "scenario": scenario or "url",
        "concurrency": profile.concurrency,
        "spawn_rate": None,
        "duration_s": profile.run_duration_s,
        "processes": processes,
        "distributed": distributed,
        "model": profile.model,
        "ui": False,
        "run_id": run_id,
        "engine": ENGINE,
    }
    if scenario is None:
        config |= {"url_path": path, "method": request.method.upper()}
    if profile.rate is not None:
        config |= {"rate": profile.rate, "max_in_flight": profile.in_flight_bound}
        config["concurrency"] = profile.in_flight_bound
    if profile.stages is not None:
        config["stages"] = [asdict(stage) for stage in profile.stage_list]
    return config


def _aborted_why(results: LoadResults, why: str) -> list[Any]:
    """The reasons with the aborted one saying how the run was stopped."""
    return [
        aborted_reason(why) if reason.code == "aborted" else reason
        for reason in results.invalid_reasons
    ]


def _with_lag_bound(results: LoadResults) -> LoadResults:
    """An open run's schedule judged by this engine's lag bound (``LAG_P99_BOUND_MS``); the
    results model adds the reason when the lag is over it (validated again)."""
    schedule = results.schedule
    if schedule is None:
        return results
    from loadkit.measure.histogram import LatencyHistogram

    lag = LatencyHistogram.decode(schedule.lag_histogram)
    updated = schedule.model_copy(
        update={
            "lag_bound_ms": LAG_P99_BOUND_MS,
            "lag_over_bound": lag.count_above_us(LAG_P99_BOUND_MS * 1000.0),
        }
    )
    data = results.model_dump(mode="json")
    data["schedule"] = updated.model_dump(mode="json")
    return LoadResults.model_validate(data)


@contextmanager
def signals_deferred() -> Iterator[None]:
    """Ctrl-C and SIGTERM wait for the block: the shares are in, and merging or writing them
    takes moments; a stop then (a container runtime stopping the master once its workers
    exited) would throw a complete measurement away. The run is over: the signal is dropped.
    Outside the main thread (tests running the engine in a thread), nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in previous:
        signal.signal(sig, signal.SIG_IGN)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            if handler is not None:  # None: a handler not set from Python, left as it is
                signal.signal(sig, handler)

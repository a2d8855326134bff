"""From a load run's recorder to its results file (``LoadResults``), and marking runs invalid.

Pure: the Locust plugin builds results here at the end of a run (single process, or a master
that merged its workers' shares), and the launcher marks a run aborted when it interrupted it.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from loadkit.measure.recorder import LatencyRecorder, RunClock
from loadkit.measure.results import GeneratorHealth, LoadResults, Stopped, with_reason
from loadkit.measure.user_exceptions import UserException, describe_exceptions
from loadkit.measure.validity import InvalidReason, aborted_reason, add_reason, no_requests_reason

STOPPED_EARLY = "the run was stopped before its planned end"


def build_load_results(
    recorder: LatencyRecorder,
    *,
    target: str,
    config: dict[str, Any],
    generator: GeneratorHealth,
    aborted: bool = False,
    invalid_reasons: Sequence[InvalidReason] = (),
    stopped: Stopped | None = None,
    exceptions: Sequence[UserException] = (),
) -> LoadResults:
    """The results of a finished run (``recorder.finish()`` already called).

    ``invalid_reasons`` are the runner's own; an overloaded generator adds its reason (the
    results model does, for whoever builds or reads one), then an aborted run adds its own, so
    that every reader sees why the numbers must not be gated on. A run that recorded no
    request is invalid too (``no_requests``), unless it was aborted (that says why) or users
    waited on a service frozen for the whole run (the stall says so, and the gate fails it).
    ``exceptions``: what user code raised (``ExceptionTally.results``). ``stopped``: how a run
    stopped on purpose ended (not a validity reason). An open-model run's timetable figures and
    a staged run's per-stage figures come from the recorder; a timetable not kept (scheduler lag
    over its bound) makes the run invalid (the results model adds the reason).
    """
    fields = recorder.traffic_fields()
    reasons = list(invalid_reasons)
    if _sent_nothing(fields["totals"].requests, fields["longest_stall"], exceptions, aborted):
        described = describe_exceptions(exceptions) if exceptions else None
        reasons = add_reason(reasons, no_requests_reason(described))
    results = LoadResults(
        target=target,
        config=config,
        **fields,
        generator=generator,
        invalid_reasons=reasons,
        exceptions=list(exceptions),
        stopped=stopped,
        schedule=recorder.schedule_results(),
        stages=recorder.stage_results(),
        span_start_s=recorder.span_start_s(),
    )
    return with_reason(results, aborted_reason(STOPPED_EARLY)) if aborted else results


def _sent_nothing(
    requests: int, stall: object, exceptions: Sequence[UserException], aborted: bool
) -> bool:
    """Whether a finished run recorded no request for want of sending any.

    A stall with no exception means users were waiting on requests that never came back (a
    freeze as long as the run), which is a measurement; with exceptions, "users busy in a task"
    were busy raising, not waiting."""
    if requests or aborted:
        return False
    return stall is None or bool(exceptions)


def live_results(
    recorder: LatencyRecorder, *, target: str, endpoints: Collection[str] = ()
) -> LoadResults:
    """A snapshot of a run still running (what abort-on-fail criteria are judged on): the
    recorder's totals, latencies and error groups so far, exact as at the end, and the figures
    of ``endpoints`` alone (those the criteria name). Its duration and rate are not settled (0)
    until ``finish``, and it carries no timeline nor stall: building those costs a histogram per
    second of the run, on every snapshot, and no criterion that can abort reads them. Every
    endpoint costs an encoding and a percentile scan, in the generator's own loop: with all of
    50 endpoints a snapshot took 44 ms here, with none 2 ms. Built, not read, so not validated
    (its endpoints need not add up to its totals). Meant for once a second."""
    overall = recorder.overall_histogram()
    service = recorder.overall_service_histogram()
    return LoadResults.model_construct(
        target=target,
        config={},
        started_at=recorder.started_at,
        duration_s=0.0,
        totals=recorder.totals(),
        latency_ms=overall.summary(),
        histogram=overall.encode(),
        service_time_ms=service.summary() if service is not None else None,
        service_histogram=service.encode() if service is not None else None,
        endpoints=recorder.endpoint_results(only=endpoints) if endpoints else [],
        errors=recorder.error_groups(),
        timeline=[],
        longest_stall=None,
    )


def mark_aborted(results: LoadResults, why: str) -> LoadResults:
    """A copy of ``results`` marked aborted (idempotent: an existing abort reason is kept)."""
    return with_reason(results, aborted_reason(why))


def unmeasured_load_results(
    *, target: str, config: dict[str, Any], reason: InvalidReason
) -> LoadResults:
    """The results of a run that measured nothing (stopped or failed before Locust wrote any):
    no requests, invalid for ``reason``. Written at ``--out`` in place of whatever was there, so
    that an earlier run's file is never judged for this one."""
    recorder = LatencyRecorder(start=RunClock().now())
    recorder.finish(end=recorder.start)
    return LoadResults(
        target=target,
        config=config,
        **recorder.traffic_fields(),
        invalid_reasons=[reason],
    )

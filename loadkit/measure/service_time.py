"""Which figures of a load run are its service times (from the send): one rule for the gate's
whole run, its stage windows and its windows of seconds.

An open run (a timetable) keeps its service times apart from its response times (from the due
time): ``service_time_ms`` and ``service_histogram``, overall, per stage and per second. A
closed run has one time per request: its service time **is** its response time, and its file
carries no service-time field (docs/results.md). An open run's file without them was written
before loadkit kept them: its service times are unknown there, never its response times, which
a queue in front of the target makes longer.

Pure: reads a results file already loaded.
"""

from __future__ import annotations

from loadkit.measure.results import LatencySummary, LoadResults


def service_is_response_time(results: LoadResults) -> bool:
    """Whether the run's service time is its response time: a closed run (no service times of
    its own, no timetable, not planned open), or a file written before open runs."""
    return (
        results.service_time_ms is None
        and results.service_histogram is None
        and results.schedule is None
        and results.config.get("model", "closed") != "open"
    )


def service_summary(
    results: LoadResults, *, service: LatencySummary | None, latency: LatencySummary, not_sent: int
) -> LatencySummary | None:
    """The service times of ``results``, or of a part of it (a stage) whose figures are given:
    its own ``service``; else its response times (``latency``) where they are its service
    times: in a closed run, or in an open run that kept service times, a part whose requests
    all had their response time as service time (none had a due time of its own). None when
    the response times hold iterations never sent (``not_sent``), or when the open run's file
    kept no service times (``missing_service_time``)."""
    if service is not None:
        return service
    if not_sent:
        return None
    if service_is_response_time(results) or results.service_histogram is not None:
        return latency
    return None


def missing_service_time(results: LoadResults, *, sent: int) -> str:
    """Why ``service_summary`` gave None for ``results`` (or a part of it that ``sent``
    requests), and what to judge instead."""
    if sent <= 0 or service_is_response_time(results) or results.service_histogram is not None:
        return "no request was sent, so there is no service time"
    return (
        "the open run's file holds no service times (service_time_ms), which loadkit did not "
        "keep when it was written, and an open run's response times are not its service times: "
        "judge its response time (load.p95_ms …), or run the load again to record them"
    )

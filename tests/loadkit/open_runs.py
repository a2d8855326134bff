"""Open-model runs computed by hand: a timetable, users that take the next due iteration when
free, and a server whose delays are exact; fed to a recorder as the plugin would."""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

from loadkit.measure.load_results import build_load_results
from loadkit.measure.recorder import LatencyRecorder
from loadkit.measure.results import GeneratorHealth, LoadResults
from loadkit.measure.schedule import ScheduleStats
from loadkit.stages import Stage

T0 = 1_700_000_000.0
ENDPOINT = "GET /api/items"


@dataclass(frozen=True)
class Request:
    """One iteration's request: due, sent and completed, seconds from the run's start."""

    due: float
    sent: float
    end: float

    @property
    def response_s(self) -> float:
        return self.end - self.due

    @property
    def service_s(self) -> float:
        return self.end - self.sent


def nearest_rank(values: list[float], percentile: float) -> float:
    """The smallest value with at least ``percentile`` % of the values at or below it."""
    ordered = sorted(values)
    return ordered[max(math.ceil(Fraction(str(percentile)) * len(ordered) / 100), 1) - 1]


def freeze_timetable(
    *,
    interval_s: float = 0.01,
    duration_s: float = 3.0,
    service_s: float = 0.002,
    freeze: tuple[float, float] = (1.0, 2.0),
    users: int = 1,
) -> list[Request]:
    """Iterations due every ``interval_s`` for ``duration_s``, run by ``users`` users (each takes
    the earliest due iteration waiting when it is free) against a server that answers in
    ``service_s`` except that nothing completes inside ``freeze``: a request that would, completes
    ``service_s`` after it ends. Returns the requests in completion order."""
    dues = [round(i * interval_s, 9) for i in range(round(duration_s / interval_s))]
    free_at = [0.0] * users
    requests = []
    for due in dues:
        user = min(range(users), key=lambda u: free_at[u])
        sent = max(due, free_at[user])
        end = sent + service_s
        if end > freeze[0] and sent < freeze[1]:
            end = freeze[1] + service_s
        free_at[user] = end
        requests.append(Request(due=due, sent=sent, end=end))
    requests.sort(key=lambda r: r.end)
    return requests


def record_open(
    recorder: LatencyRecorder, requests: list[Request], *, start: float = T0, errors_every: int = 0
) -> None:
    """Record each request as the open-model plugin does (response time from the due time)."""
    for index, request in enumerate(requests):
        failed = errors_every and index % errors_every == 0
        recorder.record(
            endpoint=ENDPOINT,
            latency_s=request.response_s,
            end=start + request.end,
            service_s=request.service_s,
            error_kind="timeout" if failed else None,
            status=None if failed else 200,
        )


def schedule_of(
    requests: list[Request], *, rate: float, lags_s: list[float], not_sent: int = 0
) -> ScheduleStats:
    """A timetable's figures for ``requests`` (every one dispatched) and ``not_sent`` more."""
    stats = ScheduleStats(
        target_rate=rate,
        duration_s=max(r.due for r in requests) + 1 / rate,
        iterations_due=len(requests) + not_sent,
        iterations_dispatched=len(requests),
        max_queue=7,
        drain_s=0.25,
        max_in_flight=1,
    )
    for lag in lags_s:
        stats.record_lag(lag)
    return stats


def open_results(
    recorder: LatencyRecorder, *, end: float, schedule: ScheduleStats | None = None
) -> LoadResults:
    """The results file of a finished open run."""
    if schedule is not None:
        recorder.set_schedule(schedule)
    recorder.finish(end=end)
    return build_load_results(
        recorder,
        target="http://open",
        config={"model": "open"},
        generator=GeneratorHealth(),
    )


STAGES = (Stage(duration_s=1.0, target=100.0, name="warm"), Stage(duration_s=2.0, target=100.0))

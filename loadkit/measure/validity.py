"""Run validity: why a run's numbers must not be gated on, as coded reasons.

A run is valid exactly when its results carry no ``InvalidReason``: the product's first rule
("an invalid run never passes") rests on that list alone, never on words matched in a message.
Each reason has a ``code`` from one registry (``MEANINGS``, documented in docs/results.md) for
programs to act on, and a ``detail`` for people, saying what was measured.

A run stopped on purpose (by a criterion, by its locustfile) is valid and carries no reason
here: that is the results' ``stopped`` section.
"""

from __future__ import annotations

import signal
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Literal

from pydantic import BaseModel, ConfigDict

InvalidCode = Literal[
    "aborted",
    "generator_overloaded",
    "incomplete",
    "worker_share_missing",
    "generator_crashed",
    "no_requests",
    "unspecified",
]

MEANINGS: Mapping[InvalidCode, str] = MappingProxyType(
    {
        "aborted": "the run was stopped before its planned end (Ctrl-C, SIGTERM, killed after "
        "its time bound), or could not run at all (smoke: target unreachable; lock audit: a "
        "file that does not parse)",
        "generator_overloaded": "a load generator process ran above 90 % CPU, or (open model) "
        "did not keep its timetable (scheduler lag P99 or event-loop delay P90 above its bound): "
        "its latencies include its own queueing",
        "incomplete": "the test ended before its planned duration without being stopped "
        "(Locust ended it: its last worker quit), or its LoadTestShape had not finished when "
        "the duration (the shape's cap) was reached",
        "worker_share_missing": "a distributed worker's final share never reached the master: "
        "its last seconds are missing from the merged numbers",
        "generator_crashed": "the load generator process died during the run (a locustfile "
        "that fails to import is a configuration error instead, exit 2)",
        "no_requests": "the test recorded no request at all (its users sent none, e.g. every "
        "task raised an exception): there is nothing to judge",
        "unspecified": "a reason in a loadkit.results/1 file that loadkit does not recognise, "
        "kept in the detail as written; loadkit never writes it",
    }
)
"""Every code, with its one-line meaning (the registry; docs/results.md lists the same)."""


class InvalidReason(BaseModel):
    """One reason why a run must not be gated on."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    code: InvalidCode
    detail: str
    """What happened, with what was measured, for a person to read."""

    def __str__(self) -> str:
        return f"{self.code}: {self.detail}"


def has_code(reasons: Sequence[InvalidReason], code: InvalidCode) -> bool:
    """Whether a reason of ``code`` is among ``reasons``."""
    return any(reason.code == code for reason in reasons)


def add_reason(reasons: Sequence[InvalidReason], reason: InvalidReason) -> list[InvalidReason]:
    """``reasons`` with ``reason`` appended, unless a reason of its code is already there: the
    first producer to notice (it knows most about why) keeps its detail."""
    if has_code(reasons, reason.code):
        return list(reasons)
    return [*reasons, reason]


# --- the reasons loadkit's producers give -------------------------------------------------------


INTERRUPTED = "interrupted (Ctrl-C or SIGTERM)"
"""How an ``aborted`` reason says a person or a supervisor stopped the run."""


def aborted_reason(why: str) -> InvalidReason:
    """The run was stopped before its end, or could not run; ``why`` says how."""
    return InvalidReason(code="aborted", detail=why)


def overload_reason(*, cpu_warnings: int, max_cpu_percent: float | None) -> InvalidReason:
    """A generator process saturated its CPU, with the readings that said so."""
    peak = f", peak {max_cpu_percent:.0f} %" if max_cpu_percent else ""
    return InvalidReason(
        code="generator_overloaded",
        detail=f"a load generator process ran above 90 % CPU ({cpu_warnings} warning(s){peak}); "
        "its latencies include its own queueing. Use more --processes or a lighter scenario",
    )


LAG_P99_BOUND_MS = 20.0
"""An open-model run is invalid when its scheduler lag's P99 is above this (milliseconds).

The lag is how late the generator began an iteration whose due time had come while a user was
free to run it: pure generator delay, which the target never caused and which every response time
measured from the due time then carries.

Measured on the 2-core machine this project is built on, busy with other test runs (December
2026, 5 s runs of ``loadkit load URL --rate R`` against nginx on loopback, default in-flight bound
of 2,000 users; ``docs/results.md`` has the table): healthy runs, the generator's CPU at 20-55 %,
had a lag P99 of 1.5-2.9 ms at 100/s and 2.9-8.6 ms at 500/s; the ``open`` profile (login at 5/s
against the bundled service) 3.2-3.7 ms. A generator near its limit had 6-20 ms at 1,000/s (CPU
64-82 %, its response-time P95 inflated from ~3 ms to up to 30 ms) and 16-23 ms at 1,500/s (CPU
95 %); one whose task burns CPU (50 ms per iteration at 100/s) lags by seconds, even where its
process read 66 % CPU. 20 ms is twice the worst healthy P99 seen, so a busy machine does not void
a sound run, and a generator that lags more than that has added more to the response times than
most criteria can absorb (2 % of the seed's 1 s P95 bound; under the 5 % the freeze tests allow on
a P95 of a few hundred ms); a saturated CPU is caught by its own reading too
(``overload_reason``). The P99 (not the max) is judged, so that one late wake-up (a garbage
collection, the OS preempting the process once) does not void a run; the max is in the results."""


LAG_MIN_OVER_BOUND = 3
"""The lag's P99 voids a run only when at least this many iterations lagged above the bound.

On a short run the P99 is the maximum (under 100 iterations, nearest rank) or next to it (under
200), so one late wake-up (a garbage collection, the OS preempting the process once; seen: a
75-iteration run with a P99 of 67.8 ms whose reruns had 4-6 ms) would void a healthy run, the
very thing the P99 is chosen to avoid. From 200 iterations on, a P99 above the bound already
means at least 3 iterations above it, so this changes nothing there; below, one or two hiccups
are tolerated (still in the results: the max, ``lag_over_bound``) and three or more, over 1.5 %
of such a run, void it as before. A generator that cannot keep the rate lags on most
iterations, so it is caught however short the run."""


def timetable_missed_reason(*, lag_p99_ms: float, bound_ms: float) -> InvalidReason:
    """An open-model generator dispatched iterations later than their due time (while a user was
    free) by more than ``bound_ms`` at the P99: the timetable was not kept."""
    return InvalidReason(
        code="generator_overloaded",
        detail=f"the timetable was not kept: scheduler lag P99 {lag_p99_ms:g} ms is above the "
        f"{bound_ms:g} ms bound, so response times include the generator's own delay. Use more "
        "--processes, a lower --rate or a lighter scenario",
    )


LOOP_PROBE_INTERVAL_S = 0.01
"""How long the open model's loop probe sleeps between wake-ups: 100 wake-ups a second (a few
µs of CPU each, well under 0.1 % of a core), enough samples for a P90 in a 1 s run."""


LOOP_DELAY_P90_BOUND_MS = 2.0
"""An open-model run is invalid when its event-loop delay's P90 is above this (milliseconds).

The scheduler lag is measured only while a user is free; a generator too slow to process the
responses keeps every user busy, and its own delay then shows as queue, ``not_sent`` and
response time charged to the target, with a small lag (seen: 7,850/s asked, 79 % completed, lag
P99 5.6 ms, judged valid). The loop delay (how late a greenlet sleeping ``LOOP_PROBE_INTERVAL_S``
wakes) is measured whether or not a user is free: it is about one turn of the loop, which grows
when the loop never idles.

Measured on the 2-core machine this project is built on, shared with other work (December 2026, 5 s
runs of ``loadkit load URL --rate R --max-in-flight 20`` against nginx on loopback, load average
1.0-1.6; ``docs/results.md`` has the table): healthy runs had a loop-delay P90 of 1.03-1.09 ms at
100/s and 500/s, 0.83-1.06 ms from 1,000/s to 5,000/s (CPU up to 81 %); a run at its limit
(7,000/s, 99.4-99.6 % of the rate, CPU 81-83 %) 1.35-2.61 ms; saturated generators (10,000/s and
14,000/s, 60-84 % of the rate completed, iterations left by the thousand as not_sent, scheduler lag
P99 1.9-4.1 ms: valid by the lag alone) 2.75-4.79 ms, and a loop blocked 10 ms after each response
(2 users, 300/s, its CPU at 6-7 %) 8.8-16.9 ms. The P99 does not tell them apart (healthy 1.7-6.7
ms, saturated 6.9-8.7 ms: a preemption now and then is as late as a saturated turn), the P90 does:
2 ms is about twice the worst healthy P90 at 100/s and 500/s, under every saturated one. A
generator at its very limit may be voided by it; it was already close to the queueing this bound
exists to catch."""


LOOP_DELAY_MIN_OVER_BOUND = 3
"""As ``LAG_MIN_OVER_BOUND``: the loop delay's P90 voids a run only when at least this many
wake-ups were later than the bound (on a run of under 30 wake-ups, 0.3 s, one or two hiccups
are the P90)."""


def loop_lagged_reason(*, delay_p90_ms: float, bound_ms: float) -> InvalidReason:
    """An open-model generator's event loop woke its probe later than ``bound_ms`` at the P90:
    it could not keep up with its own work (responses, users), whatever the scheduler lag."""
    return InvalidReason(
        code="generator_overloaded",
        detail=f"the generator's event loop lagged: its wake-ups were late by {delay_p90_ms:g} ms "
        f"at the P90, above the {bound_ms:g} ms bound, so queueing, not_sent and response times "
        "include the generator's own delay. Use more --processes, a lower --rate or a lighter "
        "scenario",
    )


def incomplete_reason(*, ran_s: float, planned_s: float) -> InvalidReason:
    """The test ended by itself after ``ran_s`` of its ``planned_s`` seconds."""
    return InvalidReason(
        code="incomplete",
        detail=f"the test stopped after {ran_s:.1f} s of the planned {planned_s:g} s",
    )


def shape_unfinished_reason(*, shape: str, ran_s: float, cap_s: float | None) -> InvalidReason:
    """The locustfile's ``LoadTestShape`` named ``shape`` had not finished: cut at the run's cap
    of ``cap_s`` seconds, or (``cap_s`` None) ended by Locust after ``ran_s`` seconds."""
    if cap_s is not None:
        detail = (
            f"the shape {shape} had not finished after --duration {cap_s:g} s and was cut "
            "there; give a --duration longer than the shape"
        )
    else:
        detail = f"the test stopped after {ran_s:.1f} s, before the shape {shape} had finished"
    return InvalidReason(code="incomplete", detail=detail)


def worker_share_missing_reason(
    workers: Sequence[str], *, refused: Mapping[str, str] | None = None
) -> InvalidReason:
    """The master wrote the results without the final share of ``workers``, or after refusing
    a share of the ``refused`` workers (worker → why)."""
    parts = []
    if workers:
        parts.append(
            f"no final share from worker(s) {', '.join(workers)}; their last seconds are missing"
        )
    parts += [
        f"a share from worker {worker} was refused ({why}); its requests are missing"
        for worker, why in sorted((refused or {}).items())
    ]
    return InvalidReason(code="worker_share_missing", detail="; ".join(parts))


def no_requests_reason(exceptions: str | None = None) -> InvalidReason:
    """The test recorded no request; ``exceptions`` says what user code raised, if anything
    (``loadkit.measure.user_exceptions.describe_exceptions``)."""
    why = f": {exceptions}" if exceptions else ""
    return InvalidReason(
        code="no_requests",
        detail=f"the test recorded no request{why}; a test that sends nothing cannot pass",
    )


def stopped_in_test_start_reason(message: str) -> InvalidReason:
    """The locustfile raised ``StopTest`` (``message``) in a ``test_start`` hook: the test
    stopped before any user started."""
    said = f": {message}" if message else ""
    return InvalidReason(
        code="no_requests",
        detail=f"the locustfile stopped the test in its test_start hook (StopTest{said}) "
        "before any user started; no request was sent",
    )


def exit_description(exit_code: int) -> str:
    """How a process ended, from ``Popen.returncode`` (negative: the signal that killed it)."""
    if exit_code < 0:
        try:
            return f"was killed by {signal.Signals(-exit_code).name}"
        except ValueError:
            return f"was killed by signal {-exit_code}"
    return f"exited with code {exit_code}"


def generator_crashed_reason(*, exit_code: int | None) -> InvalidReason:
    """The generator process died during the run (``exit_code`` as ``Popen.returncode``
    reports it: negative for a signal; None when it is not known)."""
    how = "died" if exit_code is None else exit_description(exit_code)
    return InvalidReason(
        code="generator_crashed",
        detail=f"the load generator process {how} during the run; the results stop there",
    )

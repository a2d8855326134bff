"""What a window (``loadkit.windows``) of a run holds: the figures a criterion judges there.

A window of seconds is judged on the requests that completed in those seconds, from the
timeline's per-second histograms merged exactly (never from averaged per-second P95s); a stage
window on that stage's own figures (the requests that began in it, as the stage table shows).
Service times over seconds come from the seconds' ``service_histogram`` (open runs), merged
exactly as the response times are; in a closed run they are its response times (docs/results.md);
an open run's file without them is refused, never judged on its response times instead. The
rule is ``measure.service_time``'s, as for the whole run and a stage.
"steady" is from the end of the ramp-up (the first stage, or spawning every user at the spawn
rate) to the start of the last ramp-down (a last stage whose target is below the one before);
a run with neither is judged whole. A window's requests per second count its seconds up to
the run's end (``span_start_s + duration_s`` on the timeline), not the drain's part-second after.

Pure: reads a results file already loaded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from loadkit.exceptions import InputError
from loadkit.measure.histogram import LatencyHistogram
from loadkit.measure.results import LatencySummary, LoadResults, StageResults
from loadkit.measure.service_time import (
    missing_service_time,
    service_is_response_time,
    service_summary,
)
from loadkit.windows import Window


@dataclass(frozen=True)
class WindowFigures:
    """A window's traffic: what the gate's load metrics read in it."""

    label: str
    """How the span is shown: ``steady (10 s-50 s, after stage 1)``, ``stage:2 (peak, …)``."""
    requests: int
    errors: int
    duration_s: float
    latency: LatencySummary
    service: LatencySummary | None
    """The service times; None for a window of seconds unless asked for (``service_times``)."""
    seconds: tuple[int, int]
    """The timeline's seconds [from, to) the window covers (its evidence shows only these)."""
    no_service: str = "no request was sent, so there is no service time"
    """Why ``service`` is None when it was asked for (``measure.service_time``)."""

    @property
    def rps(self) -> float:
        """Requests per second over the window."""
        return self.requests / self.duration_s


class WindowOutsideRunError(InputError):
    """The window reaches past the run's end. A run stopped early (by a criterion, its
    locustfile) holds nothing there to judge: the gate says so (not evaluated); a run that ran
    its course was judged with a window it never had (exit 2)."""


def window_figures(
    window: Window, results: LoadResults, *, source: str, service_times: bool = False
) -> WindowFigures | None:
    """The figures of ``results`` in ``window``; None when the window is the whole run (``all``,
    ``from 0s``, ``steady`` without any ramp): the run's own figures are judged then.
    ``service_times``: merge the seconds' service times too (a service-time criterion; it
    costs a second decode and merge per second, so only when asked).

    Raises ``WindowOutsideRunError`` when the window reaches past the run's end, ``InputError``
    (naming the file) when the file cannot give the figures exactly: no such stage, seconds
    without per-second histograms (a file written before windows, or past the
    writer's size bound), an open run's seconds without service histograms (``service_times``;
    a file written before they were kept), a run with no steady state."""
    if window.judges_whole_run:
        return None
    run_end = run_end_s(results)
    if window.kind == "stage":
        return _stage_figures(window, results, run_end, source=source)
    if window.kind == "seconds":
        end = len(results.timeline) if window.end_s is None else window.end_s
        return _seconds_figures(
            window,
            results,
            window.start_s,
            end,
            run_end,
            "",
            source=source,
            service_times=service_times,
        )
    ramp_up_end, ramp_down_start, why = _steady_bounds(results)
    if ramp_up_end == 0 and ramp_down_start is None:
        return None  # no ramp: steady is the whole run (config.py's label says "@steady")
    start = math.ceil(ramp_up_end)
    steady_end = run_end if ramp_down_start is None else min(ramp_down_start, run_end)
    if steady_end - start < 1:
        raise InputError(
            f"{source}: window steady: the run has no whole second of steady state ({why}, it "
            f"ends at {steady_end:.3g} s); give it a stage after its ramp-up, or judge it with "
            'window = "all"'
        )
    end = len(results.timeline) if ramp_down_start is None else math.floor(ramp_down_start)
    return _seconds_figures(
        window, results, start, end, run_end, why, source=source, service_times=service_times
    )


def run_end_s(results: LoadResults) -> float:
    """When the run ended, in seconds on the timeline (its drain's completions come after)."""
    return (results.span_start_s or 0.0) + results.duration_s


def _steady_bounds(results: LoadResults) -> tuple[float, float | None, str]:
    """The end of the ramp-up and the start of the last ramp-down (None: none), in seconds on
    the timeline, and how they were found."""
    stages = results.stages
    if stages:
        first = stages[0]
        last = stages[-1]
        down = len(stages) > 1 and last.target < stages[-2].target
        why = f"after {first.label()}" + (f", before {last.label()}" if down else "")
        # Stage times count from the span's start; the timeline's seconds from the run's start.
        offset = results.span_start_s or 0.0
        return first.end_s + offset, last.start_s + offset if down else None, why
    users = results.config.get("concurrency")
    spawn_rate = results.config.get("spawn_rate")
    if (
        results.config.get("model", "closed") == "closed"
        and isinstance(users, int)
        and isinstance(spawn_rate, int | float)
        and spawn_rate > 0
    ):
        ramp = users / spawn_rate
        return ramp, None, f"after spawning {users} users at {spawn_rate:g}/s"
    return 0.0, None, ""


def _seconds_figures(
    window: Window,
    results: LoadResults,
    start: int,
    end: int,
    run_end: float,
    why: str,
    *,
    source: str,
    service_times: bool,
) -> WindowFigures:
    shown = f"{window.text} ({start} s-{end} s{', ' + why if why else ''})"
    if start >= run_end or end > len(results.timeline):
        raise WindowOutsideRunError(
            f"{source}: window {shown} reaches past the run's end ({run_end:.3g} s; its "
            f"timeline ends at {len(results.timeline)} s)"
        )
    if end <= start:
        raise InputError(f"{source}: window {shown} holds no whole second of the run")
    histogram = LatencyHistogram()
    # A closed run's service times are its response times (no per-second service histograms).
    apart = service_times and not service_is_response_time(results)
    service = LatencyHistogram() if apart else None
    requests = errors = 0
    for point in results.timeline[start:end]:
        requests += point.completions
        errors += point.errors
        if point.completions == 0:
            continue
        if point.histogram is None:
            raise InputError(
                f"{source}: second {point.t_s} of window {shown} has no latency histogram (a "
                "file written before windows were recorded, or past the size bound the writer "
                'keeps them to); judge it with window = "all"'
            )
        histogram.add(LatencyHistogram.decode(point.histogram))
        if service is None:
            continue
        if point.service_histogram is None:
            raise _no_service_times(results, point.t_s, shown, source=source)
        service.add(LatencyHistogram.decode(point.service_histogram))
    latency = histogram.summary()
    service_summary = service.summary() if service is not None else None
    if service_times and service is None:
        service_summary = latency  # a closed run: the same requests, the same times
    return WindowFigures(
        label=shown,
        requests=requests,
        errors=errors,
        # Up to the run's end: the last second of the timeline is the drain's part-second.
        duration_s=min(float(end), run_end) - start,
        latency=latency,
        service=service_summary,
        seconds=(start, end),
    )


def _no_service_times(results: LoadResults, second: int, shown: str, *, source: str) -> InputError:
    """Why an open run's window cannot judge service times, and what can be judged instead:
    the whole run or a stage only where the file holds their service times (the one rule,
    ``measure.service_time``, would refuse them too otherwise)."""
    instead = ""
    if results.service_time_ms is not None:
        instead = 'the service time over the whole run (window = "all")'
        if results.stages:
            instead += ' or a stage (window = "stage:N")'
        instead += ", "
    return InputError(
        f"{source}: second {second} of window {shown} has no service_histogram, so the window's "
        "service times (from the send) cannot be judged exactly: the file was written before "
        "an open run's timeline kept each second's service times, or past the size bound the "
        f"writer keeps them to. Judge {instead}the window's response time (load.p95_ms …), or "
        "run the load again to record them"
    )


def _stage_figures(
    window: Window, results: LoadResults, run_end: float, *, source: str
) -> WindowFigures:
    stages = results.stages or []
    stage = _find_stage(stages, window.stage)
    if stage is None:
        known = ", ".join(f"{s.index}" + (f" ({s.name!r})" if s.name else "") for s in stages)
        raise InputError(
            f"{source}: window {window.text!r}: the run has no such stage "
            f"({'its stages: ' + known if known else 'it ran without stages'})"
        )
    offset = results.span_start_s or 0.0
    # A stage a stopped run never finished holds part of what the stage was meant to offer.
    cut = results.stopped is not None and stage.end_s + offset > run_end
    if stage.start_s + offset >= run_end or cut:
        raise WindowOutsideRunError(
            f"{source}: window {window.text!r}: {stage.label()} reaches past the run's end "
            f"({run_end:.3g} s)"
        )
    last_second = max(len(results.timeline), 1)
    return WindowFigures(
        label=f"{window.text} ({stage.label()}, {stage.start_s:g} s-{stage.end_s:g} s)",
        requests=stage.requests,
        errors=stage.errors,
        duration_s=stage.end_s - stage.start_s,
        latency=stage.latency_ms,
        # A closed run's stages keep response times only: they are its service times.
        service=service_summary(
            results,
            service=stage.service_time_ms,
            latency=stage.latency_ms,
            not_sent=stage.not_sent,
        ),
        seconds=(
            min(math.floor(stage.start_s + offset), last_second - 1),
            min(math.ceil(stage.end_s + offset), last_second),
        ),
        no_service=missing_service_time(results, sent=stage.requests - stage.not_sent),
    )


def _find_stage(stages: list[StageResults], ref: int | str | None) -> StageResults | None:
    for stage in stages:
        if stage.index == ref or (isinstance(ref, str) and stage.name == ref):
            return stage
    return None

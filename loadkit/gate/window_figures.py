"""What a window (``loadkit.windows``) of a run holds: the figures a criterion judges there.

A window of seconds is judged on the requests that completed in those seconds, from the
timeline's per-second histograms merged exactly (never from averaged per-second P95s); a stage
window on that stage's own figures (the requests that began in it, as the stage table shows).
"steady" is from the end of the ramp-up (the first stage, or spawning every user at the spawn
rate) to the start of the last ramp-down (a last stage whose target is below the one before);
a run with neither is judged whole.

Pure: reads a results file already loaded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from loadkit.exceptions import InputError
from loadkit.measure.histogram import LatencyHistogram
from loadkit.measure.results import LatencySummary, LoadResults, StageResults
from loadkit.windows import Window


@dataclass(frozen=True)
class WindowFigures:
    """A window's traffic: what the gate's load metrics read in it."""

    label: str
    """How the span is shown: ``steady (10 s-50 s)``, ``stage 2 "peak"``."""
    requests: int
    errors: int
    duration_s: float
    latency: LatencySummary
    service: LatencySummary | None

    @property
    def rps(self) -> float:
        """Requests per second over the window."""
        return self.requests / self.duration_s


def window_figures(window: Window, results: LoadResults, *, source: str) -> WindowFigures | None:
    """The figures of ``results`` in ``window``; None when the window is the whole run (``all``,
    ``from 0s``, ``steady`` without any ramp): the run's own figures are judged then.

    Raises ``InputError`` (naming the file) when the file cannot give them exactly: no such
    stage, seconds past the run or without per-second histograms (a file written before
    windows, or past the writer's size bound)."""
    if window.judges_whole_run:
        return None
    if window.kind == "stage":
        return _stage_figures(window, results, source=source)
    run_end = len(results.timeline)
    if window.kind == "seconds":
        end = run_end if window.end_s is None else window.end_s
        return _seconds_figures(window, results, window.start_s, end, "", source=source)
    ramp_up_end, ramp_down_start, why = _steady_bounds(results)
    if ramp_up_end == 0 and ramp_down_start is None:
        return None
    start = math.ceil(ramp_up_end)
    end = run_end if ramp_down_start is None else math.floor(ramp_down_start)
    return _seconds_figures(window, results, start, end, why, source=source)


def _steady_bounds(results: LoadResults) -> tuple[float, float | None, str]:
    """The end of the ramp-up and the start of the last ramp-down (None: none), in seconds."""
    stages = results.stages
    if stages:
        first = stages[0]
        last = stages[-1]
        down = len(stages) > 1 and last.target < stages[-2].target
        why = f"after {first.label()}" + (f", before {last.label()}" if down else "")
        # Stage times count from the stages' clock; the timeline's seconds from the run's start.
        offset = results.stages_start_s or 0.0
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
    window: Window, results: LoadResults, start: int, end: int, why: str, *, source: str
) -> WindowFigures:
    shown = f"{window.text} ({start} s-{end} s{', ' + why if why else ''})"
    if end > len(results.timeline):
        raise InputError(
            f"{source}: window {shown} reaches past the run's timeline, which ends at "
            f"{len(results.timeline)} s"
        )
    if end <= start:
        raise InputError(f"{source}: window {shown} holds no whole second of the run")
    histogram = LatencyHistogram()
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
    return WindowFigures(
        label=shown,
        requests=requests,
        errors=errors,
        duration_s=float(end - start),
        latency=histogram.summary(),
        service=None,
    )


def _stage_figures(window: Window, results: LoadResults, *, source: str) -> WindowFigures:
    stages = results.stages or []
    stage = _find_stage(stages, window.stage)
    if stage is None:
        known = ", ".join(f"{s.index}" + (f" ({s.name!r})" if s.name else "") for s in stages)
        raise InputError(
            f"{source}: window {window.text!r}: the run has no such stage "
            f"({'its stages: ' + known if known else 'it ran without stages'})"
        )
    return WindowFigures(
        label=f"{window.text} ({stage.label()}, {stage.start_s:g} s-{stage.end_s:g} s)",
        requests=stage.requests,
        errors=stage.errors,
        duration_s=stage.end_s - stage.start_s,
        latency=stage.latency_ms,
        # A closed run's stages keep response times only: they are its service times.
        service=stage.service_time_ms
        if stage.service_time_ms is not None or stage.not_sent
        else stage.latency_ms,
    )


def _find_stage(stages: list[StageResults], ref: int | str | None) -> StageResults | None:
    for stage in stages:
        if stage.index == ref or (isinstance(ref, str) and stage.name == ref):
            return stage
    return None

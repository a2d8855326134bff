"""The span of a run a criterion judges (DESIGN, "Windows"): ``window = "all" | "steady" |
"from 10s" | "10s-40s" | "stage:2" | "stage:NAME"``, parsed (what each judges:
``loadkit.gate.window_figures``). Seconds are whole and counted from the run's start: the
timeline counts per second, and a bound inside a second could not be judged exactly.

Pure, and light to import (config.py validates the key with it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

WindowKind = Literal["all", "steady", "seconds", "stage"]

_SECONDS = r"(\d+)s"
_FROM = re.compile(rf"from {_SECONDS}")
_SPAN = re.compile(rf"{_SECONDS}-{_SECONDS}")
_STAGE = re.compile(r"stage:(.+)")

WINDOW_FORMS = '"all", "steady", "from 10s", "10s-40s", "stage:2" or "stage:NAME"'

SERVICE_WINDOW_METRICS = frozenset(
    {"service_p50_ms", "service_p90_ms", "service_p95_ms", "service_p99_ms"}
)
"""The service-time metrics. A window of seconds judges them on the seconds' service histograms
(an open run's timeline keeps them; a closed run's service times are its response times); a
file without them is refused when judged (``loadkit.gate.window_figures``), never here: the
acceptance file cannot know which results it will judge."""

SECONDS_WINDOW_METRICS = (
    frozenset({"requests", "errors", "error_rate", "rps"})
    | frozenset({"p50_ms", "p90_ms", "p95_ms", "p99_ms", "p999_ms", "max_ms", "mean_ms"})
    | SERVICE_WINDOW_METRICS
)
"""What a window of seconds can judge: the timeline keeps counts, response times and service
times per second (error kinds, stalls and endpoints are not judged over a window)."""

STAGE_WINDOW_METRICS = SECONDS_WINDOW_METRICS
"""What a stage window can judge: a stage's own figures, the same metrics."""


@dataclass(frozen=True)
class Window:
    """A parsed window key. ``start_s``/``end_s`` for ``seconds`` (``end_s`` None: to the
    run's end); ``stage`` holds a 1-based index or a stage name."""

    text: str
    kind: WindowKind
    start_s: int = 0
    end_s: int | None = None
    stage: int | str | None = None

    @property
    def judges_whole_run(self) -> bool:
        """Whether the window is the whole run as written (``all``, or ``from 0s``)."""
        return self.kind == "all" or (
            self.kind == "seconds" and self.start_s == 0 and self.end_s is None
        )

    @property
    def metrics(self) -> frozenset[str]:
        """The load metrics this window can judge."""
        return STAGE_WINDOW_METRICS if self.kind == "stage" else SECONDS_WINDOW_METRICS


def parse_window(text: str) -> Window:
    """Parse a window key; raises ValueError naming the forms it accepts."""
    value = text.strip()
    if value in ("all", "steady"):
        return Window(text=value, kind="all" if value == "all" else "steady")
    if match := _FROM.fullmatch(value):
        return Window(text=value, kind="seconds", start_s=int(match[1]))
    if match := _SPAN.fullmatch(value):
        start, end = int(match[1]), int(match[2])
        if end <= start:
            raise ValueError(f"window {text!r} ends at or before it starts")
        return Window(text=value, kind="seconds", start_s=start, end_s=end)
    if match := _STAGE.fullmatch(value):
        ref = match[1].strip()
        if not ref:
            raise ValueError(f"window {text!r} names no stage (stage:2 or stage:NAME)")
        if ref.isdigit():
            if int(ref) < 1:
                raise ValueError(f"window {text!r}: stages are numbered from 1")
            return Window(text=value, kind="stage", stage=int(ref))
        return Window(text=value, kind="stage", stage=ref)
    raise ValueError(
        f"window {text!r} is not one of {WINDOW_FORMS} (whole seconds, counted from the run's "
        "start)"
    )

"""Load stages: the run as a list of (duration, target) steps, ramped linearly between targets.

``--stages 30s:50,60s:200,30s:0`` and ``stages = [{duration_s = 30, target = 50}, …]`` in a
profile say the same thing: for 30 s ramp from 0 to 50, then for 60 s from 50 to 200, then for 30 s
down to 0. The target is users in a closed-model run and iterations per second in an open one (as
k6's ``stages`` and its ramping executors). Pure: parsing and arithmetic only.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

_STEP = re.compile(r"^\s*(?P<duration>[0-9]+(?:\.[0-9]+)?)\s*(?P<unit>ms|s|m|h)?\s*:\s*"
                   r"(?P<target>[0-9]+(?:\.[0-9]+)?)\s*$")  # fmt: skip
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


@dataclass(frozen=True)
class Stage:
    """One step of the run: ramp linearly to ``target`` over ``duration_s`` seconds."""

    duration_s: float
    target: float
    name: str | None = None

    def label(self, index: int) -> str:
        """How the stage is named to people: its name, else its 1-based number."""
        return self.name or f"stage {index + 1}"


def parse_stages(text: str, *, option: str = "--stages") -> tuple[Stage, ...]:
    """``"30s:50,60s:200,30s:0"`` as stages; a ValueError naming the bad step otherwise.

    A duration is a number with an optional unit (``ms``, ``s`` (default), ``m``, ``h``); a target
    is a number of users (closed model) or iterations per second (open model).
    """
    steps = text.split(",")
    if not text.strip():
        raise ValueError(f"{option}: no stages given; write e.g. 30s:50,60s:200,30s:0")
    stages: list[Stage] = []
    for index, step in enumerate(steps):
        match = _STEP.match(step)
        if match is None:
            raise ValueError(
                f"{option}: step {index + 1} {step.strip()!r} is not DURATION:TARGET "
                "(e.g. 30s:50, 2m:200)"
            )
        duration_s = float(match["duration"]) * _UNIT_S[match["unit"] or "s"]
        stages.append(Stage(duration_s=duration_s, target=float(match["target"])))
    check_stages(stages, option=option)
    return tuple(stages)


def check_stages(stages: Sequence[Stage], *, option: str = "stages") -> None:
    """Refuse stages that cannot run: none, a step of no duration, a negative target."""
    if not stages:
        raise ValueError(f"{option}: no stages given")
    for index, stage in enumerate(stages):
        if stage.duration_s <= 0:
            raise ValueError(f"{option}: {stage.label(index)} lasts {stage.duration_s:g} s")
        if stage.target < 0:
            raise ValueError(f"{option}: {stage.label(index)} has a negative target")
    names = [s.name for s in stages if s.name is not None]
    if len(names) != len(set(names)):
        raise ValueError(f"{option}: stage names must be unique")


def total_duration_s(stages: Sequence[Stage]) -> float:
    """How long the stages run, end to end."""
    return sum(stage.duration_s for stage in stages)


def stage_at(stages: Sequence[Stage], t_s: float) -> int | None:
    """The index of the stage running ``t_s`` seconds into the run (None once all ended)."""
    elapsed = 0.0
    for index, stage in enumerate(stages):
        elapsed += stage.duration_s
        if t_s < elapsed:
            return index
    return None


def target_at(stages: Sequence[Stage], t_s: float, *, start: float = 0.0) -> float | None:
    """The target ``t_s`` seconds into the run, ramped linearly from the previous stage's target
    (``start`` before the first); None once every stage has ended."""
    previous = start
    begun = 0.0
    for stage in stages:
        if t_s < begun + stage.duration_s:
            fraction = max(0.0, t_s - begun) / stage.duration_s
            return previous + (stage.target - previous) * fraction
        previous = stage.target
        begun += stage.duration_s
    return None


def users_for(target: float) -> int:
    """A closed-model stage's target as a number of users (half up: 2.5 users is 3)."""
    return math.floor(target + 0.5)


def stages_to_json(stages: Sequence[Stage]) -> str:
    """Stages as the plugin's ``--loadkit-stages`` takes them: a JSON list of
    ``{"duration_s", "target", "name"}``."""
    entries = [{"duration_s": s.duration_s, "target": s.target, "name": s.name} for s in stages]
    return json.dumps(entries, separators=(",", ":"))


def stages_from_json(text: str, *, option: str = "--loadkit-stages") -> tuple[Stage, ...]:
    """``stages_to_json``'s text as stages again; a ValueError naming what is wrong."""
    try:
        data = json.loads(text)
        if not isinstance(data, list):
            raise TypeError("not a list")
        stages = tuple(
            Stage(
                duration_s=float(item["duration_s"]),
                target=float(item["target"]),
                name=item.get("name"),
            )
            for item in data
        )
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise ValueError(
            f'{option} {text!r}: not a JSON list of {{"duration_s", "target", "name"}} ({exc})'
        ) from None
    check_stages(stages, option=option)
    return stages

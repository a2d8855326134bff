"""Closed-model stages: Locust's users ramped by ``--loadkit-stages``, as a ``LoadTestShape``.

``loadkit load --stages 30s:50,60s:200,30s:0`` without a rate ramps users: for 30 s from 0 to
50, for 60 s to 200, for 30 s down to 0. Locust already knows how to drive users over time (a
``LoadTestShape`` set as ``environment.shape_class``; its runner calls ``tick()`` once a second
and ramps to the users it returns at the spawn rate it returns), so at Locust's ``init`` the
plugin sets one built from the stages. Locust reads ``environment.shape_class`` only when the
headless run starts (``main.start_automatic_run``) or the web UI's start button is pressed, after
``init``; the runner it would have attached had the shape existed before (``env._create_runner``)
is attached here.

Locust calls ``tick()`` about once a second, so the ramp is followed a second at a time: each
tick asks for the stages' target (``stages.target_at``) at the middle of the second it starts, in
whole users, so that each second runs the ramp's mean users for that second (a flat stage runs its
target exactly; the apex of a ramp that turns straight back is reached only to within a second's
change). The spawn rate is that second's change, at least 1 a second, so that Locust makes it at
once (it starts ``floor(rate)`` users a step) rather than spreading it into the next second.
``tick()`` returns None once the stages have run (the end of a web UI test); a headless run is
stopped by the plugin's timer at the stages' total, which ``loadkit load`` passes as its duration.

The shape class is made inside a function, never at a module's top level: Locust collects every
``LoadTestShape`` subclass it finds in the files given with ``-f``, the plugin's among them, and
would then drive every run with it.

A locustfile that has a ``LoadTestShape`` of its own cannot also be driven by stages (both would
decide the users): that is refused at ``init`` with a ``loadkit: error: …`` line and exit 2, which
the launcher reports as a usage error (``passthrough.locust_usage_error`` finds the line as it
finds argparse's).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from locust import LoadTestShape
from locust.runners import WorkerRunner

from loadkit.engines.locust.usage_error import refuse
from loadkit.stages import Stage, stages_from_json, target_at, total_duration_s, users_for

logger = logging.getLogger("loadkit")

"""What Locust's argparse exits with on a bad command line; the launcher reads it so too."""
TICK_S = 1.0
"""How often Locust's runner calls a shape's ``tick()`` (``Runner.shape_worker``)."""
MIN_SPAWN_RATE = 1.0
"""The spawn rate when the users do not change (Locust refuses 0)."""
MARKER = "loadkit_stages"
"""The attribute that tells loadkit's own stages shape from a locustfile's."""


def apply_stages(environment: Any) -> None:
    """At Locust's ``init``: with ``--loadkit-stages`` and no ``--loadkit-rate`` (closed model),
    drive the users by the stages; exit 2 when the locustfile has a ``LoadTestShape`` of its own.

    Nothing to do without stages, on a worker (its master drives the users), or in an open run
    (the plugin's timetable ramps the rate instead).
    """
    options = environment.parsed_options
    text = getattr(options, "loadkit_stages", None) if options is not None else None
    if not text:
        return
    own = environment.shape_class
    if own is not None and not hasattr(own, MARKER):
        refuse(
            f"stages cannot drive a locustfile that has a LoadTestShape of its own "
            f"({type(own).__name__}): the shape decides the users and the run's length; "
            "drop the stages, or run the shape alone"
        )
    if is_open(options):
        return
    if isinstance(environment.runner, WorkerRunner):
        return
    shape = stages_shape(decode_stages(text))
    shape.runner = environment.runner
    environment.shape_class = shape


def decode_stages(text: str) -> tuple[Stage, ...]:
    """``--loadkit-stages``' JSON list as stages (exit 2 when it is not one)."""
    try:
        return stages_from_json(text)
    except ValueError as exc:
        refuse(str(exc))


def users_at(stages: Sequence[Stage], t_s: float) -> int | None:
    """The users to run for the second that starts ``t_s`` into the stages: their target at the
    middle of that second (of what is left of it, at the end), in whole users; None once they
    have all run."""
    total = total_duration_s(stages)
    if t_s >= total:
        return None
    target = target_at(stages, (t_s + min(t_s + TICK_S, total)) / 2)
    return None if target is None else users_for(target)


def stages_shape(stages: Sequence[Stage]) -> LoadTestShape:
    """A ``LoadTestShape`` instance that ramps users through ``stages``, then ends the test."""
    planned = tuple(stages)

    class LoadkitStages(LoadTestShape):
        """Users by loadkit's stages (made here: see the module's docstring)."""

        loadkit_stages = planned

        def tick(self) -> tuple[int, float] | None:
            """This second's users, and a spawn rate that makes the change at once; None once
            the stages have run."""
            t_s = float(self.get_run_time())  # type: ignore[no-untyped-call]  # unannotated
            users = users_at(planned, t_s)
            if users is None:
                return None
            now = self.runner.target_user_count if self.runner is not None else None
            return users, max(float(abs(users - (now or 0))), MIN_SPAWN_RATE)

    return LoadkitStages()  # type: ignore[no-untyped-call]  # Locust is unannotated


def stages_of(environment: Any) -> tuple[Stage, ...]:
    """The stages driving this run's users (empty unless loadkit's stages shape is set)."""
    stages = getattr(environment.shape_class, MARKER, ())
    return tuple(stages)


def measured_stages(environment: Any, runner: Any) -> tuple[Stage, ...]:
    """The closed-model stages the requests of this process (its ``runner``) are counted by:
    those of loadkit's stages shape (a local process, a master); on a worker, which runs no shape
    (its master sends it users), the master's ``--loadkit-stages``, which Locust copies into the
    worker's options with every spawn, before the test starts there. Empty in a run without
    them, and in an open run (its timetable's stages are the open run's)."""
    stages = stages_of(environment)
    if stages or not isinstance(runner, WorkerRunner):
        return stages
    options = getattr(environment, "parsed_options", None)
    text = getattr(options, "loadkit_stages", None) if options is not None else None
    if not text or is_open(options):
        return ()
    return decode_stages(text)


def is_open(options: Any) -> bool:
    """Whether Locust's options ask for an open-model run (its stages are rates then): a rate,
    or ``--loadkit-model open`` (as ``loadkit_plugin.open_run_options`` decides)."""
    model = getattr(options, "loadkit_model", None)
    return model == "open" or (
        model != "closed" and getattr(options, "loadkit_rate", None) is not None
    )

"""Event hooks and custom messages: ``init``, ``test_start``, ``test_stop``, ``quitting``,
``runner.register_message`` / ``send_message`` (run locally: Locust delivers to itself).

``init`` registers two message types. ``test_start`` spends a moment (as hooks that load test
data do), then sends the users' plan of paths as a ``plan`` message; its handler keeps the plan
and answers ``plan_received`` (worker to master, in a distributed run). The users request the
plan's paths, so a plan that never arrived shows as other endpoint names. Every hook writes a
line to ``$COMPAT_OUT/hooks.log``, for the test to see that each ran once, in order.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from locust import HttpUser, events, task
from locust.env import Environment
from locust.rpc.protocol import Message

ITERATIONS = 2
PAUSE_S = 0.01
IDLE_S = 3600.0
HOOK_S = 0.3
"""Time the test_start hook spends (loading test data, say)."""
PLAN = ["/reports/daily", "/reports/weekly"]

plan: list[str] = []


def log(line: str) -> None:
    """One line in the hooks log (the test reads it)."""
    with (Path(os.environ["COMPAT_OUT"]) / "hooks.log").open("a") as hooks_log:
        hooks_log.write(f"{line}\n")


def on_plan(environment: Environment, msg: Message, **_kwargs: Any) -> None:
    """The plan arrived: keep it, say so."""
    plan.extend(msg.data)
    log(f"plan {len(msg.data)} paths")
    assert environment.runner is not None
    environment.runner.send_message("plan_received", len(msg.data))


def on_plan_received(msg: Message, **_kwargs: Any) -> None:
    """The plan's receipt."""
    log(f"plan_received {msg.data}")


@events.init.add_listener  # type: ignore[untyped-decorator]  # Locust's is unannotated
def on_init(environment: Environment, **_kwargs: Any) -> None:
    """Register the messages."""
    log("init")
    assert environment.runner is not None
    environment.runner.register_message("plan", on_plan)
    environment.runner.register_message("plan_received", on_plan_received)


@events.test_start.add_listener  # type: ignore[untyped-decorator]  # Locust's is unannotated
def on_test_start(environment: Environment, **_kwargs: Any) -> None:
    """Prepare, then hand out the plan."""
    time.sleep(HOOK_S)
    log("test_start")
    assert environment.runner is not None
    environment.runner.send_message("plan", PLAN)


@events.test_stop.add_listener  # type: ignore[untyped-decorator]  # Locust's is unannotated
def on_test_stop(**_kwargs: Any) -> None:
    """The users have stopped."""
    log("test_stop")


@events.quitting.add_listener  # type: ignore[untyped-decorator]  # Locust's is unannotated
def on_quitting(**_kwargs: Any) -> None:
    """Locust is quitting."""
    log("quitting")


class Reporter(HttpUser):
    """Requests the plan's paths (``/no-plan`` if none came), ``ITERATIONS`` times."""

    rounds_left = ITERATIONS

    def wait_time(self) -> float:
        """A short pause between rounds; idle once they are done."""
        return PAUSE_S if self.rounds_left > 0 else IDLE_S

    @task
    def reports(self) -> None:
        """Every path of the plan."""
        self.rounds_left -= 1
        for path in plan or ["/no-plan"]:
            self.client.get(path)

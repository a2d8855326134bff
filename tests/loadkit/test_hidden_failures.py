"""Every failed request is recorded, whatever the locustfile's own request listeners do.

Locust dispatches an event to its listeners in registration order and re-raises RescheduleTask
(StopUser, InterruptTaskSet, ...) from one, skipping those after it. A locustfile's listener,
registered first, must not hide failures from loadkit (plugin/first_look.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from loadkit.engines.locust.launch import PLUGIN_PATH
from loadkit.engines.locust.plugin.first_look import look_first
from loadkit.measure.results import LoadResults, read_results
from tests.compat.answering_server import answering_server

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"
HIDING_LOCUSTFILE = SCENARIOS / "failure_hiding_locustfile.py"


class Reschedule(Exception):
    """Stands for Locust's control-flow exceptions, re-raised by its event dispatch."""


class Hook:
    """Locust's EventHook.fire in miniature: listeners in order, a control-flow exception
    re-raised (skipping the later ones), any other logged and swallowed."""

    def __init__(self) -> None:
        self.handlers: list[Any] = []

    def fire(self, *, reverse: bool = False, **kwargs: Any) -> None:
        for handler in self.handlers[::-1] if reverse else list(self.handlers):
            try:
                handler(**kwargs)
            except Reschedule:
                raise
            except Exception:
                pass


def test_loadkit_looks_before_a_listener_that_reschedules_and_lets_it_raise() -> None:
    hook = Hook()
    later: list[int] = []

    def reschedule(n: int) -> None:
        raise Reschedule

    hook.handlers += [reschedule, lambda n: later.append(n)]
    seen: list[int] = []
    look_first(hook, lambda n: seen.append(n))
    with pytest.raises(Reschedule):  # the locustfile's control flow is untouched
        hook.fire(n=1)
    assert seen == [1] and later == []


def test_a_broken_look_never_breaks_the_request_path() -> None:
    hook = Hook()
    after: list[int] = []
    hook.handlers.append(lambda n: after.append(n))

    def broken(n: int) -> None:
        raise RuntimeError("a bug in the recording")

    look_first(hook, broken)
    look_first(hook, broken)  # a second plugin instance replaces the look, never doubles it
    hook.fire(n=7)
    assert after == [7]


@pytest.mark.slow
def test_failures_a_listener_reschedules_are_all_recorded(tmp_path: Path) -> None:
    out = tmp_path / "load.json"
    json_prefix = tmp_path / "locust"
    with answering_server() as url:
        # Locust itself with the plugin, as loadkit_plugin.py's docstring shows: Locust's count
        # and loadkit's come from the very same run.
        command = [
            sys.executable, "-m", "locust",
            "-f", f"{HIDING_LOCUSTFILE},{PLUGIN_PATH}",
            "--headless", "-u", "4", "-r", "4", "-t", "2s", "--host", url,
            "--loadkit-out", str(out), "--json-file", str(json_prefix), "--only-summary",
        ]  # fmt: skip
        done = subprocess.run(
            command,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert out.exists(), done.stderr[-3000:]
    stats = json.loads(json_prefix.with_suffix(".json").read_text())
    locust_requests = sum(int(entry["num_requests"]) for entry in stats)
    locust_failures = sum(int(entry["num_failures"]) for entry in stats)
    results = read_results(out)
    assert isinstance(results, LoadResults)
    assert locust_failures > 0
    assert (results.totals.requests, results.totals.errors) == (locust_requests, locust_failures)
    assert {g.endpoint for g in results.errors} == {"GET /fail"}

"""The plugin's settings for one Locust process, read once from Locust's parsed options."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True, kw_only=True)
class PluginOptions:
    """What the ``--loadkit-*`` options (and a few of Locust's own) ask of the plugin."""

    headless: bool
    out: Path
    """Headless runs: the results file."""
    ui_dir: Path
    """Web UI runs: one results file per test in this folder."""
    status_path: Path | None
    duration_s: float | None
    """Headless runs: stop the test this long after it started (monotonic clock)."""
    run_id: str | None
    parent_pid: int | None
    scenario: str | None
    url_path: str | None
    """The url scenario's path on the target, carried into the results' config."""
    num_users: int | None
    spawn_rate: float | None
    locust_version: str
    keep_exit_code: bool = False
    """Leave Locust's exit code as Locust gives it, also for an invalid run (``loadkit load``
    judges validity from the results and records Locust's code there); else an invalid run's
    Locust exits 4, so that plain-Locust CI does not take it for a pass."""
    launch: dict[str, Any] = field(default_factory=dict)
    """What loadkit passed to Locust (``locust_args``, ``locust_config``), for the results."""

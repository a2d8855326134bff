"""The plugin's settings for one Locust process, read once from Locust's parsed options."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from loadkit.config import Criterion, TargetProfile
from loadkit.engines.http_request import TlsOptions
from loadkit.stages import Stage


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
    open_run: OpenRun | None = None
    """An open-model run's timetable settings; None: the closed model (Locust's own loop)."""
    tls: TlsOptions = field(default_factory=TlsOptions)
    """How the HTTP users check https certificates (``plugin/tls.py``): verified by default."""
    http2: bool = False
    """``--loadkit-http2``: the HTTP users speak HTTP/2 (``plugin/http2.py``)."""
    abort: tuple[Criterion, ...] = ()
    """Abort-on-fail criteria (``--loadkit-abort``): a local headless test stops when one
    fails on the live figures (``LoadTest._watch_abort``)."""
    target: TargetProfile = field(default_factory=TargetProfile)
    """How the API reports error kinds and trace ids, and the trace header to send
    (``--loadkit-target``; the bundled service's by default)."""


@dataclass(frozen=True, kw_only=True)
class OpenRun:
    """An open-model run: iterations start on a timetable, not when a user is done.

    The model is open when ``--loadkit-model open`` or ``--loadkit-rate`` is given. The rate is
    ``rate`` iterations/s over all workers, or ramps through ``stages`` (their targets are rates
    then, and win over ``rate``). This process runs the share ``worker_index`` of
    ``worker_count`` (a master tells each worker its share at the test's start).
    """

    rate: float | None
    stages: tuple[Stage, ...] = ()
    max_in_flight: int
    """Iterations allowed to run at once over all workers (Locust's users: one each)."""
    max_in_flight_given: bool = True
    """Whether ``--loadkit-max-in-flight`` set it (else the default, from the peak rate)."""
    worker_index: int = 0
    worker_count: int = 1
    start_at: float | None = None
    """Distributed: when every worker's timetable starts (run clock, the master's)."""

    def for_worker(self, index: int, count: int, *, start_at: float) -> OpenRun:
        """This run as worker ``index`` of ``count`` runs it, its timetable from ``start_at``."""
        return replace(self, worker_index=index, worker_count=count, start_at=start_at)

    def to_wire(self) -> dict[str, Any]:
        """Plain data for Locust's messages (master → worker)."""
        return {
            "rate": self.rate,
            "stages": [
                {"duration_s": s.duration_s, "target": s.target, "name": s.name}
                for s in self.stages
            ],
            "max_in_flight": self.max_in_flight,
            "max_in_flight_given": self.max_in_flight_given,
            "worker_index": self.worker_index,
            "worker_count": self.worker_count,
            "start_at": self.start_at,
        }

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> OpenRun:
        """The run a master sent (``to_wire``); KeyError/TypeError/ValueError when malformed."""
        return cls(
            rate=float(data["rate"]) if data["rate"] is not None else None,
            stages=tuple(
                Stage(
                    duration_s=float(s["duration_s"]), target=float(s["target"]), name=s.get("name")
                )
                for s in data["stages"]
            ),
            max_in_flight=int(data["max_in_flight"]),
            max_in_flight_given=bool(data["max_in_flight_given"]),
            worker_index=int(data["worker_index"]),
            worker_count=int(data["worker_count"]),
            start_at=float(data["start_at"]) if data.get("start_at") is not None else None,
        )

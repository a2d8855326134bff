"""What a worker ships to its master beside Locust's own report, typed.

It rides inside Locust's messages (msgpack), so it crosses as plain data: ``to_wire`` on the
worker, ``from_wire`` on the master. Periodic reports go in Locust's report dict under
``SHARE_KEY``; the last one goes in a ``FINAL_MESSAGE`` of its own, sent before Locust's
``client_stopped`` on the same ordered channel; it says whether the worker's locustfile
stopped the test (``stop``).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from loadkit.exceptions import InputError
from loadkit.measure.user_exceptions import ExceptionGroupShare
from loadkit.measure.worker_share import WorkerShare

SHARE_KEY = "loadkit"
"""Our key in Locust's worker report (``stats`` and ``errors`` are Locust's own)."""
FINAL_MESSAGE = "loadkit_final"
"""The custom message that carries a worker's last share when its users have stopped."""
SLOT_MESSAGE = "loadkit_open_share"
"""Master → worker at an open run's start: the run and this worker's share of its rate."""
CLOCK_MESSAGE = "loadkit_clock"
"""Master → worker at every test's start, before the spawn: ``{"now": master's run clock}``.
The worker takes that clock (``RunClock.align_to``), so its share lines up with the master's
whatever its own wall clock says."""


class WorkerStop(BaseModel):
    """The worker's locustfile stopped the test (``runner.quit()``/``stop()``, ``StopTest``):
    its master ends the run there, as one process would end."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    at: float = Field(description="when its users were told to stop (run clock)")
    exit_code: int | None = Field(
        default=None, description="the worker's environment.process_exit_code at that time"
    )
    in_test_start: str | None = Field(
        default=None,
        description="the StopTest's message when a test_start hook raised it (no user started)",
    )


class WorkerReport(BaseModel):
    """A worker's share of the measurement since its last report, and its live figures."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    share: WorkerShare | None = Field(
        default=None, description="None: the worker never started a test (it still answers)"
    )
    requests: int = Field(default=0, ge=0, description="requests of the whole test so far")
    errors: int = Field(default=0, ge=0)
    p95_ms: float | None = Field(default=None, description="its last closed second's P95")
    service_p95_ms: float | None = Field(
        default=None,
        description="open model: its last closed second's service-time P95 (None: closed run)",
    )
    cpu_warnings: int = Field(default=0, ge=0)
    max_cpu: float | None = None
    exceptions: list[ExceptionGroupShare] = Field(
        default_factory=list, description="exceptions raised by user code since the last report"
    )
    stop: WorkerStop | None = Field(
        default=None, description="final report only: the worker's locustfile stopped the test"
    )

    def to_wire(self) -> dict[str, Any]:
        """Plain data for Locust's messages."""
        data = self.model_dump(exclude={"share"})
        data["share"] = self.share.to_wire() if self.share is not None else None
        return data

    @classmethod
    def from_wire(cls, data: object) -> WorkerReport:
        """Validate a report from a worker; a share of another loadkit version is refused."""
        if not isinstance(data, dict):
            raise InputError(f"a worker sent a loadkit report that is not a mapping: {data!r}")
        share = data.get("share")
        try:
            return cls.model_validate(
                {**data, "share": WorkerShare.from_wire(share) if share is not None else None}
            )
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or '(top level)'}: {err['msg']}"
                for err in exc.errors()[:3]
            )
            raise InputError(f"a worker sent an invalid loadkit report: {problems}") from None

"""Per-stage figures of a run with load stages: one ``Tally`` per stage, exact and mergeable.

A request belongs to the stage in which its response time began: its due time in an open-model
run (the load that stage offered), its send time in a closed one (``end - latency_s`` either
way); an iteration never sent, to the stage it was due in. Times before the first stage count in
the first, times after the last (the drain, users finishing their task) in the last, so every
request is in exactly one stage and the stages add up to the run. Stage times are counted from
``start``: the recorder's start unless the caller moves it to when the load began
(``LatencyRecorder.start_stages_at``: an open run's timetable start), so that every process of a
distributed run counts them from the same moment.

Pure: times in seconds on the run clock (``RunClock``).
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Sequence

from loadkit.exceptions import InputError
from loadkit.measure.results import StageResults
from loadkit.measure.tally import Tally
from loadkit.measure.worker_share import StageShare
from loadkit.stages import Stage


class StageFigures:
    """The tallies of a run's stages, by 0-based index."""

    __slots__ = ("_ends", "stages", "start", "tallies")

    def __init__(self, stages: Sequence[Stage], *, start: float) -> None:
        """``stages`` of a run that began at ``start`` on the run clock (at least one)."""
        self.stages = tuple(stages)
        self.start = start
        self._ends = list(itertools.accumulate(stage.duration_s for stage in self.stages))
        self.tallies: dict[int, Tally] = {}

    def tally_at(self, began: float) -> Tally:
        """The tally of the stage running at ``began`` (run clock), clamped to the stages."""
        index = min(bisect.bisect_right(self._ends, began - self.start), len(self._ends) - 1)
        tally = self.tallies.get(index)
        if tally is None:
            tally = self.tallies[index] = Tally()
        return tally

    def to_shares(self) -> list[StageShare]:
        """Every stage's tally so far, as plain data."""
        return [tally.to_stage_share(index) for index, tally in sorted(self.tallies.items())]

    def clear(self) -> None:
        """Forget what was shipped."""
        self.tallies = {}

    def merge(self, shares: Sequence[StageShare]) -> None:
        """Add another process's stage tallies (exact); refuses a stage this run does not have."""
        for share in shares:
            if share.index >= len(self.stages):
                raise InputError(
                    f"a share holds stage {share.index + 1} but this run has "
                    f"{len(self.stages)} stage(s): run the master and every worker with the "
                    "same --stages"
                )
            tally = self.tallies.get(share.index)
            if tally is None:
                tally = self.tallies[share.index] = Tally()
            tally.add_share(share)

    def results(self) -> list[StageResults]:
        """One summary per stage, in order (stages nothing began in included, with zeros)."""
        rows = []
        begins = [0.0, *self._ends[:-1]]
        for index, stage in enumerate(self.stages):
            tally = self.tallies.get(index) or Tally()
            start_s, end_s = begins[index], self._ends[index]
            response = tally.response()
            requests = tally.requests
            rows.append(
                StageResults(
                    index=index + 1,
                    name=stage.name,
                    start_s=round(start_s, 6),
                    end_s=round(end_s, 6),
                    target=stage.target,
                    requests=requests,
                    ok=tally.ok,
                    errors=tally.errors,
                    error_rate=tally.errors / requests if requests else 0.0,
                    not_sent=tally.not_sent,
                    rps=requests / (round(end_s, 6) - round(start_s, 6)),
                    latency_ms=response.summary(),
                    histogram=response.encode(),
                    service_time_ms=tally.service_summary(),
                    service_histogram=tally.service_encoded(),
                )
            )
        return rows

"""Errors grouped by (endpoint, kind): counts, status codes, examples and a few trace ids.

Pure: times are seconds on the run clock (``RunClock``). Groups of several processes merge
exactly (counts and status codes add; first/last widen; examples and trace ids are kept up to
a bound, the earliest merged first).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from loadkit.measure.results import ErrorGroup

TRACE_ID_SAMPLE = 20
"""Trace ids kept per (endpoint, kind) group: enough to follow a few into the service's logs."""


@dataclass
class ErrorGroupState:
    """One group as it accumulates (absolute times on the run clock)."""

    count: int = 0
    status_codes: Counter[str] = field(default_factory=Counter)
    example_trace_id: str | None = None
    example_message: str | None = None
    first: float = float("inf")
    last: float = float("-inf")
    trace_ids: list[str] = field(default_factory=list)

    def add(
        self,
        *,
        count: int,
        statuses: dict[str, int],
        trace_id: str | None,
        message: str | None,
        first: float,
        last: float,
        trace_ids: Iterable[str] = (),
    ) -> None:
        """Add ``count`` errors (one request's, or a whole group from another process)."""
        self.count += count
        self.status_codes.update(statuses)
        if self.example_trace_id is None and trace_id:
            self.example_trace_id = trace_id
        for candidate in (trace_id, *trace_ids):
            if len(self.trace_ids) >= TRACE_ID_SAMPLE:
                break
            if candidate and candidate not in self.trace_ids:
                self.trace_ids.append(candidate)
        if self.example_message is None and message:
            self.example_message = message
        self.first = min(self.first, first)
        self.last = max(self.last, last)


class ErrorGroups:
    """The error groups of a run (or of one process's share of it), by (endpoint, kind)."""

    __slots__ = ("_groups",)

    def __init__(self) -> None:
        """No errors yet."""
        self._groups: dict[tuple[str, str], ErrorGroupState] = {}

    def group(self, endpoint: str, kind: str) -> ErrorGroupState:
        """The group of (``endpoint``, ``kind``), created empty on first use."""
        key = (endpoint, kind)
        state = self._groups.get(key)
        if state is None:
            state = self._groups[key] = ErrorGroupState()
        return state

    def add_error(
        self,
        *,
        endpoint: str,
        kind: str,
        status: int | None,
        trace_id: str | None,
        message: str | None,
        end: float,
    ) -> None:
        """One failed request, completed at ``end``; ``status`` None when no response came."""
        self.group(endpoint, kind).add(
            count=1,
            statuses={str(status) if status is not None else "none": 1},
            trace_id=trace_id,
            message=message,
            first=end,
            last=end,
        )

    def items(self) -> list[tuple[tuple[str, str], ErrorGroupState]]:
        """The groups by (endpoint, kind), in order of first appearance."""
        return list(self._groups.items())

    def results(self, *, run_start: float) -> list[ErrorGroup]:
        """The groups as results (times in seconds since ``run_start``), most frequent first."""
        groups = [
            ErrorGroup(
                endpoint=endpoint,
                kind=kind,
                count=state.count,
                status_codes=dict(sorted(state.status_codes.items())),
                example_trace_id=state.example_trace_id,
                example_message=state.example_message,
                trace_ids=list(state.trace_ids),
                first_s=round(max(state.first - run_start, 0.0), 6),
                last_s=round(max(state.last - run_start, 0.0), 6),
            )
            for (endpoint, kind), state in self._groups.items()
        ]
        groups.sort(key=lambda g: (-g.count, g.endpoint, g.kind))
        return groups

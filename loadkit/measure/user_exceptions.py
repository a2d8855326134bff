"""Exceptions raised by user code (a locustfile's tasks), counted by type and where.

A task that raises sends no request: without this, a locustfile whose every task is broken
would look like a quiet, clean run. Each (exception type, where) group keeps its count, when
it was first seen and the first traceback; a worker ships what it counted since its last
report (``ExceptionTally.drain``), the master adds the groups up (``ExceptionTally.merge``).

Pure: the plugin names the type and the place (``where``: the innermost frame of user code,
``csrf_form.py:14 in login``) and formats the traceback; times are on the run clock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from pydantic import BaseModel, ConfigDict, Field

MAX_TRACEBACK_CHARS = 16_000
"""A traceback kept longer than this is cut at its start: its end (the innermost frames and
the exception's message) is the part that says what happened."""


class UserException(BaseModel):
    """One group of the results' ``exceptions``: an exception type raised at one place."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)

    type: str = Field(description="the exception's class (``AttributeError``, ``mod.MyError``)")
    where: str = Field(description="innermost frame of user code: ``file.py:LINE in function``")
    count: int = Field(ge=1)
    traceback: str = Field(default="", description="the first one's traceback, as Python shows it")
    first_s: float | None = Field(
        default=None, ge=0, description="seconds from the run's start to the first one"
    )


class ExceptionGroupShare(BaseModel):
    """A group as a worker ships it: ``first`` on the run clock (absolute); ``traceback`` only
    the first time this worker ships the group (None after)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)

    type: str
    where: str
    count: int = Field(ge=1)
    first: float
    traceback: str | None = None


class _Group:
    __slots__ = ("count", "first", "traceback")

    def __init__(self, *, count: int, first: float, traceback: str | None) -> None:
        self.count = count
        self.first = first
        self.traceback = traceback


Key = tuple[str, str]


class ExceptionTally:
    """The exceptions of one test in one process (or merged from its workers)."""

    def __init__(self) -> None:
        """Nothing counted yet."""
        self._groups: dict[Key, _Group] = {}
        self._undrained: dict[Key, int] = {}
        """Counts since the last ``drain``, by group."""
        self._shipped: set[Key] = set()
        """Groups whose traceback already went out in a drain."""

    def add(self, *, type_name: str, where: str, at: float, traceback: Callable[[], str]) -> None:
        """One exception; ``traceback`` is called only for the first of its group."""
        key = (type_name, where)
        group = self._groups.get(key)
        if group is None:
            self._groups[key] = _Group(count=1, first=at, traceback=_trim(traceback()))
        else:
            group.count += 1
        self._undrained[key] = self._undrained.get(key, 0) + 1

    @property
    def total(self) -> int:
        """Exceptions counted, in every group."""
        return sum(group.count for group in self._groups.values())

    def drain(self) -> list[ExceptionGroupShare]:
        """What was counted since the last drain, to ship (tracebacks go once per group)."""
        shares = []
        for key, count in self._undrained.items():
            group = self._groups[key]
            traceback = None if key in self._shipped else group.traceback
            self._shipped.add(key)
            shares.append(
                ExceptionGroupShare(
                    type=key[0], where=key[1], count=count, first=group.first, traceback=traceback
                )
            )
        self._undrained.clear()
        return shares

    def merge(self, shares: Iterable[ExceptionGroupShare]) -> None:
        """Add a worker's drained groups: counts add up, the earliest first (and its traceback,
        else the first traceback that arrived) is kept."""
        for share in shares:
            key = (share.type, share.where)
            group = self._groups.get(key)
            if group is None:
                self._groups[key] = _Group(
                    count=share.count, first=share.first, traceback=share.traceback
                )
                continue
            group.count += share.count
            if share.traceback is not None and (
                group.traceback is None or share.first < group.first
            ):
                group.traceback = share.traceback
            group.first = min(group.first, share.first)

    def results(self, *, start: float) -> list[UserException]:
        """The groups as the results file holds them, most frequent first (``start``: the run's
        start on the run clock)."""
        ordered = sorted(self._groups.items(), key=lambda item: (-item[1].count, item[0]))
        return [
            UserException(
                type=type_name,
                where=where,
                count=group.count,
                traceback=group.traceback or "",
                first_s=round(max(group.first - start, 0.0), 6),
            )
            for (type_name, where), group in ordered
        ]


def _trim(traceback: str) -> str:
    if len(traceback) <= MAX_TRACEBACK_CHARS:
        return traceback
    return "…" + traceback[-(MAX_TRACEBACK_CHARS - 1) :]


def top_exception(exceptions: Iterable[UserException]) -> UserException | None:
    """The most frequent group (the first of equals in the order given), or None."""
    top: UserException | None = None
    for group in exceptions:
        if top is None or group.count > top.count:
            top = group
    return top


def describe_exceptions(exceptions: Iterable[UserException]) -> str:
    """``3,912 exception(s) in user code, the most frequent: AttributeError at x.py:14 in f``."""
    groups = list(exceptions)
    total = sum(group.count for group in groups)
    top = top_exception(groups)
    if top is None:
        return "no exception in user code"
    return (
        f"{total:,} exception(s) in user code, the most frequent: {top.type} at {top.where} "
        f"({top.count:,})"
    )

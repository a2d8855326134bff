"""From spans to requests: each SERVER span with its descendants, and where its time went.

**Self time, the rule.** A request's time (its SERVER span, start to end) is cut at every start
and end of its descendants, and each piece goes to exactly one category: that of the innermost
(deepest in the span tree) *categorised* span covering it, or "the rest" when none does. So the
categories of one request always sum to its duration, exactly, in integer nanoseconds, and nothing
is counted twice: a database statement run while the storage lock is held counts as database,
not also as lock hold, because the statement is what the request was doing at that instant; the
hold's own share is what it did under the lock besides. Spans with no category of their own
(middleware, the handler, a fault's sleep) claim nothing: their instants go to the category of
their nearest categorised ancestor (a ``fault.lock_hold`` inside ``storage.lock_hold`` is lock
hold), or to the rest. Two exceptions give a fault the category of what it simulates:
``fault.slow_query`` holds a database connection (database) and ``fault.lock_hold`` holds the
storage lock (lock hold), wherever the service puts their spans. Overlapping spans at one depth
(concurrent siblings) go to the one that started last, the innermost in time. A descendant's
time outside its request (a worker thread still hashing after the request gave up) is clipped:
the request did not wait for it.

**Which spans belong to a request.** The descendants of its SERVER span through ``parentSpanId``,
stopping at a nested SERVER span (a call back into a traced service is a request of its own; its
time counts as the rest in its caller). A span whose parent is not in its trace (a parent that was
never exported) is taken as a child of the request whose time it falls in.

**Memory.** Spans are grouped by trace id only until their trace is complete: a trace whose SERVER
span has arrived is closed ``SETTLE_SPANS`` spans later (children end, and so are exported, before
their parent; the margin covers export batches written out of order). Traces with no SERVER span
yet are held up to ``MAX_OPEN_TRACES``; past that the oldest is dropped and counted. A request
kept afterwards costs one small record (``RequestTimes``), whatever its span count.
"""

from __future__ import annotations

import heapq
import sys
from collections import OrderedDict, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import IntEnum

from loadkit.traces.read import Span

SETTLE_SPANS = 20_000
"""Spans read after a trace's SERVER span before the trace is closed (late children included)."""
MAX_OPEN_TRACES = 200_000
"""Traces without a SERVER span held at once; past that the oldest is dropped (and counted)."""
FAILED_STATUS = 500


class Category(IntEnum):
    """Where an instant of a request went; the value indexes ``RequestTimes.self_ns``."""

    LOCK_WAIT = 0
    LOCK_HOLD = 1
    DATABASE = 2
    PASSWORD = 3
    TOKEN = 4
    REST = 5


CATEGORIES: tuple[Category, ...] = tuple(Category)

_BY_NAME: dict[str, Category] = {
    "storage.lock_wait": Category.LOCK_WAIT,
    "storage.lock_hold": Category.LOCK_HOLD,
    "fault.lock_hold": Category.LOCK_HOLD,
    "fault.slow_query": Category.DATABASE,
    "password.hash": Category.PASSWORD,
    "password.verify": Category.PASSWORD,
    "token.sign": Category.TOKEN,
    "token.verify": Category.TOKEN,
}


def category_of(span: Span) -> Category | None:
    """The category a span claims for its instants; None when it claims none (it inherits)."""
    named = _BY_NAME.get(span.name)
    if named is not None:
        return named
    if span.database:
        return Category.DATABASE
    return None


@dataclass(frozen=True, slots=True)
class PathStep:
    """One span on a request's critical path."""

    name: str
    duration_ns: int
    category: Category | None


@dataclass(frozen=True, slots=True)
class RequestTimes:
    """One request (a SERVER span) and where its time went."""

    trace_id: str
    endpoint: str
    """``METHOD route`` (the span's name when it has no route)."""
    start_ns: int
    duration_ns: int
    failed: bool
    """Status ≥ 500, or an ``engines.error_kind``."""
    self_ns: tuple[int, ...]
    """Nanoseconds per ``Category`` (indexed by its value); they sum to ``duration_ns``."""
    critical_path: tuple[PathStep, ...] = ()
    """From the SERVER span down, the longest child at each level (kept for the slowest only)."""


def endpoint_of(server: Span) -> str:
    """``METHOD route`` of a SERVER span, as loadkit's results name endpoints."""
    if server.route:
        name = f"{server.method} {server.route}" if server.method else server.route
    else:
        name = server.name or "(unnamed)"
    # Interned: a run has a handful of endpoints and many requests that keep the name.
    return sys.intern(name)


def request_times(server: Span, spans: Sequence[Span], *, with_path: bool = True) -> RequestTimes:
    """Where the time of ``server`` went, given every span of its trace (``server`` among them)."""
    ids = {s.span_id for s in spans}
    children: dict[str, list[Span]] = defaultdict(list)
    for span in spans:
        if span is server:
            continue
        parent = span.parent_id
        if parent is None or parent not in ids:
            # A parent never exported: the span still ran inside whichever request it falls in.
            if span.is_server or not (server.start_ns <= span.start_ns < server.end_ns):
                continue
            parent = server.span_id
        children[parent].append(span)
    pieces = _self_time(server, children)
    path = _critical_path(server, children) if with_path else ()
    failed = (server.status is not None and server.status >= FAILED_STATUS) or bool(
        server.error_kind
    )
    return RequestTimes(
        trace_id=server.trace_id,
        endpoint=endpoint_of(server),
        start_ns=server.start_ns,
        duration_ns=server.duration_ns,
        failed=failed,
        self_ns=pieces,
        critical_path=path,
    )


def _self_time(server: Span, children: dict[str, list[Span]]) -> tuple[int, ...]:
    start, end = server.start_ns, server.start_ns + server.duration_ns
    # (start, end, depth, category) of every categorised descendant, clipped to the request;
    # a nested SERVER span claims its time as the rest (it is its own request).
    claims: list[tuple[int, int, int, Category]] = []
    stack: list[tuple[Span, int]] = [(server, 0)]
    visited = {id(server)}  # a span id written twice must not loop the walk
    while stack:
        span, depth = stack.pop()
        for child in children.get(span.span_id, ()):
            if id(child) in visited:
                continue
            visited.add(id(child))
            category = Category.REST if child.is_server else category_of(child)
            lo, hi = max(child.start_ns, start), min(child.end_ns, end)
            if category is not None and lo < hi:
                claims.append((lo, hi, depth + 1, category))
            if not child.is_server:
                stack.append((child, depth + 1))
    totals = [0] * len(CATEGORIES)
    if not claims:
        totals[Category.REST] = end - start
        return tuple(totals)
    # Sweep the cut points; at each piece the active claim with the greatest (depth, start) wins.
    events: list[tuple[int, int, int]] = []  # (time, +1 start / -1 end, claim index)
    for index, (lo, hi, _, _) in enumerate(claims):
        events.append((lo, 1, index))
        events.append((hi, -1, index))
    events.sort(key=lambda e: (e[0], e[1]))
    active: set[int] = set()
    cursor = start
    for moment, change, index in events:
        if moment > cursor:
            totals[_winner(claims, active)] += moment - cursor
            cursor = moment
        if change > 0:
            active.add(index)
        else:
            active.discard(index)
    totals[Category.REST] += end - cursor
    return tuple(totals)


def _winner(claims: Sequence[tuple[int, int, int, Category]], active: set[int]) -> Category:
    if not active:
        return Category.REST
    best = max(active, key=lambda i: (claims[i][2], claims[i][0], i))
    return claims[best][3]


def _critical_path(server: Span, children: dict[str, list[Span]]) -> tuple[PathStep, ...]:
    start, end = server.start_ns, server.start_ns + server.duration_ns
    path = [PathStep(endpoint_of(server), server.duration_ns, None)]
    span = server
    while True:
        kids = children.get(span.span_id)
        if not kids:
            break
        span = max(kids, key=lambda s: (min(s.end_ns, end) - max(s.start_ns, start), s.start_ns))
        clipped = max(min(span.end_ns, end) - max(span.start_ns, start), 0)
        path.append(PathStep(span.name, clipped, category_of(span)))
        if span.is_server or len(path) > 32:
            break
    return tuple(path)


@dataclass
class AssembleCounts:
    """What the assembly saw beside the requests it made."""

    requests: int = 0
    traces_without_server_span: int = 0
    """Traces dropped (never closed) because no SERVER span of theirs was read."""


class TraceAssembler:
    """Groups a stream of spans by trace and yields each request once its trace is complete."""

    def __init__(
        self, *, settle_spans: int = SETTLE_SPANS, max_open_traces: int = MAX_OPEN_TRACES
    ) -> None:
        """``settle_spans`` and ``max_open_traces`` bound the memory (see the module's text)."""
        self._settle = settle_spans
        self._max_open = max_open_traces
        self._open: OrderedDict[str, list[Span]] = OrderedDict()
        self._due: list[tuple[int, str]] = []  # (span count when due, trace id), a heap
        self._has_server: set[str] = set()
        self._seen = 0
        self.counts = AssembleCounts()

    def add(self, span: Span) -> Iterator[RequestTimes]:
        """Take one span; yield the requests of the traces it completes."""
        self._seen += 1
        spans = self._open.get(span.trace_id)
        if spans is None:
            spans = self._open[span.trace_id] = []
        spans.append(span)
        if span.is_server and span.trace_id not in self._has_server:
            self._has_server.add(span.trace_id)
            heapq.heappush(self._due, (self._seen + self._settle, span.trace_id))
        while self._due and self._due[0][0] <= self._seen:
            _, trace_id = heapq.heappop(self._due)
            yield from self._close(trace_id)
        while len(self._open) - len(self._has_server) > self._max_open:
            self._drop_oldest_without_server()

    def finish(self) -> Iterator[RequestTimes]:
        """Yield the requests of every trace still open (the end of the input)."""
        for trace_id in list(self._open):
            if trace_id in self._has_server:
                yield from self._close(trace_id)
            else:
                del self._open[trace_id]
                self.counts.traces_without_server_span += 1
        self._due.clear()

    def _close(self, trace_id: str) -> Iterator[RequestTimes]:
        spans = self._open.pop(trace_id, None)
        self._has_server.discard(trace_id)
        if spans is None:
            return
        for server in (s for s in spans if s.is_server):
            self.counts.requests += 1
            yield request_times(server, spans)

    def _drop_oldest_without_server(self) -> None:
        for trace_id in self._open:
            if trace_id not in self._has_server:
                del self._open[trace_id]
                self.counts.traces_without_server_span += 1
                return


def assemble(spans: Iterable[Span], assembler: TraceAssembler | None = None) -> list[RequestTimes]:
    """Every request in ``spans`` (a convenience over ``TraceAssembler``)."""
    assembler = assembler or TraceAssembler()
    requests: list[RequestTimes] = []
    for span in spans:
        requests.extend(assembler.add(span))
    requests.extend(assembler.finish())
    return requests

"""Where the time went, per endpoint: of all requests, the slowest 1 % and the failed ones.

Pure: it sums what ``loadkit.traces.requests`` worked out for each request (its self time per
category, which sums exactly to its duration), so every figure is an exact sum over the spans,
never a sample of them, as long as every request was traced (``OTEL_TRACES_SAMPLER=always_on``,
which ``loadkit accept`` sets for the bundled service). "Slowest" is by the SERVER span's duration,
the service's own view of the request; "failed" is a status ≥ 500 or an ``engines.error_kind``.

``tail_breakdown`` is the same split for the tail a latency criterion is about (the slowest 5 %
for a P95, the slowest request for a max, every request for a mean): the gate's evidence.
"""

from __future__ import annotations

import heapq
import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from loadkit.traces.requests import CATEGORIES, Category, RequestTimes

SLOWEST_SHARE = 0.01
"""The slowest share of each endpoint's requests that the breakdown shows apart."""
TOP_TRACES = 10
TAIL_SHARES: dict[str, float | None] = {
    "p50": 0.5,
    "p90": 0.10,
    "p95": 0.05,
    "p99": 0.01,
    "p999": 0.001,
    "max": 0.0,
    "mean": None,
}
"""A latency figure → the slowest share of requests that makes it (0: the slowest one; None:
every request, for a mean)."""
TAIL_ENDPOINTS = 5

_PATH_PARAMETER = re.compile(r"\{[^{}]*\}")


@dataclass(frozen=True)
class TimeSplit:
    """The summed self time of some requests, per category."""

    requests: int
    self_ns: tuple[int, ...]
    """Nanoseconds per ``Category`` (indexed by its value)."""

    @property
    def total_ns(self) -> int:
        """The requests' summed durations (the categories sum to it exactly)."""
        return sum(self.self_ns)

    def share(self, category: Category) -> float | None:
        """The category's share of the time; None when there is no time at all."""
        total = self.total_ns
        return self.self_ns[category] / total if total else None

    def ms(self, category: Category) -> float:
        """The category's summed time in milliseconds."""
        return self.self_ns[category] / 1e6

    @property
    def dominant(self) -> Category | None:
        """The category with the most time (None when there is none)."""
        if not self.total_ns:
            return None
        return max(CATEGORIES, key=lambda c: (self.self_ns[c], -c))


def split_of(requests: Iterable[RequestTimes]) -> TimeSplit:
    """The sum of ``requests``' self times."""
    totals = [0] * len(CATEGORIES)
    count = 0
    for request in requests:
        count += 1
        for index, value in enumerate(request.self_ns):
            totals[index] += value
    return TimeSplit(requests=count, self_ns=tuple(totals))


def slowest_of(requests: Sequence[RequestTimes], share: float) -> list[RequestTimes]:
    """The slowest ``share`` of ``requests`` by duration, at least one (none of none); ties by
    trace id, so that the choice is the same on every reading."""
    if not requests:
        return []
    count = max(1, math.ceil(share * len(requests)))
    return heapq.nsmallest(count, requests, key=lambda r: (-r.duration_ns, r.trace_id))


@dataclass(frozen=True)
class EndpointBreakdown:
    """One endpoint's requests, split three ways."""

    endpoint: str
    all: TimeSplit
    slowest: TimeSplit
    """The slowest ``SLOWEST_SHARE`` (at least one request)."""
    slowest_from_ns: int
    """The shortest duration among the slowest."""
    failed: TimeSplit


@dataclass(frozen=True)
class TracesBreakdown:
    """The whole breakdown of some span files."""

    endpoints: tuple[EndpointBreakdown, ...]
    """Most total time first."""
    slowest: tuple[RequestTimes, ...]
    """The slowest requests of all, with their critical paths, slowest first."""
    requests: int
    slowest_share: float = SLOWEST_SHARE


class BreakdownBuilder:
    """Takes requests one at a time; keeps a small record of each and the slowest whole."""

    def __init__(self, *, top: int = TOP_TRACES) -> None:
        """``top``: how many of the slowest requests keep their critical path."""
        self._top = top
        # A min-heap of the top: (duration, trace id reversed, arrival, request).
        self._slowest: list[tuple[int, tuple[int, ...], int, RequestTimes]] = []
        self.requests: list[RequestTimes] = []
        """Every request, without its critical path (what the tails are cut from)."""

    def add(self, request: RequestTimes) -> None:
        """Take one request."""
        self.requests.append(
            replace(request, critical_path=()) if request.critical_path else request
        )
        # Ties by trace id (the smaller wins), as in ``slowest_of``.
        entry = (request.duration_ns, _reversed(request.trace_id), len(self.requests), request)
        if len(self._slowest) < self._top:
            heapq.heappush(self._slowest, entry)
        elif entry[:2] > self._slowest[0][:2]:
            heapq.heapreplace(self._slowest, entry)

    def result(self) -> TracesBreakdown:
        """The breakdown of every request taken."""
        by_endpoint: dict[str, list[RequestTimes]] = defaultdict(list)
        for request in self.requests:
            by_endpoint[request.endpoint].append(request)
        endpoints = []
        for endpoint, requests in by_endpoint.items():
            slowest = slowest_of(requests, SLOWEST_SHARE)
            endpoints.append(
                EndpointBreakdown(
                    endpoint=endpoint,
                    all=split_of(requests),
                    slowest=split_of(slowest),
                    slowest_from_ns=slowest[-1].duration_ns,
                    failed=split_of(r for r in requests if r.failed),
                )
            )
        endpoints.sort(key=lambda e: (-e.all.total_ns, e.endpoint))
        top = sorted(self._slowest, key=lambda e: (-e[0], e[3].trace_id, e[2]))
        return TracesBreakdown(
            endpoints=tuple(endpoints),
            slowest=tuple(entry[3] for entry in top),
            requests=len(self.requests),
        )


def _reversed(trace_id: str) -> tuple[int, ...]:
    # Orders trace ids backwards, so that in the min-heap the larger id is evicted first.
    return tuple(-ord(char) for char in trace_id)


def ran_between(
    requests: Iterable[RequestTimes], since_ns: int, until_ns: int
) -> list[RequestTimes]:
    """The requests whose SERVER span started and ended within ``[since_ns, until_ns]`` (Unix
    nanoseconds): those a run recorded, when the span file also holds others (smoke's before the
    load, requests still in flight when the load stopped, which the run's figures leave out)."""
    return [
        r for r in requests if since_ns <= r.start_ns and r.start_ns + r.duration_ns <= until_ns
    ]


def same_endpoint(a: str, b: str) -> bool:
    """Whether two endpoint names are one route: path parameters compared without their names
    (a scenario's ``/api/items/{id}`` is the service's ``/api/items/{item_id}``)."""
    return _PATH_PARAMETER.sub("{}", a) == _PATH_PARAMETER.sub("{}", b)


@dataclass(frozen=True)
class TailBreakdown:
    """Where the time went in the requests a latency figure is made of (the gate's evidence)."""

    figure: str
    """The latency figure (``p95``, ``max``, ``mean``), as ``TAIL_SHARES`` names it."""
    endpoint: str | None
    """The criterion's endpoint; None for every endpoint."""
    share: float | None
    """The slowest share taken (0: the slowest request); None: every request."""
    traced: int
    """Traced requests in scope (of the endpoint, or all)."""
    tail: TimeSplit
    from_ns: int
    """The shortest duration in the tail (in the service, from its SERVER span)."""
    endpoints: tuple[tuple[str, int], ...]
    """The endpoints of the tail's requests with how many each, most first (at most
    ``TAIL_ENDPOINTS``)."""


def tail_figure(metric: str) -> str | None:
    """The figure of a latency metric name (``p95_ms``, ``service_p95_ms`` → ``p95``); None for
    a metric that is not a latency figure."""
    figure = metric.removeprefix("service_").removesuffix("_ms")
    return figure if metric.endswith("_ms") and figure in TAIL_SHARES else None


def tail_breakdown(
    requests: Sequence[RequestTimes], *, figure: str, endpoint: str | None
) -> TailBreakdown | None:
    """Where the time of the requests behind ``figure`` went (of ``endpoint``'s requests, or
    all); None when no traced request is in scope."""
    share = TAIL_SHARES[figure]
    scope = [r for r in requests if endpoint is None or same_endpoint(r.endpoint, endpoint)]
    if not scope:
        return None
    tail = scope if share is None else slowest_of(scope, share)
    counts = Counter(r.endpoint for r in tail)
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return TailBreakdown(
        figure=figure,
        endpoint=endpoint,
        share=share,
        traced=len(scope),
        tail=split_of(tail),
        from_ns=min(r.duration_ns for r in tail),
        endpoints=tuple(ranked[:TAIL_ENDPOINTS]),
    )

"""Prometheus metrics for ``GET /metrics`` (prometheus-client, text format).

Each app has its own ``CollectorRegistry`` (no process-global state: tests build many apps):

- ``engines_http_requests_total{method,endpoint,status,error_kind}``: requests answered;
- ``engines_http_request_duration_seconds{method,endpoint}``: request duration histogram;
- ``engines_http_requests_in_flight``: requests being handled now;
- ``engines_storage_lock_wait_seconds{endpoint}`` / ``..._hold_seconds{endpoint}``: the storage
  lock, and ``engines_storage_lock_timeouts_total{endpoint}``;
- ``engines_db_pool_*``: the pool's size, max size, checked out, checked in, overflow (read when
  scraped), and the checkouts that waited or timed out (``engines_db_pool_waits_total``,
  ``engines_db_pool_timeouts_total``).

Labels are bounded: ``endpoint`` is the route template (or "unmatched"), unknown methods are
"OTHER", ``error_kind`` is one of the service's kinds ("" for a success).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from service.backpressure import InFlightCounter
from service.middleware import AnsweredRequest
from service.pool_metrics import PoolMonitor

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""The Prometheus text exposition format."""

KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
LOCK_BUCKETS_S = (0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0)
"""Lock waits and holds are normally microseconds; the top buckets catch contention."""

_POOL_GAUGES = {
    "size": "Connections the pool keeps.",
    "max_size": "Most connections open at once (size + max overflow).",
    "checked_out": "Connections in use.",
    "checked_in": "Idle connections in the pool.",
    "overflow": "Connections open beyond the pool size.",
}


class PoolCollector(Collector):
    """The database pool's figures, read at scrape time."""

    def __init__(self, monitor: PoolMonitor) -> None:
        self.monitor = monitor

    def collect(self) -> Iterable[Metric]:
        """One gauge per pool figure the pool has, and the wait/timeout counters."""
        snapshot = asdict(self.monitor.snapshot())
        for name, help_text in _POOL_GAUGES.items():
            value = snapshot[name]
            if value is not None:
                yield GaugeMetricFamily(f"engines_db_pool_{name}", help_text, value=value)
        yield CounterMetricFamily(
            "engines_db_pool_waits",
            "Checkouts that found the pool saturated and waited.",
            value=self.monitor.waited,
        )
        yield CounterMetricFamily(
            "engines_db_pool_timeouts",
            "Checkouts that gave up after the pool timeout (db_pool_exhausted).",
            value=self.monitor.timed_out,
        )


class ServiceMetrics:
    """The app's metrics; fed by the request middleware and the storage lock observers."""

    def __init__(self, *, pool: PoolMonitor, in_flight: InFlightCounter) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "engines_http_requests",
            "Requests answered, by method, route template, status and error kind.",
            ["method", "endpoint", "status", "error_kind"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "engines_http_request_duration_seconds",
            "Time from the request's arrival to its log line.",
            ["method", "endpoint"],
            registry=self.registry,
        )
        in_flight_gauge = Gauge(
            "engines_http_requests_in_flight",
            "Requests being handled now.",
            registry=self.registry,
        )
        in_flight_gauge.set_function(lambda: in_flight.value)
        self.lock_wait = Histogram(
            "engines_storage_lock_wait_seconds",
            "Time waited for the storage lock, by endpoint.",
            ["endpoint"],
            buckets=LOCK_BUCKETS_S,
            registry=self.registry,
        )
        self.lock_hold = Histogram(
            "engines_storage_lock_hold_seconds",
            "Time the storage lock was held, by endpoint.",
            ["endpoint"],
            buckets=LOCK_BUCKETS_S,
            registry=self.registry,
        )
        self.lock_timeouts = Counter(
            "engines_storage_lock_timeouts",
            "Storage lock acquisitions that timed out (storage_lock_timeout).",
            ["endpoint"],
            registry=self.registry,
        )
        self.registry.register(PoolCollector(pool))

    def observe_request(self, request: AnsweredRequest) -> None:
        """A request observer: count one answered request and its duration."""
        method = request.method if request.method in KNOWN_METHODS else "OTHER"
        status = str(request.status_code)
        self.requests.labels(method, request.endpoint, status, request.error_kind or "").inc()
        self.duration.labels(method, request.endpoint).observe(request.duration_s)

    def observe_lock(self, endpoint: str, wait_s: float, hold_s: float | None) -> None:
        """A ``Storage`` observer: one use of the storage lock (``hold_s`` None: timed out)."""
        self.lock_wait.labels(endpoint).observe(wait_s)
        if hold_s is None:
            self.lock_timeouts.labels(endpoint).inc()
        else:
            self.lock_hold.labels(endpoint).observe(hold_s)

    def render(self) -> bytes:
        """The metrics in the Prometheus text format."""
        return generate_latest(self.registry)

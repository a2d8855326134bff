"""The figures of one group of requests (an endpoint, a stage): counts, response times and, in
an open-model run, service times and the waits of iterations never sent.

A closed-model run has one time per request (``latency_s``): response and service time are one,
and only ``histogram`` is kept, as cheaply as ever. The first request with a service time of its
own (an open-model run) starts ``service``, seeded with a copy of ``histogram``, because the
requests before it had their response time as service time; from then on both are kept. So
``service`` is exact whatever the mix, also through merges (``add``). Iterations never sent
(``not_sent``) have a wait but no service time: their waits are kept apart (``unsent``) and join
the response times only in what is reported.

Pure: values in integer-ready microseconds (see ``LatencyHistogram``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from loadkit.measure.histogram import LatencyHistogram
from loadkit.measure.results import EncodedHistogram, LatencySummary
from loadkit.measure.worker_share import EndpointShare, StageShare


@dataclass(slots=True)
class Tally:
    """Counts and latencies of one group of requests. ``LatencyRecorder.record`` updates ``ok``,
    ``errors`` and ``histogram`` directly on its closed-model path (``service`` None)."""

    histogram: LatencyHistogram = field(default_factory=LatencyHistogram)
    """Response times (µs) of the requests sent: from the due time in an open run, from the send
    in a closed one."""
    service: LatencyHistogram | None = None
    """Service times (µs, from the send) of the requests sent, once any had one apart; None:
    the same as ``histogram``."""
    unsent: LatencyHistogram | None = None
    """Open model: how long each iteration never sent had waited (due time to the end)."""
    ok: int = 0
    errors: int = 0
    """Failed requests, the iterations never sent included."""
    not_sent: int = 0

    @property
    def requests(self) -> int:
        """Requests counted, ok and failed (iterations never sent included)."""
        return self.ok + self.errors

    def record_timed(self, response_us: float, service_us: float) -> None:
        """One sent request's response and service times (the counts are the caller's)."""
        service = self.service
        if service is None:
            service = self.service = self.histogram.clone()
        self.histogram.record_us(response_us)
        service.record_us(service_us)

    def record_response(self, response_us: float) -> None:
        """One sent request whose service time is its response time (counts: the caller's)."""
        self.histogram.record_us(response_us)
        if self.service is not None:
            self.service.record_us(response_us)

    def record_unsent(self, wait_us: float) -> None:
        """One iteration never sent, after waiting ``wait_us``: an error."""
        unsent = self.unsent
        if unsent is None:
            unsent = self.unsent = LatencyHistogram()
        unsent.record_us(wait_us)
        self.errors += 1
        self.not_sent += 1

    def add(
        self,
        *,
        ok: int,
        errors: int,
        not_sent: int,
        histogram: LatencyHistogram,
        service: LatencyHistogram | None,
        unsent: LatencyHistogram | None,
    ) -> None:
        """Add another tally's figures (a share's), exactly."""
        if service is not None or self.service is not None:
            if self.service is None:
                self.service = self.histogram.clone()
            self.service.add(service if service is not None else histogram)
        self.histogram.add(histogram)
        if unsent is not None and unsent.count:
            if self.unsent is None:
                self.unsent = LatencyHistogram()
            self.unsent.add(unsent)
        self.ok += ok
        self.errors += errors
        self.not_sent += not_sent

    def to_share(self) -> EndpointShare:
        """This tally as plain data for another process (``add_share`` there)."""
        return EndpointShare(**self._share_fields())

    def to_stage_share(self, index: int) -> StageShare:
        """This tally as stage ``index``'s share (0-based)."""
        return StageShare(index=index, **self._share_fields())

    def _share_fields(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "errors": self.errors,
            "histogram": self.histogram.encode(),
            "service_histogram": self.service_encoded(),
            "not_sent": self.not_sent,
            "unsent_histogram": None if self.unsent is None else self.unsent.encode(),
        }

    def add_share(self, share: EndpointShare) -> None:
        """Add a share's tally (``share_fields`` of another process's), exactly."""
        self.add(
            ok=share.ok,
            errors=share.errors,
            not_sent=share.not_sent,
            histogram=LatencyHistogram.decode(share.histogram),
            service=_decoded(share.service_histogram),
            unsent=_decoded(share.unsent_histogram),
        )

    def response(self) -> LatencyHistogram:
        """Every response time: the requests sent, and the waits of those never sent."""
        if self.unsent is None or not self.unsent.count:
            return self.histogram
        total = self.histogram.clone()
        total.add(self.unsent)
        return total

    def sent_service(self) -> LatencyHistogram:
        """The service times of the requests sent (their response times in a closed run)."""
        return self.service if self.service is not None else self.histogram

    def service_summary(self) -> LatencySummary | None:
        """Service times in ms; None when they are the response times or nothing was sent."""
        return None if self.service is None else self.service.summary()

    def service_encoded(self) -> EncodedHistogram | None:
        """Service times encoded; None when they are the response times."""
        return None if self.service is None else self.service.encode()


def _decoded(encoded: EncodedHistogram | None) -> LatencyHistogram | None:
    return None if encoded is None else LatencyHistogram.decode(encoded)

"""What a worker ships to its master: typed, exact through Locust's transport, and refused when
it comes from another loadkit."""

from __future__ import annotations

import msgpack  # type: ignore[import-untyped]  # Locust's dependency, no stubs
import pytest

from loadkit.engines.locust.plugin.worker_report import WorkerReport, WorkerStop
from loadkit.exceptions import InputError
from loadkit.measure.recorder import LatencyRecorder
from loadkit.measure.worker_share import SHARE_VERSION


def through_locust(data: object) -> object:
    """As Locust's rpc protocol packs and unpacks a message's data (locust/rpc/protocol.py)."""
    return msgpack.loads(msgpack.dumps(data), raw=False, strict_map_key=False)


def worker_recorder() -> LatencyRecorder:
    recorder = LatencyRecorder(start=100.0, source="worker-1")
    recorder.record(endpoint="GET /x", latency_s=0.01, end=100.5)
    recorder.record(endpoint="GET /x", latency_s=2.0, end=103.0, error_kind="timeout", status=504)
    recorder.finish(end=104.0, in_flight=1)
    return recorder


def test_a_report_crosses_locusts_transport_and_merges_exactly() -> None:
    recorder = worker_recorder()
    report = WorkerReport(
        share=recorder.to_share(),
        requests=2,
        errors=1,
        p95_ms=10.0,
        service_p95_ms=2.5,  # an open run's: the master's live line shows it beside the P95
        cpu_warnings=1,
        max_cpu=95.5,
    )
    received = WorkerReport.from_wire(through_locust(report.to_wire()))
    assert received == report
    master = LatencyRecorder(start=100.0, source="master")
    assert received.share is not None
    master.merge_share(received.share)
    master.finish(end=104.0)
    assert master.traffic_fields() == recorder.traffic_fields()


def test_a_worker_that_never_started_reports_no_share() -> None:
    received = WorkerReport.from_wire(through_locust(WorkerReport().to_wire()))
    assert received.share is None and received.requests == 0


def test_a_share_from_another_loadkit_is_refused_saying_why() -> None:
    wire = WorkerReport(share=worker_recorder().to_share()).to_wire()
    wire["share"]["version"] = SHARE_VERSION + 1
    with pytest.raises(InputError, match="same loadkit on the master and every worker"):
        WorkerReport.from_wire(through_locust(wire))


def test_a_malformed_report_is_refused_naming_the_field() -> None:
    wire = WorkerReport().to_wire()
    wire["requests"] = "many"
    with pytest.raises(InputError, match="requests"):
        WorkerReport.from_wire(wire)
    with pytest.raises(InputError, match="not a mapping"):
        WorkerReport.from_wire(["share"])


def test_a_workers_stop_crosses_locusts_transport() -> None:
    stop = WorkerStop(at=1234.5, exit_code=5, in_test_start="no test data")
    report = WorkerReport(share=worker_recorder().to_share(), stop=stop)
    assert WorkerReport.from_wire(through_locust(report.to_wire())).stop == stop
    assert WorkerReport.from_wire(through_locust(WorkerReport().to_wire())).stop is None

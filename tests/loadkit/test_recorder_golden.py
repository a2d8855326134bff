"""The recorder's numbers, pinned: a fixed sequence of requests gives byte-identical results.

The golden file was written by the recorder as it was before it was split into its parts
(timeline, error groups, stall tracker) and before its worker share was typed; any change to
what a run reports shows up here as a diff. Regenerate it only for a deliberate change of the
numbers: ``python tests/loadkit/test_recorder_golden.py`` (and say why in the commit).
"""

from __future__ import annotations

import random
from dataclasses import asdict
from pathlib import Path
from typing import Any

import orjson

from loadkit.measure.recorder import LatencyRecorder
from loadkit.measure.results import LoadResults
from loadkit.measure.worker_share import WorkerShare

GOLDEN = Path(__file__).parent / "fixtures" / "recorder_golden.json"
START = 1_700_000_000.0
ENDPOINTS = ("GET /api/items", "POST /api/auth/login", "GET /api/items/{item_id}")
KINDS = ("storage_lock_timeout", "timeout", "connect_error")


def _requests(seed: int, span: tuple[float, float], n: int) -> list[tuple[float, float, int]]:
    """(end offset, latency s, index) of ``n`` requests sent in ``span``, in completion order."""
    rng = random.Random(seed)
    out = []
    for index in range(n):
        sent = rng.uniform(*span)
        latency = rng.lognormvariate(-4, 1.1)
        out.append((sent + latency, latency, index))
    return sorted(out)


def _record(recorder: LatencyRecorder, rng: random.Random, end: float, latency: float) -> None:
    failed = rng.random() < 0.12
    kind = rng.choice(KINDS) if failed else None
    recorder.record(
        endpoint=rng.choice(ENDPOINTS),
        latency_s=latency,
        end=START + end,
        error_kind=kind,
        status=rng.choice((503, 504, None)) if failed else 200,
        trace_id=f"t{rng.randrange(10**6):06d}" if failed and rng.random() < 0.8 else None,
        message=f"{kind} after {latency:.3f} s" if failed and rng.random() < 0.5 else None,
    )


def single_process() -> LatencyRecorder:
    """One process: a freeze that a slow request spans, clamped values, a completion out of
    order and one stamped before the start, a silent tail with requests still in flight."""
    rng = random.Random(11)
    recorder = LatencyRecorder(start=START)
    requests = [r for r in _requests(1, (0.0, 9.0), 1500) if not 3.0 <= r[0] - r[1] < 5.2]
    requests.append((5.4, 2.55, -1))  # sent at 2.85, completes after the freeze
    for end, latency, _ in sorted(requests):
        _record(recorder, rng, end, latency)
    recorder.record(endpoint="GET /api/items", latency_s=0.0, end=START + 9.1)  # below 1 µs
    recorder.record(endpoint="GET /api/items", latency_s=-0.002, end=START + 9.1)  # clock skew
    recorder.record(endpoint="POST /api/auth/login", latency_s=75.0, end=START + 9.2)  # > 60 s
    recorder.record(endpoint="GET /api/items", latency_s=0.01, end=START + 9.0)  # out of order
    recorder.record(endpoint="GET /api/items", latency_s=0.02, end=START - 0.05)  # before start
    recorder.finish(end=START + 10.4, in_flight=2)
    return recorder


def distributed() -> LatencyRecorder:
    """Three workers (one started 0.3 s late) whose shares reach a master every 2 s as plain
    data: one worker alone freezes (no stall overall), then all freeze together (a stall)."""
    master = LatencyRecorder(start=START, source="master")
    for worker_index in range(3):
        rng = random.Random(100 + worker_index)
        shift = 0.3 if worker_index == 2 else 0.0
        worker = LatencyRecorder(start=START + shift, source=f"worker-{worker_index}")
        requests = _requests(20 + worker_index, (0.0, 12.0), 900)
        requests = [r for r in requests if not 6.0 <= r[0] - r[1] < 8.0]  # all freeze
        if worker_index == 0:
            requests = [r for r in requests if not 2.0 <= r[0] - r[1] < 3.5]  # only this one
            requests.append((3.6, 1.7, -1))
        requests.append((8.1, 2.2, -2))  # spans the common freeze
        next_report = 2.0
        for end, latency, _ in sorted(requests):
            while end >= next_report:
                master.merge_share(_through_the_wire(worker.drain_share()))
                next_report += 2.0
            _record(worker, rng, end, latency)
        worker.finish(end=START + 12.5, in_flight=worker_index)
        master.merge_share(_through_the_wire(worker.drain_share()))
    master.finish(end=START + 12.5)
    return master


def _through_the_wire(share: WorkerShare) -> WorkerShare:
    # As plain data, JSON here (msgpack in Locust's reports).
    return WorkerShare.from_wire(orjson.loads(orjson.dumps(share.to_wire())))


def results_of(recorder: LatencyRecorder) -> dict[str, Any]:
    """Everything a results file carries from the recorder, as JSON data."""
    results = LoadResults(target="http://golden", config={}, **recorder.traffic_fields())
    last = recorder.last_second
    return {
        "results": results.model_dump(mode="json", by_alias=True),
        "last_second": asdict(last) if last is not None else None,
    }


def golden_bytes() -> bytes:
    """The golden document for today's recorder."""
    document = {"single": results_of(single_process()), "distributed": results_of(distributed())}
    return orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"


def test_recorder_results_are_byte_identical_to_the_golden_file() -> None:
    assert golden_bytes() == GOLDEN.read_bytes()


def test_the_golden_sequence_covers_what_it_pins() -> None:
    single = results_of(single_process())["results"]
    merged = results_of(distributed())["results"]
    for results in (single, merged):
        assert results["totals"]["errors"] > 0
        assert len(results["endpoints"]) == len(ENDPOINTS)
        assert results["longest_stall"] is not None
    assert single["histogram"]["clamped"] == 3
    assert 3.0 < single["longest_stall"]["start_s"] < 3.5  # the freeze, not the silent tail
    assert 5.0 < single["longest_stall"]["end_s"] < 5.5
    assert 6.0 < merged["longest_stall"]["start_s"] < merged["longest_stall"]["end_s"] < 8.2


if __name__ == "__main__":
    GOLDEN.write_bytes(golden_bytes())

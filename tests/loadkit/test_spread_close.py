"""A recorder whose seconds close in pieces (the native engine's event loop runs them between
its turns) reports exactly what one closing them at once reports, whenever it is read; and a
histogram's bookkeeping, done a chunk at a time, gives the same figures and stays bounded."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import replace
from fractions import Fraction

from loadkit.engines.http_request import RequestSpec
from loadkit.engines.native.share import SharePlan, run_share
from loadkit.measure import histogram as histogram_module
from loadkit.measure.histogram import (
    PENDING_HARD_LIMIT,
    PENDING_LIMIT,
    RAW_LIMIT,
    LatencyHistogram,
)
from loadkit.measure.live_status import LiveStatus
from loadkit.measure.recorder import LatencyRecorder
from tests.loadkit.misbehaving_servers import serve
from tests.loadkit.native_servers import answering
from tests.loadkit.open_runs import ENDPOINT, T0, open_results

Piece = Callable[[], None]


def _requests(seconds: int, per_second: int, seed: int) -> list[tuple[float, float, float]]:
    """(end, response s, service s): a wide spread of distinct microsecond values, so that
    whole-run histograms pass PENDING_LIMIT within the run."""
    rng = random.Random(seed)
    out = []
    for index in range(seconds * per_second):
        service = rng.lognormvariate(-7.0, 1.3)
        response = service + (rng.lognormvariate(-7.0, 1.0) if index % 3 == 0 else 0.0)
        out.append((index / per_second, response, service))
    return out


def _record(recorder: LatencyRecorder, requests: list[tuple[float, float, float]]) -> None:
    for index, (end, response, service) in enumerate(requests):
        recorder.record(
            endpoint=ENDPOINT,
            latency_s=response,
            end=T0 + end,
            service_s=service,
            error_kind="timeout" if index % 50 == 0 else None,
        )


def _results_json(recorder: LatencyRecorder, end: float) -> bytes:
    return open_results(recorder, end=T0 + end).model_dump_json(by_alias=True).encode()


def test_seconds_closed_in_pieces_give_the_results_of_seconds_closed_at_once() -> None:
    requests = _requests(seconds=4, per_second=3000, seed=1)
    at_once = LatencyRecorder(start=T0)
    _record(at_once, requests)

    spread = LatencyRecorder(start=T0)
    pieces: list[Piece] = []
    spread.spread_second_close(pieces.append)
    ran = 0
    for index, (end, response, service) in enumerate(requests):
        spread.record(
            endpoint=ENDPOINT,
            latency_s=response,
            end=T0 + end,
            service_s=service,
            error_kind="timeout" if index % 50 == 0 else None,
        )
        # A loop turn now and then: pieces run between requests, some still queued at a read.
        if index % 7 == 0 and pieces:
            pieces.pop(0)()
            ran += 1
    assert ran > 10  # the closings were spread, not done at once
    # The run's end closes its last second in pieces no loop runs: reading finishes it.
    assert _results_json(spread, 4.0) == _results_json(at_once, 4.0)


def test_the_live_line_sees_the_second_just_closed_even_mid_closing() -> None:
    spread = LatencyRecorder(start=T0)
    pieces: list[Piece] = []
    spread.spread_second_close(pieces.append)
    spread.record(endpoint=ENDPOINT, latency_s=0.2, end=T0 + 0.5, service_s=0.1)
    spread.record(endpoint=ENDPOINT, latency_s=0.01, end=T0 + 1.2, service_s=0.01)
    assert spread.second_closing and pieces  # second 0 is being closed, nothing ran yet
    last = spread.last_second  # a reader finishes the closing itself
    assert last is not None and last.t == 0 and last.completions == 1
    assert last.p95_ms == 200.0 and last.service_p95_ms == 100.0
    assert not spread.second_closing
    for piece in pieces:  # the pieces left over find nothing to do
        piece()
    assert [point.completions for point in spread.timeline()] == [1, 1]


def test_whole_run_histograms_move_their_backlog_into_hdr_at_each_second() -> None:
    recorder = LatencyRecorder(start=T0)
    pieces: list[Piece] = []
    recorder.spread_second_close(pieces.append)
    # More distinct values in second 0 than PENDING_LIMIT, then one request in second 1.
    values = [(1000 + 3 * index) / 1e6 for index in range(PENDING_LIMIT + 2 * RAW_LIMIT)]
    for index, value in enumerate(values):
        recorder.record(endpoint=ENDPOINT, latency_s=value, end=T0 + index / len(values))
    histogram = recorder._endpoints[ENDPOINT].histogram
    assert histogram.backlog > PENDING_LIMIT  # not added in by the per-request path
    recorder.record(endpoint=ENDPOINT, latency_s=0.001, end=T0 + 1.5)
    assert histogram.backlog > PENDING_LIMIT  # spread: the loop has not run the pieces yet
    while pieces:
        pieces.pop(0)()
    assert histogram.backlog == 0

    at_once = LatencyRecorder(start=T0)
    for index, value in enumerate(values):
        at_once.record(endpoint=ENDPOINT, latency_s=value, end=T0 + index / len(values))
    at_once.record(endpoint=ENDPOINT, latency_s=0.001, end=T0 + 1.5)
    assert at_once._endpoints[ENDPOINT].histogram.backlog == 0
    assert histogram.encode() == at_once._endpoints[ENDPOINT].histogram.encode()


def test_a_histogram_synced_a_chunk_at_a_time_encodes_as_one_synced_at_once() -> None:
    rng = random.Random(3)
    values = [rng.lognormvariate(7.0, 1.5) for _ in range(20_000)]
    chunked, whole = LatencyHistogram(), LatencyHistogram()
    for index, value in enumerate(values):
        chunked.record_us(value)
        whole.record_us(value)
        if index % 5000 == 4999:
            before = chunked.backlog
            assert before > 1000
            done = chunked.sync_part(100)
            # A fold's worth of new values at most, and a chunk of 100 fewer waiting.
            assert chunked.backlog <= before + RAW_LIMIT - 100
            assert not done
    while not chunked.sync_part(333):
        pass
    assert chunked.backlog == 0
    assert chunked.encode() == whole.encode()
    assert chunked.percentiles_us() == whole.percentiles_us()
    assert chunked.summary() == whole.summary()


def test_values_never_synced_by_an_owner_stay_bounded() -> None:
    histogram = LatencyHistogram()
    most = 0
    for value in range(1, PENDING_HARD_LIMIT + 3 * PENDING_LIMIT):
        histogram.record_us(float(value))
        most = max(most, histogram.backlog)
    # Past the hard limit the per-request path added them in itself.
    assert PENDING_HARD_LIMIT < most <= PENDING_HARD_LIMIT + PENDING_LIMIT + RAW_LIMIT
    assert histogram.backlog < PENDING_HARD_LIMIT
    assert histogram.count == PENDING_HARD_LIMIT + 3 * PENDING_LIMIT - 1


def test_percentiles_land_on_every_scan_block_boundary() -> None:
    # One value per HDR counter (exact below 2,048 µs) across the scan's first block edge: the
    # percentiles whose ranks fall just before, on and after it come out exact.
    histogram = LatencyHistogram()
    block = histogram_module.SCAN_BLOCK
    values = list(range(block - 3, 2 * block - 1))
    for value in values:
        histogram.record_us(float(value))
    percentiles = (0.1, 0.29, 0.3, 0.4, 50.0, 99.9, 100.0)
    got = histogram.percentiles_us(percentiles)
    for percentile in percentiles:
        rank = max(math.ceil(Fraction(str(percentile)) * len(values) / 100), 1)
        assert got[percentile] == float(values[rank - 1]), percentile
    assert {got[0.29], got[0.3]} == {float(block - 1), float(block)}


def test_a_native_open_run_closes_its_seconds_in_pieces_and_its_live_line_shows_them() -> None:
    # The share spreads each second's close over its loop; the live line waits for a close
    # under way instead of finishing it, and still shows every second's P95; the results
    # count every request.
    statuses: list[LiveStatus] = []
    plan = SharePlan(
        request=RequestSpec(url=""),
        model="open",
        start=None,
        duration_s=2.4,
        rate=200.0,
        max_in_flight=20,
        timeout_s=1.0,
    )
    with serve(answering(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")) as url:
        outcome = run_share(
            replace(plan, request=RequestSpec(url=f"{url}/")), on_status=statuses.append
        )
    running = [status for status in statuses if status.state == "running"]
    assert len(running) >= 2
    # By the second tick (2 s) second 0 at least has closed: its P95 is on the line.
    assert running[-1].p95_ms is not None and running[-1].service_p95_ms is not None
    recorder = outcome.recorder
    points = recorder.timeline()
    # The run's last second was closed in pieces its ended loop never ran: reading finished it.
    last = recorder.last_second
    assert last is not None and not recorder.second_closing
    assert last.t == max(point.t_s for point in points if point.completions)
    assert sum(point.completions for point in points) == recorder.requests
    assert recorder.requests >= 400

"""Where the time went, from span files written by hand: the self-time rule (each instant once,
in the innermost category), thread-parented and orphan spans, failed requests, the slowest 1 %,
the critical path, the tails a latency criterion is about, and the reader's tolerances."""

from __future__ import annotations

import base64
import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from loadkit.exceptions import InputError
from loadkit.run.traces import read_span_files
from loadkit.traces.breakdown import ran_between, tail_breakdown, tail_figure
from loadkit.traces.read import ReadCounts, Span, iter_spans
from loadkit.traces.requests import Category, RequestTimes, TraceAssembler, assemble
from tests.loadkit.span_files import Req, record, request_spans, write_span_file

MS = 1_000_000


def one_request(tmp_path: Path, req: Req) -> RequestTimes:
    (request,) = read_span_files([write_span_file(tmp_path / "spans.jsonl", [req])]).requests
    return request


def ms(request: RequestTimes, category: Category) -> float:
    return request.self_ns[category] / MS


def test_a_statement_inside_the_lock_hold_counts_as_database_once(tmp_path: Path) -> None:
    request = one_request(
        tmp_path,
        Req(
            duration_ms=1000,
            children=[
                ("http middleware", 0, 1000, 0),
                ("storage.lock_wait", 10, 700, 1),
                ("storage.lock_hold", 700, 900, 1),
                ("INSERT items", 720, 760, 3),
                ("fault.lock_hold", 760, 890, 3),  # no category of its own: the hold's
                ("token.sign", 910, 930, 1),
            ],
            db=frozenset({"INSERT items"}),
        ),
    )
    assert ms(request, Category.LOCK_WAIT) == 690
    assert ms(request, Category.DATABASE) == 40
    assert ms(request, Category.LOCK_HOLD) == 160  # 200 held, less the statement's 40
    assert ms(request, Category.TOKEN) == 20
    assert ms(request, Category.REST) == 90  # 0-10, 900-910, 930-1000 (middleware claims none)
    assert sum(request.self_ns) == request.duration_ns == 1000 * MS


def test_a_hash_in_a_worker_thread_parented_on_the_request_counts_and_is_clipped(
    tmp_path: Path,
) -> None:
    # The thread's span is a child of the SERVER span; it outlives a request that gave up.
    request = one_request(
        tmp_path,
        Req(
            duration_ms=300,
            status=500,
            error_kind="internal_error",
            children=[("password.hash", 100, 450, 0), ("handler", 0, 100, 0)],
        ),
    )
    assert ms(request, Category.PASSWORD) == 200  # 100-300: the rest ran after the response
    assert ms(request, Category.REST) == 100
    assert request.failed


def test_a_span_whose_parent_was_never_exported_still_counts_in_its_request(
    tmp_path: Path,
) -> None:
    req = Req(duration_ms=100)
    spans = request_spans(req)
    orphan = dict(
        spans[0], spanId="ab" * 8, parentSpanId="cd" * 8, name="storage.lock_wait", kind=1
    )
    orphan["startTimeUnixNano"] = str(int(spans[0]["startTimeUnixNano"]) + 10 * MS)
    orphan["endTimeUnixNano"] = str(int(spans[0]["startTimeUnixNano"]) + 40 * MS)
    orphan["attributes"] = []
    path = tmp_path / "spans.jsonl"
    path.write_text(json.dumps(record([orphan, *spans])) + "\n")
    (request,) = read_span_files([path]).requests
    assert ms(request, Category.LOCK_WAIT) == 30


def test_concurrent_siblings_give_each_instant_to_the_one_started_last(tmp_path: Path) -> None:
    request = one_request(
        tmp_path,
        Req(
            duration_ms=100,
            children=[("SELECT a", 0, 60, 0), ("token.verify", 40, 80, 0)],
            db=frozenset({"SELECT a"}),
        ),
    )
    assert ms(request, Category.DATABASE) == 40
    assert ms(request, Category.TOKEN) == 40
    assert ms(request, Category.REST) == 20


def test_failed_requests_and_the_slowest_one_percent_are_split_apart(tmp_path: Path) -> None:
    fast = [
        Req(duration_ms=50, start_ms=i, children=[("password.verify", 0, 40, 0)])
        for i in range(198)
    ]
    slow = [
        Req(duration_ms=2000, start_ms=300 + i, children=[("storage.lock_wait", 0, 1900, 0)])
        for i in range(2)
    ]
    failed = [Req(duration_ms=5, status=503, error_kind="overloaded")]
    bad_login = [Req(duration_ms=60, status=401, error_kind="invalid_credentials")]
    path = write_span_file(tmp_path / "spans.jsonl", fast + slow + failed + bad_login)
    reading = read_span_files([path], top=3)
    (login,) = reading.breakdown.endpoints
    assert login.all.requests == 202
    assert login.slowest.requests == 3  # ceil(1 % of 202)
    assert login.slowest_from_ns == 60 * MS
    assert login.slowest.self_ns[Category.LOCK_WAIT] == 2 * 1900 * MS
    assert login.failed.requests == 2  # a 503, and a 401 that carries an error kind
    assert login.failed.total_ns == 65 * MS
    assert sum(login.all.self_ns) == login.all.total_ns == (198 * 50 + 2 * 2000 + 5 + 60) * MS
    slowest = [r.trace_id for r in reading.breakdown.slowest]
    assert slowest == [*sorted(s.trace_id for s in slow), bad_login[0].trace_id]


def test_the_critical_path_follows_the_longest_child_down(tmp_path: Path) -> None:
    req = Req(
        duration_ms=1000,
        children=[
            ("http middleware", 0, 990, 0),
            ("token.verify", 0, 5, 0),
            ("storage.lock_wait", 5, 800, 1),
            ("storage.lock_hold", 800, 980, 1),
        ],
    )
    path_file = write_span_file(tmp_path / "spans.jsonl", [req])
    (request,) = read_span_files([path_file]).breakdown.slowest
    path = [(step.name, step.duration_ns // MS) for step in request.critical_path]
    assert path == [
        ("POST /api/auth/login", 1000),
        ("http middleware", 990),
        ("storage.lock_wait", 795),
    ]


def test_a_child_exported_after_its_request_within_the_settling_margin_counts(
    tmp_path: Path,
) -> None:
    req = Req(duration_ms=100, children=[("storage.lock_wait", 0, 90, 0)])
    server, child = request_spans(req)
    other = request_spans(Req(duration_ms=1))
    spans = spans_of(tmp_path, [record([server]), record(other), record([child])])
    requests = assemble(spans, TraceAssembler(settle_spans=2))
    (login,) = [r for r in requests if r.trace_id == req.trace_id]
    assert login.self_ns[Category.LOCK_WAIT] == 90 * MS


def test_traces_without_a_server_span_are_dropped_past_the_bound_and_counted(
    tmp_path: Path,
) -> None:
    assembler = TraceAssembler(max_open_traces=3)
    children = [request_spans(Req(children=[("token.sign", 0, 1, 0)]))[1] for _ in range(5)]
    spans = spans_of(tmp_path, [record([child]) for child in children])
    assert assemble(spans, assembler) == []
    assert assembler.counts.traces_without_server_span == 5  # 2 past the bound, 3 at the end


def spans_of(tmp_path: Path, records: list[dict[str, Any]]) -> list[Span]:
    """The spans of ``records`` written one per line, as the reader gives them."""
    path = tmp_path / "spans.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return list(iter_spans(path, ReadCounts()))


def test_tails_are_the_requests_a_latency_figure_is_made_of(tmp_path: Path) -> None:
    reqs = [Req(duration_ms=10 + i, start_ms=i) for i in range(100)]
    reqs += [Req(route="/api/items/{item_id}", method="GET", duration_ms=500)]
    reading = read_span_files([write_span_file(tmp_path / "spans.jsonl", reqs)])
    p95 = tail_breakdown(reading.requests, figure="p95", endpoint="POST /api/auth/login")
    assert p95 is not None and p95.tail.requests == 5 and p95.traced == 100
    assert p95.from_ns == 105 * MS
    maximum = tail_breakdown(reading.requests, figure="max", endpoint=None)
    assert maximum is not None and maximum.tail.requests == 1
    assert maximum.endpoints == (("GET /api/items/{item_id}", 1),)
    # The scenario names the parameter its own way: the same route.
    mean = tail_breakdown(reading.requests, figure="mean", endpoint="GET /api/items/{id}")
    assert mean is not None and mean.tail.requests == 1
    assert tail_breakdown(reading.requests, figure="p95", endpoint="GET /nowhere") is None
    assert [tail_figure(m) for m in ("p95_ms", "service_p99_ms", "max_ms", "error_rate")] == [
        "p95",
        "p99",
        "max",
        None,
    ]


# --- the reader ----------------------------------------------------------------------------------


def test_base64_ids_numeric_times_and_a_pretty_printed_export_are_read(tmp_path: Path) -> None:
    req = Req(duration_ms=100, children=[("storage.lock_hold", 10, 60, 0)])
    spans = request_spans(req)
    for span in spans:
        span["traceId"] = base64.b64encode(bytes.fromhex(span["traceId"])).decode()
        span["spanId"] = base64.b64encode(bytes.fromhex(span["spanId"])).decode()
        if span["parentSpanId"]:
            span["parentSpanId"] = base64.b64encode(bytes.fromhex(span["parentSpanId"])).decode()
        span["startTimeUnixNano"] = int(span["startTimeUnixNano"])
    spans[0]["kind"] = "SPAN_KIND_SERVER"
    path = tmp_path / "export.json"
    path.write_text(json.dumps(record(spans), indent=2))
    (request,) = read_span_files([path]).requests
    assert request.trace_id == req.trace_id
    assert request.self_ns[Category.LOCK_HOLD] == 50 * MS


def test_gzip_files_are_read_and_a_truncated_line_is_skipped_and_counted(tmp_path: Path) -> None:
    lines = [json.dumps(record(request_spans(Req()))) for _ in range(3)]
    path = tmp_path / "spans.jsonl.gz"
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n" + lines[0][:40]).encode()))
    reading = read_span_files([path])
    assert reading.breakdown.requests == 3
    assert reading.read.skipped_lines == 1


@pytest.mark.parametrize("content", ["", "not json at all\n", '{"resourceSpans": 3}\n'])
def test_a_file_with_no_record_is_refused_naming_it(tmp_path: Path, content: str) -> None:
    path = tmp_path / "spans.jsonl"
    path.write_text(content)
    with pytest.raises(InputError, match=str(path)):
        list(iter_spans(path, ReadCounts()))


def test_the_requests_of_one_run_are_those_that_ran_within_it(tmp_path: Path) -> None:
    reqs = [Req(start_ms=0), Req(start_ms=5000), Req(start_ms=8950), Req(start_ms=8000)]
    reading = read_span_files([write_span_file(tmp_path / "spans.jsonl", reqs)])
    origin = min(r.start_ns for r in reading.requests)
    during = ran_between(reading.requests, origin + 1000 * MS, origin + 9000 * MS)
    # Before the run (smoke's), and still running at its end, are left out.
    assert sorted(r.trace_id for r in during) == sorted([reqs[1].trace_id, reqs[3].trace_id])


@pytest.mark.parametrize("first", ["a log line, not JSON", '{"broken": '])
def test_a_foreign_first_line_does_not_hide_the_records_after_it(
    tmp_path: Path, first: str
) -> None:
    lines = [first, *(json.dumps(record(request_spans(Req()))) for _ in range(2))]
    path = tmp_path / "spans.jsonl"
    path.write_text("\n".join(lines) + "\n")
    reading = read_span_files([path])
    assert reading.breakdown.requests == 2
    assert reading.read.skipped_lines == 1

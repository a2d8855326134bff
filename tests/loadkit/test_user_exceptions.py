"""Exceptions raised by user code: counted by type and where (one traceback kept), merged from
workers, in the results, the summary and the gate; a run that sent nothing is invalid."""

from __future__ import annotations

import msgpack  # type: ignore[import-untyped]  # Locust's dependency, no stubs
import orjson
import pytest

from loadkit.engines.locust.plugin.worker_report import WorkerReport
from loadkit.gate.evaluate import UserExceptions, evaluate_criteria
from loadkit.measure.load_results import build_load_results
from loadkit.measure.recorder import LatencyRecorder
from loadkit.measure.results import GeneratorHealth, LoadResults, dump_results, parse_results
from loadkit.measure.user_exceptions import ExceptionTally, UserException
from loadkit.report.gate import render_gate_table
from loadkit.report.load import render_load_table
from tests.loadkit.crafted import crafted_load, criterion

START = 1_000_000.0
TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "/site-packages/locust/user/task.py", line 456, in execute_task\n'
    "    task(self.user)\n"
    '  File "/proj/csrf_form.py", line 14, in login\n'
    "    token = page.form.token\n"
    "AttributeError: 'NoneType' object has no attribute 'token'\n"
)
ATTRIBUTE = ("AttributeError", "csrf_form.py:14 in login")
KEY = ("KeyError", "shop.py:30 in checkout")


def tally_of(events: list[tuple[tuple[str, str], float]]) -> ExceptionTally:
    tally = ExceptionTally()
    for (type_name, where), at in events:
        tally.add(type_name=type_name, where=where, at=at, traceback=lambda: TRACEBACK)
    return tally


def test_counted_by_type_and_where_with_the_first_traceback_formatted_once() -> None:
    tally = ExceptionTally()
    formatted: list[int] = []

    def traceback() -> str:
        formatted.append(1)
        return TRACEBACK

    for at in (START + 1, START + 2, START + 3):
        tally.add(type_name="AttributeError", where=ATTRIBUTE[1], at=at, traceback=traceback)
    tally.add(type_name="KeyError", where=KEY[1], at=START + 4, traceback=lambda: "tb2")
    assert len(formatted) == 1  # a traceback per group, not per exception: the hot path stays
    assert tally.results(start=START) == [
        UserException(type="AttributeError", where=ATTRIBUTE[1], count=3, traceback=TRACEBACK,
                      first_s=1.0),
        UserException(type="KeyError", where=KEY[1], count=1, traceback="tb2", first_s=4.0),
    ]  # fmt: skip


def test_workers_drained_and_merged_add_up_to_one_process() -> None:
    events = [(ATTRIBUTE, START + 1.0), (KEY, START + 2.0), (ATTRIBUTE, START + 3.0)]
    later = [(ATTRIBUTE, START + 0.5), (KEY, START + 5.0)]
    alone = tally_of(sorted(events + later, key=lambda event: event[1]))
    worker_a, worker_b = tally_of(events), tally_of([])
    master = ExceptionTally()
    master.merge(worker_a.drain())
    for (type_name, where), at in later:
        worker_b.add(type_name=type_name, where=where, at=at, traceback=lambda: TRACEBACK)
    first_drain = worker_b.drain()
    master.merge(first_drain)
    worker_b.add(type_name="KeyError", where=KEY[1], at=START + 6, traceback=lambda: "unused")
    (second,) = worker_b.drain()
    assert second.count == 1 and second.traceback is None  # each traceback travels once
    master.merge([second])
    expected = [g.model_copy(update={"count": g.count + (g.type == "KeyError")}) for g in
                alone.results(start=START)]  # fmt: skip
    assert master.results(start=START) == expected
    assert master.results(start=START)[0].first_s == 0.5  # the earliest of every worker


def test_a_worker_report_carries_its_exceptions_through_locusts_transport() -> None:
    report = WorkerReport(exceptions=tally_of([(ATTRIBUTE, START)]).drain())
    wire = msgpack.loads(msgpack.dumps(report.to_wire()), raw=False, strict_map_key=False)
    assert WorkerReport.from_wire(wire) == report


def recorder(requests: int, *, in_flight: int = 0) -> LatencyRecorder:
    rec = LatencyRecorder(start=START)
    for i in range(requests):
        rec.record(endpoint="GET /ok", latency_s=0.01, end=START + 0.1 * (i + 1))
    rec.finish(end=START + 5.0, in_flight=in_flight)
    return rec


def built(requests: int, *, in_flight: int = 0, raised: int = 0, aborted: bool = False
          ) -> LoadResults:  # fmt: skip
    tally = tally_of([(ATTRIBUTE, START + 1.0)] * raised)
    return build_load_results(
        recorder(requests, in_flight=in_flight),
        target="http://127.0.0.1:1",
        config={},
        generator=GeneratorHealth(),
        aborted=aborted,
        exceptions=tally.results(start=START),
    )


def test_a_run_that_sent_nothing_is_invalid_naming_the_top_exception() -> None:
    results = built(0, in_flight=4, raised=120)  # users "busy in a task": busy raising
    assert [r.code for r in results.invalid_reasons] == ["no_requests"]
    detail = results.invalid_reasons[0].detail
    assert "120 exception(s) in user code" in detail
    assert "AttributeError at csrf_form.py:14 in login" in detail
    assert [r.code for r in built(0).invalid_reasons] == ["no_requests"]


def test_zero_requests_stays_as_before_when_frozen_or_aborted() -> None:
    frozen = built(0, in_flight=4)  # waiting the whole run on a frozen service: a measurement
    assert frozen.valid and frozen.longest_stall is not None
    interrupted = built(0, aborted=True)
    assert [r.code for r in interrupted.invalid_reasons] == ["aborted"]
    assert built(10, raised=3).valid  # exceptions alone do not make a run invalid: the gate


def test_the_results_file_keeps_them_and_older_files_read_without() -> None:
    results = built(10, raised=3)
    again = parse_results(orjson.loads(dump_results(results)), source="r.json")
    assert isinstance(again, LoadResults) and again.exceptions == results.exceptions
    assert again.exception_count == 3
    older = orjson.loads(dump_results(crafted_load()))
    del older["exceptions"]
    parsed = parse_results(older, source="old.json")
    assert isinstance(parsed, LoadResults) and parsed.exceptions == []


def test_the_summary_shows_type_where_count_and_the_end_of_the_first_traceback() -> None:
    deep = "Traceback (most recent call last):\n" + "".join(
        f'  File "/x/f{i}.py", line {i}, in f{i}\n    call()\n' for i in range(30)
    ) + "AttributeError: 'NoneType' object has no attribute 'token'\n"  # fmt: skip
    group = UserException(type="AttributeError", where=ATTRIBUTE[1], count=1234,
                          traceback=deep, first_s=0.2)  # fmt: skip
    text = render_load_table(built(10).model_copy(update={"exceptions": [group]}))
    assert "exceptions raised by user code: 1,234" in text
    assert "AttributeError  csrf_form.py:14 in login  1,234" in text
    assert "first AttributeError at csrf_form.py:14 in login:" in text
    assert "AttributeError: 'NoneType' object has no attribute 'token'" in text
    assert "f29.py" in text and "f0.py" not in text  # the innermost frames, cut marked
    assert "lines, in the results file)" in text


def test_the_seed_criterion_fails_a_run_with_exceptions_naming_the_top_one() -> None:
    seed = criterion("load.exceptions", "==", 0, name="no exceptions in user code")
    results = built(10, raised=3)
    report = evaluate_criteria([seed], [("load.json", results)])
    (verdict,) = report.verdicts
    assert (report.outcome, verdict.measured) == ("failed", 3.0)
    (evidence,) = verdict.evidence
    assert isinstance(evidence, UserExceptions) and evidence.total == 3
    text = render_gate_table(report)
    assert "AttributeError" in text and "csrf_form.py:14 in login" in text
    clean = evaluate_criteria([seed], [("load.json", built(10))])
    assert clean.outcome == "passed"


def test_a_run_without_requests_is_invalid_at_the_gate_too() -> None:
    seed = criterion("load.exceptions", "==", 0)
    report = evaluate_criteria([seed], [("load.json", built(0, raised=5))])
    assert report.outcome == "invalid"


@pytest.mark.parametrize("threshold", [0, 10])
def test_exceptions_is_a_load_metric_with_a_count(threshold: int) -> None:
    assert criterion("load.exceptions", "<=", threshold).metric_name == "exceptions"

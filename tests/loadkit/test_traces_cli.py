"""`loadkit traces` through typer's CliRunner (table, JSON, exit 2 naming the file), and the gate's
evidence when a latency criterion fails with spans handed in (what `loadkit accept` shows)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from loadkit.cli import app
from loadkit.gate.trace_evidence import wants_time_breakdowns, with_time_breakdowns
from loadkit.report.gate import render_gate_json, render_gate_markdown, render_gate_table
from loadkit.run.traces import read_span_files
from tests.loadkit.crafted import LOGIN, crafted_load, criterion, judge, only
from tests.loadkit.span_files import Req, write_span_file

runner = CliRunner()


def lock_bound_logins(tmp_path: Path) -> Path:
    """95 quick logins hashing a password, 5 waiting 1.7 s of 1.84 s for the storage lock."""
    quick = [
        Req(duration_ms=80, start_ms=i, children=[("password.verify", 5, 75, 0)]) for i in range(95)
    ]
    stuck = [
        Req(
            duration_ms=1840,
            start_ms=100 + i,
            children=[
                ("storage.lock_wait", 0, 1700, 0),
                ("storage.lock_hold", 1700, 1760, 0),
                ("password.verify", 1762, 1832, 0),
            ],
        )
        for i in range(5)
    ]
    failed = Req(route="/api/items", method="GET", status=503, error_kind="overloaded")
    return write_span_file(tmp_path / "spans.jsonl", [*quick, *stuck, failed])


def test_the_table_splits_each_endpoint_and_lists_the_slowest_traces(tmp_path: Path) -> None:
    path = lock_bound_logins(tmp_path)
    result = runner.invoke(app, ["traces", str(path), "--top", "2"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    login = next(line for line in lines if line.startswith(LOGIN))
    assert "101" not in login and " 100 " in login  # 100 logins, the items request apart
    slowest = next(line for line in lines if line.startswith("↳ slowest 1 %"))
    assert "1,840.0" in slowest and "92.4 % · 1,700.0" in slowest
    failed = [line for line in lines if line.startswith("↳ failed")]
    assert failed[0].split()[2] == "0" and failed[1].split()[2] == "1"  # logins, items
    traces = lines[lines.index(next(x for x in lines if x.startswith("Slowest traces"))) :]
    assert sum(LOGIN in line for line in traces) == 2
    assert "storage.lock_wait 1,700.0" in result.output


def test_json_carries_the_exact_sums(tmp_path: Path) -> None:
    result = runner.invoke(app, ["traces", str(lock_bound_logins(tmp_path)), "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["schema"] == "loadkit.traces/1"
    login = next(e for e in data["endpoints"] if e["endpoint"] == LOGIN)
    assert login["slowest"]["ms"]["lock_wait"] == 1700.0
    assert login["all"]["total_ms"] == 95 * 80 + 5 * 1840
    assert sum(login["all"]["ms"].values()) == login["all"]["total_ms"]
    assert data["slowest_traces"][0]["critical_path"][1]["category"] == "lock_wait"


def test_unreadable_input_or_no_server_span_is_exit_2_naming_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing.jsonl"
    result = runner.invoke(app, ["traces", str(missing)])
    assert result.exit_code == 2 and str(missing) in result.output
    garbage = tmp_path / "garbage.jsonl"
    garbage.write_text("hello\n")
    result = runner.invoke(app, ["traces", str(garbage)])
    assert result.exit_code == 2 and str(garbage) in result.output
    children_only = tmp_path / "children.jsonl"
    text = lock_bound_logins(tmp_path).read_text().replace('"kind": 2', '"kind": 1')
    children_only.write_text(text)
    result = runner.invoke(app, ["traces", str(children_only)])
    assert result.exit_code == 2 and "no SERVER span" in result.output
    assert str(children_only) in result.output
    result = runner.invoke(app, ["traces", str(garbage), "--format", "csv"])
    assert result.exit_code == 2 and "--format" in result.output


def test_a_failed_p95_names_where_the_time_of_its_slowest_five_percent_went(
    tmp_path: Path,
) -> None:
    requests = read_span_files([lock_bound_logins(tmp_path)]).requests
    p95 = criterion("load.p95_ms", "<", 1000, endpoint=LOGIN)
    report = judge(p95, crafted_load(latency_s=1.9))
    assert only(report).status == "failed" and wants_time_breakdowns(report)
    explained = with_time_breakdowns(report, requests)
    table = render_gate_table(explained)
    sentence = (
        f"P95 {LOGIN} 1.84 s: 92 % waiting for the storage lock (the slowest 5 %: 5 of 100 "
        "traced requests, from their SERVER spans)"
    )
    assert f"Where the time went: {sentence}" in table
    assert any(line.split()[:4] == ["lock", "wait", "92.4", "%"] for line in table.splitlines())
    assert sentence in render_gate_markdown(explained)
    verdict = json.loads(render_gate_json(explained))["criteria"][0]
    assert verdict["evidence"][0]["rows"][0] == ["lock wait", "92.4 %", 1700.0]
    # The gate's own evidence stays, after it.
    assert "Slowest endpoints by p95_ms" in table


def test_passed_or_non_latency_criteria_get_no_time_breakdown(tmp_path: Path) -> None:
    requests = read_span_files([lock_bound_logins(tmp_path)]).requests
    passed = judge(criterion("load.p95_ms", "<", 5000), crafted_load())
    errors = judge(criterion("load.error_rate", "<", 0.01), crafted_load())
    for report in (passed, errors):
        assert not wants_time_breakdowns(report)
        assert with_time_breakdowns(report, requests) == report
    # An overall max: the slowest request of all, and which endpoint it was.
    maximum = judge(criterion("load.max_ms", "<", 10), crafted_load())
    table = render_gate_table(with_time_breakdowns(maximum, requests))
    assert "MAX all endpoints 1.84 s: 92 % waiting for the storage lock" in table
    assert "Endpoints of those requests" in table

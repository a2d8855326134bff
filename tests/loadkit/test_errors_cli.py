"""`loadkit errors` through typer's CliRunner: formats, inputs (files, gzip, stdin, --results),
and exit codes (0 with a report, 2 for what cannot be read or holds no service log line)."""

from __future__ import annotations

import gzip
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from loadkit.cli import app
from loadkit.measure.results import LockAuditResults, write_results
from tests.loadkit.crafted_errors import LOGIN, T0, client_results, request

runner = CliRunner()


def log_bytes(lines: list[dict[str, Any] | bytes]) -> bytes:
    return b"".join(
        (line if isinstance(line, bytes) else orjson.dumps(line)) + b"\n" for line in lines
    )


LINES: list[dict[str, Any] | bytes] = [
    b"INFO:     Uvicorn running on http://127.0.0.1:8000 (Press CTRL+C to quit)",
    *[
        request("/api/auth/login", at=i, status=503, kind="storage_lock_timeout", trace_id=f"L{i}")
        for i in range(7)
    ],
    *[request("/api/auth/login", at=i, status=401, kind="invalid_credentials") for i in range(3)],
    *[request("/api/items", method="GET", at=i) for i in range(10)],
    b'{"truncated": ',
]


@pytest.fixture
def log_file(tmp_path: Path) -> Path:
    path = tmp_path / "service.log"
    path.write_bytes(log_bytes(LINES))
    return path


def test_table_names_the_top_offenders_and_counts_skipped_lines(log_file: Path) -> None:
    result = runner.invoke(app, ["errors", str(log_file)])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "Requests seen 20 · errors 10 · error rate 50.0 %" in out
    assert "skipped 2 not JSON" in out
    top = out.split("Top 2 offenders")[1].splitlines()
    assert "POST /api/auth/login" in top[3] and "storage_lock_timeout" in top[3]
    assert " 7 " in top[3] and "70.0 %" in top[3] and "L0" in top[3]
    assert "invalid_credentials" in top[4]


def test_stdin_is_read_when_no_file_is_given_or_with_dash() -> None:
    data = log_bytes(LINES)
    for args in (["errors"], ["errors", "-"]):
        result = runner.invoke(app, args, input=data)
        assert result.exit_code == 0, result.output
        assert "stdin: 22 lines" in result.stdout


def test_gzip_files_and_gzip_on_stdin(tmp_path: Path) -> None:
    path = tmp_path / "service.log.gz"
    path.write_bytes(gzip.compress(log_bytes(LINES)))
    result = runner.invoke(app, ["errors", str(path), "--format", "json"])
    assert result.exit_code == 0, result.output
    assert orjson.loads(result.stdout)["totals"]["errors"] == 10
    result = runner.invoke(app, ["errors", "--format", "json"], input=path.read_bytes())
    assert result.exit_code == 0, result.output
    assert orjson.loads(result.stdout)["totals"]["errors"] == 10


def test_several_files_add_up(log_file: Path, tmp_path: Path) -> None:
    second = tmp_path / "service.log.1"
    second.write_bytes(gzip.compress(log_bytes(LINES)))
    result = runner.invoke(app, ["errors", str(log_file), str(second), "--format", "json"])
    assert result.exit_code == 0, result.output
    report = orjson.loads(result.stdout)
    assert report["totals"]["errors"] == 20
    assert report["inputs"]["not_json"] == 4


def test_json_report(log_file: Path) -> None:
    result = runner.invoke(app, ["errors", str(log_file), "--format", "json", "--top", "1"])
    assert result.exit_code == 0, result.output
    report = orjson.loads(result.stdout)
    assert report["schema"] == "loadkit.errors/1"
    assert [(k["kind"], k["count"]) for k in report["by_kind"]] == [
        ("storage_lock_timeout", 7),
        ("invalid_credentials", 3),
    ]
    assert len(report["top"]) == 1
    assert report["top"][0]["example_trace_id"] == "L0"
    assert report["command"].startswith("loadkit errors ")


def test_markdown_out_is_the_runbook_page(log_file: Path, tmp_path: Path) -> None:
    page = tmp_path / "docs" / "errors_breakdown.md"
    result = runner.invoke(
        app, ["errors", str(log_file), "--format", "markdown", "--out", str(page)]
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert f"wrote {page}" in result.stderr
    text = page.read_text()
    assert text.startswith("# Error breakdown\n")
    assert f"by `loadkit errors {log_file} --out {page} --top 5 --format markdown`" in text
    assert "## Top 2 offenders" in text
    assert re.search(r"\|\s+1 \| POST /api/auth/login\s+\| storage_lock_timeout\s+\|\s+7 \|", text)
    assert "## What each kind asks of you" in text
    assert "**storage_lock_timeout**" in text


def test_since_and_until_filter(log_file: Path) -> None:
    since = datetime.fromtimestamp(T0 + 5, tz=UTC).isoformat()
    result = runner.invoke(app, ["errors", str(log_file), "--since", since, "--format", "json"])
    assert result.exit_code == 0, result.output
    report = orjson.loads(result.stdout)
    assert report["totals"]["errors"] == 2  # storage_lock_timeout at 5 and 6 s
    assert report["inputs"]["outside_window"] == 13


def test_a_log_without_errors_is_a_clean_report(tmp_path: Path) -> None:
    path = tmp_path / "ok.log"
    path.write_bytes(log_bytes([request("/api/items", method="GET", at=i) for i in range(3)]))
    result = runner.invoke(app, ["errors", str(path)])
    assert result.exit_code == 0, result.output
    assert "No errors in the log." in result.stdout


def test_results_join_the_clients_view(log_file: Path, tmp_path: Path) -> None:
    results = client_results(
        [(LOGIN, "storage_lock_timeout", 503, f"L{i}") for i in range(7)]
        + [(LOGIN, "timeout", None, None) for _ in range(4)],
        requests=40,
    )
    path = write_results(tmp_path / "load.json", results)
    result = runner.invoke(app, ["errors", str(log_file), "--results", str(path)])
    assert result.exit_code == 0, result.output
    assert "Client (1 run(s)" in result.stdout
    assert "4 client errors were not logged by the server as such" in result.stdout
    assert "timeout (client-side)" in result.stdout
    # --results alone: the client's view with no log is fine too.
    result = runner.invoke(app, ["errors", "--results", str(path), "--format", "json"])
    assert result.exit_code == 0, result.output
    client = orjson.loads(result.stdout)["client"]
    assert (client["errors"], client["joined"]) == (11, False)
    result = runner.invoke(app, ["errors", "--results", str(path)])
    assert "No service log given (--results only): the client's view alone." in result.stdout
    assert "client only" not in result.stdout


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty, no log lines to read"),
        (b"INFO: hello\n" + b'{"level": "info"}\n', "no service log lines found (2 line(s) read"),
    ],
    ids=["empty", "foreign-only"],
)
def test_empty_input_is_a_clear_message_and_exit_2(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "service.log"
    path.write_bytes(content)
    result = runner.invoke(app, ["errors", str(path)])
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert "Traceback" not in result.output
    result = runner.invoke(app, ["errors"], input=content)
    assert result.exit_code == 2, result.output
    assert "stdin:" in result.stderr


def test_unreadable_inputs_exit_2_naming_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing.log"
    result = runner.invoke(app, ["errors", str(missing)])
    assert result.exit_code == 2
    assert f"{missing}: no such log file" in result.stderr

    corrupt = tmp_path / "cut.log.gz"
    corrupt.write_bytes(gzip.compress(log_bytes(LINES * 50))[:200])
    result = runner.invoke(app, ["errors", str(corrupt)])
    assert result.exit_code == 2
    assert "cut.log.gz: cannot read past line" in result.stderr

    result = runner.invoke(app, ["errors", "--results", str(tmp_path / "none.json")])
    assert result.exit_code == 2
    assert "no such results file" in result.stderr


def test_bad_options_exit_2(log_file: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["errors", str(log_file), "--format", "html"])
    assert result.exit_code == 2
    assert "--format 'html' is not known" in result.stderr
    result = runner.invoke(app, ["errors", str(log_file), "--since", "last tuesday"])
    assert result.exit_code == 2
    assert "--since 'last tuesday': not a time" in result.stderr
    result = runner.invoke(app, ["errors", str(log_file), "--top", "0"])
    assert result.exit_code == 2
    audit = LockAuditResults(
        target="service", started_at=datetime.now(tz=UTC), duration_s=1.0, files_checked=1,
        violations=0,
    )  # fmt: skip
    path = write_results(tmp_path / "audit.json", audit)
    result = runner.invoke(app, ["errors", str(log_file), "--results", str(path)])
    assert result.exit_code == 2
    assert "lock-audit results file" in result.stderr


def test_a_window_that_keeps_nothing_says_so(log_file: Path) -> None:
    result = runner.invoke(app, ["errors", str(log_file), "--since", "2030-01-01T00:00:00Z"])
    assert result.exit_code == 2
    assert "none of the 20 service log lines falls between --since and --until" in result.stderr


def test_raw_paths_do_not_flood_the_table(tmp_path: Path) -> None:
    # A log whose endpoints are raw paths: the table shows the worst, JSON keeps them all.
    path = tmp_path / "raw.log"
    path.write_bytes(
        log_bytes(
            [
                request(f"/raw/{i}", method="GET", at=i, status=404, kind="not_found")
                for i in range(60)
            ]
        )
    )
    result = runner.invoke(app, ["errors", str(path)])
    assert result.exit_code == 0, result.output
    assert "… and 20 more endpoints (all of them in --format json)" in result.stdout
    result = runner.invoke(app, ["errors", str(path), "--format", "json"])
    assert len(orjson.loads(result.stdout)["by_endpoint"]) == 60


def test_the_runner_returns_the_report_and_prints_nothing(
    log_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from loadkit.run.errors import run_errors

    page = tmp_path / "errors.json"
    report = run_errors(
        log_files=[str(log_file)],
        results=[],
        since=None,
        until=None,
        top=1,
        fmt="json",
        out=page,
    )
    assert report.written_to == page and page.read_text() == report.text
    assert (report.breakdown.totals.requests, report.breakdown.totals.errors) == (20, 10)
    assert [(o.endpoint, o.kind) for o in report.breakdown.top] == [
        ("POST /api/auth/login", "storage_lock_timeout")
    ]
    assert orjson.loads(report.text)["command"] == (
        f"loadkit errors {log_file} --out {page} --top 1 --format json"
    )
    assert capsys.readouterr() == ("", "")

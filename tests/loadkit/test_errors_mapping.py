"""`loadkit errors` beyond the bundled service's log: a [logs] field mapping for another JSON log,
the nginx combined preset, and the default left as it was.

Logs are generated here with known counts; the top offenders must come out exactly.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from loadkit.cli import app
from loadkit.config import LogsConfig, parse_config
from loadkit.exceptions import ConfigError
from loadkit.logs.breakdown import BreakdownBuilder, ErrorBreakdown
from loadkit.logs.formats import BUNDLED, NGINX, LogFormat, log_format
from loadkit.logs.nginx import time_local_epoch
from loadkit.logs.paths import endpoint_path
from loadkit.logs.scan import LogSource
from loadkit.logs.status_kinds import status_kind
from tests.loadkit.crafted_errors import request

runner = CliRunner()

MAPPING_TOML = """
[logs]
ts = "time"
method = "verb"
path = "req.path"
status = "res.status"
kind = "err.code"
trace_id = "trace"
duration_s = "latency_s"
"""


def breakdown(data: bytes, fmt: LogFormat, *, top: int = 10) -> ErrorBreakdown:
    source = LogSource("-", stdin=io.BytesIO(data), reader=fmt.reader)
    builder = BreakdownBuilder()
    builder.add_all(source)
    return builder.result(top=top, counts=source.counts, sources=["-"], log_format=fmt.name)


def offenders(result: ErrorBreakdown) -> list[tuple[str, str, int, dict[str, int]]]:
    return [(row.endpoint, row.kind, row.count, row.status_codes) for row in result.top]


# --- a JSON log of another service -----------------------------------------------------------


def mapped_line(
    verb: str, path: str, status: int | str, *, code: str | None = None, at: int = 0
) -> bytes:
    line: dict[str, Any] = {
        "time": f"2026-12-02T09:00:{at:02d}Z",
        "verb": verb,
        "req": {"path": path},
        "res": {"status": status},
        "trace": f"t{at}",
        "latency_s": 0.25,
    }
    if code is not None:
        line["err"] = {"code": code}
    return orjson.dumps(line) + b"\n"


def mapped_log() -> bytes:
    """9 × PUT /orders/{id} stock_conflict (409), 5 × GET /orders/{id} 502 with no code,
    3 × POST /orders 422 payment_declined, 20 successes, a start-up line and a text line."""
    lines = [b'{"msg": "listening", "port": 8080}\n', b"panic: not json\n"]
    lines += [
        mapped_line("PUT", f"/orders/{i}", 409, code="stock_conflict", at=i) for i in range(9)
    ]
    lines += [mapped_line("GET", f"/orders/{1000 + i}?full=1", "502", at=i) for i in range(5)]
    lines += [mapped_line("POST", "/orders", 422, code="payment_declined") for _ in range(3)]
    lines += [mapped_line("GET", f"/orders/{i}", 200) for i in range(20)]
    return b"".join(lines)


def mapping_format() -> LogFormat:
    return log_format(parse_config(_toml(MAPPING_TOML), source="t").logs)


def _toml(text: str) -> dict[str, Any]:
    import tomllib

    return tomllib.loads(text)


def test_a_mapped_json_log_gives_its_top_offenders_with_ids_folded() -> None:
    result = breakdown(mapped_log(), mapping_format())
    assert offenders(result) == [
        ("PUT /orders/{id}", "stock_conflict", 9, {"409": 9}),
        ("GET /orders/{id}", "bad_gateway", 5, {"502": 5}),  # no code: the status says it
        ("POST /orders", "payment_declined", 3, {"422": 3}),
    ]
    assert (result.totals.requests, result.totals.errors) == (37, 17)
    assert (result.inputs.foreign, result.inputs.not_json) == (1, 1)
    top = result.top[0]
    assert top.example_trace_id == "t0" and top.p95_ms == pytest.approx(250, rel=0.01)
    assert top.first_seen == "2026-12-02T09:00:00.000Z"
    assert top.last_seen == "2026-12-02T09:00:08.000Z"


def test_a_mapping_with_a_route_field_keeps_it_and_reads_flat_dotted_keys() -> None:
    logs = LogsConfig(
        endpoint="route", status="http.status", kind="kind", duration_ms="ms", ts_ms="time"
    )
    lines = [
        {
            "route": "/v1/carts/{cart}",
            "http.status": 503,
            "kind": "overloaded",
            "ms": "12.5",
            "time": 1_764_666_000_250,  # epoch milliseconds, as pino logs them
        },
        {"route": "/v1/carts/{cart}", "http": {"status": 200}},
        {"route": "/v1/carts/{cart}"},  # a request line without its status: incomplete
    ]
    result = breakdown(b"".join(orjson.dumps(line) + b"\n" for line in lines), log_format(logs))
    assert offenders(result) == [("/v1/carts/{cart}", "overloaded", 1, {"503": 1})]
    assert (result.totals.requests, result.inputs.incomplete) == (2, 1)
    assert result.top[0].first_seen == "2025-12-02T09:00:00.250Z"
    assert result.top[0].max_ms == pytest.approx(12.5, rel=0.01)


def test_nginx_json_log_format_reads_through_a_mapping() -> None:
    """nginx's ``log_format … escape=json`` writes every variable as a string."""
    logs = LogsConfig(
        ts="time_iso8601",
        method="request_method",
        path="request_uri",
        status="status",
        trace_id="request_id",
        duration_s="request_time",
    )
    line = (
        '{"time_iso8601":"2026-12-02T10:00:00+01:00","request_method":"GET",'
        '"request_uri":"/api/items/5?x=1","status":"502","request_time":"0.031",'
        '"request_id":"4bf92f3577b34da6a3ce929d0e0e4736"}\n'
    )
    result = breakdown(line.encode() * 3, log_format(logs))
    assert offenders(result) == [("GET /api/items/{id}", "bad_gateway", 3, {"502": 3})]
    top = result.top[0]
    assert top.first_seen == "2026-12-02T09:00:00.000Z"
    assert top.example_trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert top.max_ms == pytest.approx(31, rel=0.01)


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[logs]\nstatus = "s"\npath = "p"\nstatuss = "x"', "logs.statuss: unknown key"),
        ('[logs]\npreset = "apache"', "logs.preset: Input should be 'loadkit' or 'nginx'"),
        ('[logs]\npreset = "nginx"\nstatus = "s"', "preset = 'nginx' and field keys (status)"),
        ('[logs]\npath = "req.path"', 'a field mapping needs status = "<status code field>"'),
        ('[logs]\nstatus = "s"', 'needs endpoint = "<route field>" or path = "<path field>"'),
        ('[logs]\nstatus = "s"\npath = "p"\nendpoint = "e"', "endpoint and path both given"),
        ('[logs]\nstatus = "s"\npath = "p"\nduration_ms = "a"\nduration_s = "b"', "both given"),
        ('[logs]\nstatus = "s"\npath = "p"\nts = "a"\nts_ms = "b"', "ts and ts_ms both given"),
        ('[logs]\nstatus = "res..status"\npath = "p"', "logs.status: 'res..status' is not a"),
        ("[logs]\nstatus = 200\npath = 'p'", "logs.status: Input should be a valid string"),
    ],
)
def test_a_bad_logs_section_is_refused_naming_the_key(toml: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(_toml(toml), source="acceptance.toml")
    assert message in str(caught.value)


# --- nginx combined ----------------------------------------------------------------------------

AGENT = '"-" "Mozilla/5.0 (X11; Linux x86_64) curl/8.5"'


def nginx_line(request: str, status: int, *, second: int = 0, zone: str = "+0000") -> bytes:
    return (
        f"203.0.113.7 - - [02/Dec/2026:09:00:{second:02d} {zone}] "
        f'"{request}" {status} 157 {AGENT}\n'
    ).encode()


UUID = "9f1c2a3b-1111-2222-3333-444455556666"


def nginx_log() -> bytes:
    """12 × GET /api/items/{id} 502 (numbers, UUIDs, query strings), 6 × DELETE
    /api/users/{id}/sessions 504 (hex ids), 5 × POST /api/login 499 (one wrapped by Docker),
    2 × 418 (client_error), 1 garbled request line (400), 30 successes, 2 lines that are not
    nginx's, a blank one."""
    lines = [nginx_line(f"GET /api/items/{i} HTTP/1.1", 502, second=i) for i in range(8)]
    lines += [nginx_line(f"GET /api/items/{UUID}?page=2 HTTP/2.0", 502) for _ in range(4)]
    lines += [
        nginx_line(f"DELETE /api/users/{i:024x}/sessions HTTP/1.1", 504, second=30)
        for i in range(6)
    ]
    lines += [nginx_line("POST /api/login HTTP/1.1", 499) for _ in range(4)]
    lines += [nginx_line("GET /teapot HTTP/1.1", 418) for _ in range(2)]
    lines += [nginx_line("\\x16\\x03\\x01\\x02\\x00", 400)]
    lines += [nginx_line(f"GET /api/items?page={i} HTTP/1.1", 200) for i in range(30)]
    lines += [b"2026/12/02 09:00:01 [error] 7#7: *1 upstream prematurely closed\n", b"{}\n", b"\n"]
    # Docker's json-file driver wraps each line of the container's stdout.
    wrapped = nginx_line("POST /api/login HTTP/1.1", 499).decode()
    lines += [orjson.dumps({"log": wrapped, "stream": "stdout"}) + b"\n"]
    return b"".join(lines)


def test_the_nginx_preset_gives_the_top_offenders_with_kinds_from_the_status() -> None:
    result = breakdown(nginx_log(), NGINX)
    assert offenders(result) == [
        ("GET /api/items/{id}", "bad_gateway", 12, {"502": 12}),
        ("DELETE /api/users/{id}/sessions", "gateway_timeout", 6, {"504": 6}),
        ("POST /api/login", "client_closed_request", 5, {"499": 5}),
        ("GET /teapot", "client_error", 2, {"418": 2}),
        ("(unparsed request line)", "bad_request", 1, {"400": 1}),
    ]
    assert (result.totals.requests, result.totals.errors) == (56, 26)
    inputs = result.inputs
    assert (inputs.lines, inputs.log_lines, inputs.unmatched, inputs.blank) == (59, 56, 2, 1)
    assert result.top[0].first_seen == "2026-12-02T09:00:00.000Z"
    assert result.top[1].last_seen == "2026-12-02T09:00:30.000Z"
    by_endpoint = {row.endpoint: row.requests for row in result.by_endpoint}
    assert by_endpoint["GET /api/items"] == 30  # the query string dropped


def test_time_local_honours_its_offset_and_refuses_impossible_dates() -> None:
    utc = time_local_epoch(b"02/Dec/2026:09:00:00 +0000")
    assert time_local_epoch(b"02/Dec/2026:10:00:00 +0100") == utc
    assert time_local_epoch(b"02/Dec/2026:04:30:00 -0430") == utc
    assert time_local_epoch(b"31/Feb/2026:09:00:00 +0000") is None
    assert time_local_epoch(b"02/Foo/2026:09:00:00 +0000") is None


@pytest.mark.parametrize(
    ("target", "endpoint"),
    [
        ("/api/items/42", "/api/items/{id}"),
        ("/api/items/42/", "/api/items/{id}/"),
        ("/a/1/b/2?x=3#frag", "/a/{id}/b/{id}"),
        (f"/files/{UUID.upper()}", "/files/{id}"),
        ("/objects/5f2b8c1e9d4a7b6c3e2f1a0b", "/objects/{id}"),
        ("/v2/items/abc123", "/v2/items/abc123"),  # a slug, not an id
        ("/deadbeef", "/deadbeef"),  # short hex is a word as often as an id
        ("http://example.com/api/items/7?q=1", "/api/items/{id}"),
        ("/", "/"),
    ],
)
def test_paths_fold_ids_and_drop_the_query(target: str, endpoint: str) -> None:
    assert endpoint_path(target) == endpoint


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (502, "bad_gateway"),
        (503, "service_unavailable"),
        (504, "gateway_timeout"),
        (499, "client_closed_request"),
        (429, "rate_limited"),
        (418, "client_error"),
        (599, "server_error"),
        (302, None),
    ],
)
def test_the_kind_of_a_status(status: int, kind: str | None) -> None:
    assert status_kind(status) == kind


# --- the default, unchanged ---------------------------------------------------------------------


def test_without_logs_or_preset_the_service_log_is_read_as_before() -> None:
    assert log_format(None) is BUNDLED
    assert log_format(LogsConfig()) is BUNDLED
    assert log_format(LogsConfig(preset="loadkit")) is BUNDLED
    assert log_format(LogsConfig(preset="loadkit"), preset="nginx") is NGINX
    assert log_format(parse_config({}, source="t").logs) is BUNDLED
    line = request("/api/auth/login", status=503, kind="storage_lock_timeout")
    result = breakdown(orjson.dumps(line) + b"\n" + nginx_log(), BUNDLED)
    assert offenders(result) == [("POST /api/auth/login", "storage_lock_timeout", 1, {"503": 1})]
    inputs = result.inputs
    assert (inputs.not_json, inputs.foreign, inputs.unmatched) == (56, 2, 0)
    assert inputs.log_format == "loadkit"


# --- the command --------------------------------------------------------------------------------


def test_cli_reads_the_logs_section_of_config(tmp_path: Path) -> None:
    config = tmp_path / "acceptance.toml"
    config.write_text(MAPPING_TOML)
    log = tmp_path / "orders.log"
    log.write_bytes(mapped_log())
    result = runner.invoke(app, ["errors", str(log), "--config", str(config), "--format", "json"])
    assert result.exit_code == 0, result.output
    report = orjson.loads(result.stdout)
    top = [(row["endpoint"], row["kind"], row["count"]) for row in report["top"]]
    assert top[:2] == [
        ("PUT /orders/{id}", "stock_conflict", 9),
        ("GET /orders/{id}", "bad_gateway", 5),
    ]
    assert report["inputs"]["log_format"] == "mapping"
    assert f"--config {config}" in report["command"]
    # --preset wins over [logs]: read as nginx, this JSON log holds no access line.
    result = runner.invoke(app, ["errors", str(log), "--config", str(config), "--preset", "nginx"])
    assert result.exit_code == 2
    assert "no nginx access log lines found (39 line(s) read, 39 not in" in result.stderr


def test_cli_preset_nginx_and_its_usage_errors(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    log.write_bytes(nginx_log())
    result = runner.invoke(app, ["errors", str(log), "--preset", "nginx", "--top", "2"])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "56 access log lines; skipped 2 not in nginx's combined format" in out
    assert "Requests seen 56 · errors 26 · error rate 46.4 %" in out
    top = out.split("Top 2 offenders")[1].splitlines()
    assert "GET /api/items/{id}" in top[3] and "bad_gateway" in top[3] and " 12 " in top[3]
    assert "DELETE /api/users/{id}/sessions" in top[4] and "gateway_timeout" in top[4]
    assert "Database pool" not in out
    result = runner.invoke(app, ["errors", str(log), "--preset", "apache"])
    assert result.exit_code == 2
    assert "--preset 'apache' is not known; use one of loadkit, nginx" in result.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text('[logs]\npreset = "nginx"\nstatus = "s"\n')
    result = runner.invoke(app, ["errors", str(log), "--config", str(bad)])
    assert result.exit_code == 2
    assert "logs: " in result.stderr and "preset = 'nginx' and field keys (status)" in result.stderr

"""The log reader: the service's JSON found in prefixed and enveloped lines, gzip, stdin, and
every line it cannot use counted, never fatal."""

from __future__ import annotations

import gzip
import io
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from loadkit.exceptions import InputError
from loadkit.logs.scan import (
    FOREIGN,
    NOT_JSON,
    LogSource,
    ScanCounts,
    bounded_lines,
    find_log_object,
    iter_log_objects,
    sources_from,
)

LINE = {
    "method": "POST",
    "endpoint": "/api/auth/login",
    "status_code": 503,
    "error_kind": "storage_lock_timeout",
    "duration_ms": 2001.5,
    "event": "request",
    "trace_id": "abc123",
    "level": "error",
    "ts": "2026-11-28T12:00:01.250000Z",
}
RAW = orjson.dumps(LINE)


def scan(lines: list[bytes]) -> tuple[list[dict[str, object]], ScanCounts]:
    counts = ScanCounts()
    return list(iter_log_objects(lines, counts)), counts


@pytest.mark.parametrize(
    "line",
    [
        RAW + b"\n",
        # kubectl logs --timestamps
        b"2026-11-28T12:00:01.250123456Z " + RAW + b"\n",
        # CRI (containerd) log file format
        b"2026-11-28T12:00:01.250123456Z stdout F " + RAW + b"\n",
        # syslog / journald short output
        b"Nov 28 12:00:01 web-1 engines[812]: " + RAW + b"\n",
        # a prefix that itself holds a brace, and a suffix after the object
        b"[{worker-1}] " + RAW + b" (truncated=false)\n",
        # Docker json-file: the line is a JSON string inside the envelope
        orjson.dumps({"log": RAW.decode() + "\n", "stream": "stdout", "time": "x"}) + b"\n",
        # CloudWatch / Loki style: under "message", as a string or as an object
        orjson.dumps({"message": RAW.decode(), "@timestamp": "x"}) + b"\n",
        orjson.dumps({"message": LINE, "host": "web-1"}) + b"\n",
        # GCP: jsonPayload
        orjson.dumps({"jsonPayload": LINE, "severity": "ERROR"}) + b"\n",
        # envelope in an envelope (Fluent Bit into CloudWatch)
        orjson.dumps({"message": orjson.dumps({"log": RAW.decode()}).decode()}) + b"\n",
    ],
    ids=[
        "plain",
        "kubectl-timestamps",
        "cri",
        "syslog",
        "brace-prefix-and-suffix",
        "docker",
        "message-string",
        "message-object",
        "gcp",
        "nested",
    ],
)
def test_the_service_object_is_found_wherever_the_platform_put_it(line: bytes) -> None:
    objects, counts = scan([line])
    assert objects == [LINE]
    assert (counts.lines, counts.log_lines, counts.skipped) == (1, 1, 0)


def test_malformed_and_foreign_lines_are_counted_and_skipped() -> None:
    lines = [
        RAW + b"\n",
        b"INFO:     Started server process [6185]\n",  # uvicorn's own text
        b'{"method": "GET", "endpoint": "/x", "status_co\n',  # truncated JSON
        b"{not json at all}\n",
        b'{"level": "info", "msg": "no event here"}\n',  # JSON, not the service's
        b'{"ts": "2026-11-28T12:00:00Z", "nested": {"no": "event"}}\n',
        b"\n",
        b"   \n",
        RAW + b"\n",
    ]
    objects, counts = scan(lines)
    assert len(objects) == 2
    assert counts.lines == 9
    assert counts.log_lines == 2
    assert counts.blank == 2
    assert counts.not_json == 3
    assert counts.foreign == 2
    assert counts.skipped == 5


def test_find_log_object_says_why_it_found_nothing() -> None:
    assert find_log_object(b"plain text") == NOT_JSON
    assert find_log_object(b"{broken") == NOT_JSON
    assert find_log_object(b'{"a": 1}') == FOREIGN
    assert find_log_object(b'{"log": "just text"}') == FOREIGN


def test_other_service_events_are_log_lines_too() -> None:
    started = {"event": "service_started", "level": "info", "ts": "2026-11-28T12:00:00Z"}
    objects, counts = scan([orjson.dumps(started)])
    assert objects == [started]
    assert counts.log_lines == 1


def _write_log(path: Path, lines: list[bytes], *, compress: bool) -> Path:
    data = b"".join(lines)
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


@pytest.mark.parametrize("name", ["service.log.gz", "service.log.1"])
def test_gzip_is_recognised_by_its_magic_bytes_not_its_name(tmp_path: Path, name: str) -> None:
    path = _write_log(tmp_path / name, [RAW + b"\n", b"noise\n", RAW + b"\n"], compress=True)
    source = LogSource(str(path))
    assert list(source) == [LINE, LINE]
    assert (source.counts.lines, source.counts.not_json) == (3, 1)


def test_stdin_is_read_plain_or_gzipped() -> None:
    plain = LogSource("-", stdin=io.BytesIO(RAW + b"\n" + RAW + b"\n"))
    assert len(list(plain)) == 2
    zipped = LogSource("-", stdin=io.BytesIO(gzip.compress(RAW + b"\n")))
    assert list(zipped) == [LINE]


def test_a_missing_file_is_an_input_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"nope\.log: no such log file"):
        list(LogSource(str(tmp_path / "nope.log")))
    with pytest.raises(InputError, match="is a directory"):
        list(LogSource(str(tmp_path)))


def test_a_corrupt_gzip_file_is_an_input_error_naming_it(tmp_path: Path) -> None:
    data = gzip.compress(b"".join([RAW + b"\n"] * 1000))
    path = tmp_path / "cut.log.gz"
    path.write_bytes(data[: len(data) // 2])  # truncated mid-stream
    with pytest.raises(InputError, match=r"cut\.log\.gz: cannot read past line"):
        list(LogSource(str(path)))


def test_stdin_can_be_named_only_once() -> None:
    with pytest.raises(InputError, match="more than once"):
        sources_from(["-", "a.log", "-"])


def test_reading_is_streaming_one_line_at_a_time() -> None:
    # A generator of lines is consumed lazily: the reader never materialises the log.
    produced = 0

    def lines() -> Iterator[bytes]:
        nonlocal produced
        for _ in range(1000):
            produced += 1
            yield RAW + b"\n"

    counts = ScanCounts()
    iterator = iter_log_objects(lines(), counts)
    next(iterator)
    assert produced == 1


def test_overlong_lines_are_skipped_without_being_held_whole() -> None:
    limit = len(RAW) + 1  # the service's line and its newline just fit
    data = RAW + b"\n" + b"{" + b"y" * (5 * limit) + b"\n" + b"text\n" + RAW + b"\n"
    lines = list(bounded_lines(io.BytesIO(data), limit=limit))
    assert len(lines) == 4
    assert max(len(line) for line in lines) <= limit
    objects, counts = scan(lines)
    assert objects == [LINE, LINE]
    assert counts.not_json == 2

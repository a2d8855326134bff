"""The streaming reader of span files: OTLP-JSON ``ExportTraceServiceRequest`` records.

What it reads: the bundled service's span file (``ENGINES_TRACE_FILE``: one record per line) and
an OTLP-JSON export from a collector (one record per line, or one pretty-printed record per
file), gzip too. Each record is ``{"resourceSpans": [{"scopeSpans": [{"spans": [...]}]}]}``; the
OTLP/JSON encoding writes ids in hex and 64-bit integers as strings, where protobuf's own JSON
mapping (``google.protobuf.json_format``) would want base64 ids, so the few fields used here are
read by hand: integers as strings or numbers, ids in hex or base64.

Memory stays flat: one line (or, for a file that is one pretty-printed record, that record) at a
time, and each span keeps only the attributes the breakdown needs. A line that is not JSON, or
JSON that is not a record, is skipped and counted (a truncated last line from a killed service
must not hide the rest); a file with nothing but such lines is an ``InputError`` naming it.
"""

from __future__ import annotations

import base64
import binascii
import gzip
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import orjson

from loadkit.exceptions import InputError

SERVER_KIND = 2
"""OTLP's SPAN_KIND_SERVER (also written ``"SPAN_KIND_SERVER"`` by some exporters)."""
_KIND_NAMES = {
    "SPAN_KIND_UNSPECIFIED": 0,
    "SPAN_KIND_INTERNAL": 1,
    "SPAN_KIND_SERVER": 2,
    "SPAN_KIND_CLIENT": 3,
    "SPAN_KIND_PRODUCER": 4,
    "SPAN_KIND_CONSUMER": 5,
}
_GZIP_MAGIC = b"\x1f\x8b"
_DB_KEYS = ("db.system", "db.system.name")
_STATUS_KEYS = ("http.response.status_code", "http.status_code")
_METHOD_KEYS = ("http.request.method", "http.method")
_ROUTE_KEY = "http.route"
_ERROR_KIND_KEY = "engines.error_kind"
_WANTED = frozenset((*_DB_KEYS, *_STATUS_KEYS, *_METHOD_KEYS, _ROUTE_KEY, _ERROR_KIND_KEY))


@dataclass(frozen=True, slots=True)
class Span:
    """One span, with only what the breakdown reads of it."""

    trace_id: str
    """32 lowercase hex digits."""
    span_id: str
    """16 lowercase hex digits."""
    parent_id: str | None
    """The parent span's id; None for a root span."""
    name: str
    kind: int
    start_ns: int
    end_ns: int
    route: str | None = None
    method: str | None = None
    status: int | None = None
    """``http.response.status_code`` (or the older ``http.status_code``)."""
    error_kind: str | None = None
    """``engines.error_kind``: set on a request that failed."""
    database: bool = False
    """The span carries ``db.system`` or ``db.system.name``: a database statement."""

    @property
    def duration_ns(self) -> int:
        """The span's length (0 for a span whose end precedes its start)."""
        return max(self.end_ns - self.start_ns, 0)

    @property
    def is_server(self) -> bool:
        """A SERVER span: one request as the service handled it."""
        return self.kind == SERVER_KIND


@dataclass
class ReadCounts:
    """What the reader saw, to say beside the breakdown."""

    records: int = 0
    spans: int = 0
    skipped_lines: int = 0
    """Lines that were not JSON, or not an OTLP-JSON record."""
    skipped_spans: int = 0
    """Spans without a usable trace id, span id or start and end times."""


def iter_spans(path: Path, counts: ReadCounts) -> Iterator[Span]:
    """The spans of one span file, in file order. Raises ``InputError`` naming the file when it
    cannot be read, or holds no OTLP-JSON record at all."""
    before = counts.records
    try:
        with _open(path) as stream:
            first = _first_line(stream)
            if first is None:
                raise InputError(f"{path}: empty span file: no OTLP-JSON record in it")
            document = _loads(first)
            lines: Iterable[bytes] = stream
            if document is not None:
                yield from _record_spans(document, counts)
            elif _opens_a_document(first):
                # The start of a pretty-printed record: the whole file may be that one record.
                rest = stream.read()
                document = _loads(first + rest)
                if document is not None:
                    yield from _record_spans(document, counts)
                    return
                counts.skipped_lines += 1
                lines = rest.splitlines()
            else:
                counts.skipped_lines += 1
            for line in lines:
                if not line.strip():
                    continue
                record = _loads(line)
                if record is None:
                    counts.skipped_lines += 1
                    continue
                yield from _record_spans(record, counts)
    except OSError as exc:
        raise InputError(f"{path}: cannot read the span file: {exc.strerror or exc}") from None
    except (EOFError, gzip.BadGzipFile) as exc:
        raise InputError(f"{path}: broken gzip file: {exc}") from None
    if counts.records == before:
        raise InputError(
            f"{path}: no OTLP-JSON ExportTraceServiceRequest in it (expected "
            '{"resourceSpans": [...]} per line, as ENGINES_TRACE_FILE or a collector\'s file '
            "exporter writes)"
        )


def _open(path: Path) -> IO[bytes]:
    stream: IO[bytes] = path.open("rb")
    try:
        magic = stream.read(2)
        stream.seek(0)
    except OSError:
        stream.close()
        raise
    if magic == _GZIP_MAGIC:
        stream.close()
        return gzip.open(path, "rb")  # type: ignore[return-value]  # a GzipFile reads as IO[bytes]
    return stream


def _first_line(stream: IO[bytes]) -> bytes | None:
    for line in stream:
        if line.strip():
            return line
    return None


def _opens_a_document(line: bytes) -> bool:
    """A line that starts a JSON object without being one: ``{`` of an indented record."""
    if not line.lstrip().startswith(b"{"):
        return False
    try:
        orjson.loads(line)
    except orjson.JSONDecodeError:
        return True
    return False


def _loads(data: bytes) -> dict[str, Any] | None:
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("resourceSpans"), list):
        return None
    return value


def _record_spans(record: dict[str, Any], counts: ReadCounts) -> Iterator[Span]:
    counts.records += 1
    for resource in record["resourceSpans"]:
        if not isinstance(resource, dict):
            continue
        for scope in _list(resource.get("scopeSpans")):
            if not isinstance(scope, dict):
                continue
            for raw in _list(scope.get("spans")):
                span = _span(raw) if isinstance(raw, dict) else None
                if span is None:
                    counts.skipped_spans += 1
                    continue
                counts.spans += 1
                yield span


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _span(raw: dict[str, Any]) -> Span | None:
    trace_id = _hex_id(raw.get("traceId"), 16)
    span_id = _hex_id(raw.get("spanId"), 8)
    start = _int(raw.get("startTimeUnixNano"))
    end = _int(raw.get("endTimeUnixNano"))
    if trace_id is None or span_id is None or start is None or end is None:
        return None
    attributes = _attributes(raw.get("attributes"))
    status = next((_int(attributes[k]) for k in _STATUS_KEYS if k in attributes), None)
    method = next((attributes[k] for k in _METHOD_KEYS if k in attributes), None)
    route = attributes.get(_ROUTE_KEY)
    error_kind = attributes.get(_ERROR_KIND_KEY)
    return Span(
        trace_id=trace_id,
        span_id=span_id,
        parent_id=_hex_id(raw.get("parentSpanId"), 8),
        name=str(raw.get("name") or ""),
        kind=_kind(raw.get("kind")),
        start_ns=start,
        end_ns=end,
        route=route if isinstance(route, str) else None,
        method=method if isinstance(method, str) else None,
        status=status,
        error_kind=error_kind if isinstance(error_kind, str) and error_kind else None,
        database=any(k in attributes for k in _DB_KEYS),
    )


def _attributes(raw: object) -> dict[str, object]:
    wanted: dict[str, object] = {}
    for entry in _list(raw):
        if not isinstance(entry, dict) or entry.get("key") not in _WANTED:
            continue
        value = entry.get("value")
        if isinstance(value, dict) and value:
            # {"stringValue": ...} | {"intValue": "200"} | {"boolValue": ...} | ...
            wanted[entry["key"]] = next(iter(value.values()))
    return wanted


def _kind(value: object) -> int:
    if isinstance(value, str):
        return _KIND_NAMES.get(value, _int(value) or 0)
    return value if isinstance(value, int) else 0


def _int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            return None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _hex_id(value: object, size: int) -> str | None:
    """An id as lowercase hex: OTLP/JSON writes hex; protobuf's JSON mapping writes base64."""
    if not isinstance(value, str) or not value:
        return None
    text = value.lower()
    if len(text) == size * 2:
        try:
            bytes.fromhex(text)
        except ValueError:
            pass
        else:
            return None if text == "0" * len(text) else text
    try:
        decoded = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(decoded) != size or not any(decoded):
        return None
    return decoded.hex()

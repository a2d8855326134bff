"""The span file (``ENGINES_TRACE_FILE``): one OTLP-JSON ``ExportTraceServiceRequest`` per line.

The OTLP/JSON mapping of the protobuf messages, as the OpenTelemetry collector's file exporter
writes it, so any OTLP tooling (and ``loadkit traces``) reads it: camelCase field names, enums as
integers (``"kind": 2``), 64-bit integers as strings, and trace and span ids as hex (OTLP/JSON's
one departure from the protobuf JSON mapping, which would write them as base64).
"""

from __future__ import annotations

import base64
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
from google.protobuf import json_format
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

_ID_FIELDS = ("traceId", "spanId", "parentSpanId")


def otlp_json_line(spans: Sequence[ReadableSpan]) -> bytes:
    """``spans`` as one OTLP-JSON ``ExportTraceServiceRequest``, newline-terminated."""
    document: dict[str, Any] = json_format.MessageToDict(
        encode_spans(spans), use_integers_for_enums=True
    )
    for resource_spans in document.get("resourceSpans", ()):
        for scope_spans in resource_spans.get("scopeSpans", ()):
            for span in scope_spans.get("spans", ()):
                _hex_ids(span)
                for link in span.get("links", ()):
                    _hex_ids(link)
    return orjson.dumps(document) + b"\n"


def _hex_ids(record: dict[str, Any]) -> None:
    for key in _ID_FIELDS:
        value = record.get(key)
        if isinstance(value, str):
            record[key] = base64.b64decode(value).hex()


class SpanFileExporter(SpanExporter):
    """Appends each batch of spans to a file as one OTLP-JSON line (see the module docstring).

    Called by one ``BatchSpanProcessor``: its worker thread is the only caller of ``export``, and
    ``shutdown`` comes after that thread has stopped, so no lock is needed (nor taken).
    """

    def __init__(self, path: str | Path) -> None:
        """Open ``path`` for appending (created if missing; a symlink there is refused)."""
        self.path = Path(path)
        # O_APPEND: each batch is one write at the end, even if several services share the file.
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC
        self._fd: int | None = os.open(self.path, flags, 0o644)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Write the batch as one line."""
        if not spans:
            return SpanExportResult.SUCCESS
        if self._fd is None:
            return SpanExportResult.FAILURE
        view = memoryview(otlp_json_line(spans))
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        """Close the file (the batch processor has flushed before it calls this)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Nothing is buffered here: every batch is written when exported."""
        return True

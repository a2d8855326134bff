"""Another service's JSON log, read through a field mapping (``[logs]`` in acceptance.toml).

Each mapped line becomes a request line in the bundled service's shape (DESIGN contract 3:
``event``, ``ts``, ``method``, ``endpoint``, ``status_code``, ``error_kind``, ``trace_id``,
``duration_ms``), so the breakdown reads every format alike. A line is a request when it holds
the endpoint (or path) field or the status field; one holding neither is foreign JSON, counted
and skipped like any line that is not a log line.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from loadkit.config import LogsConfig
from loadkit.logs.breakdown import REQUEST_EVENT
from loadkit.logs.paths import endpoint_path
from loadkit.logs.scan import ScanCounts, iter_json_objects
from loadkit.logs.status_kinds import status_kind

FieldPath = tuple[str, ...]


@dataclass(frozen=True)
class FieldMapping:
    """Where each field of a request line is, as the keys of a dotted path (None: not logged)."""

    status: FieldPath
    endpoint: FieldPath | None = None
    path: FieldPath | None = None
    ts: FieldPath | None = None
    ts_ms: FieldPath | None = None
    method: FieldPath | None = None
    kind: FieldPath | None = None
    trace_id: FieldPath | None = None
    duration_ms: FieldPath | None = None
    duration_s: FieldPath | None = None
    message: FieldPath | None = None

    @classmethod
    def from_config(cls, config: LogsConfig) -> FieldMapping:
        """The mapping of a validated ``[logs]`` section that has field keys."""

        def split(value: str | None) -> FieldPath | None:
            return None if value is None else tuple(value.split("."))

        status = split(config.status)
        if status is None:
            raise ValueError("[logs] has no status field: it is not a field mapping")
        return cls(
            status=status,
            endpoint=split(config.endpoint),
            path=split(config.path),
            ts=split(config.ts),
            ts_ms=split(config.ts_ms),
            method=split(config.method),
            kind=split(config.kind),
            trace_id=split(config.trace_id),
            duration_ms=split(config.duration_ms),
            duration_s=split(config.duration_s),
            message=split(config.message),
        )

    def recognises(self, obj: dict[str, Any]) -> bool:
        """Whether ``obj`` is a request line of this log (it holds the route or the status)."""
        route = self.endpoint or self.path
        return (route is not None and field(obj, route) is not None) or field(
            obj, self.status
        ) is not None

    def request_line(self, obj: dict[str, Any]) -> dict[str, Any]:
        """``obj`` as a request line in the service's shape (fields it lacks are None)."""
        status = _number(field(obj, self.status))
        if isinstance(status, float):
            status = int(status) if status.is_integer() else None
        if self.endpoint is not None:
            endpoint = field(obj, self.endpoint)
        else:
            raw = field(obj, self.path) if self.path is not None else None
            endpoint = endpoint_path(raw) if isinstance(raw, str) else None
        kind = _kind(field(obj, self.kind)) if self.kind is not None else None
        if kind is None and isinstance(status, int):
            kind = status_kind(status)
        duration: float | int | None = None
        if self.duration_ms is not None:
            duration = _number(field(obj, self.duration_ms))
        elif self.duration_s is not None:
            seconds = _number(field(obj, self.duration_s))
            duration = None if seconds is None else seconds * 1000.0
        ts = field(obj, self.ts) if self.ts is not None else None
        if self.ts_ms is not None:
            millis = _number(field(obj, self.ts_ms))
            ts = None if millis is None else millis / 1000.0
        return {
            "event": REQUEST_EVENT,
            "ts": ts,
            "method": _text(field(obj, self.method)) if self.method is not None else None,
            "endpoint": endpoint,
            "status_code": status,
            "error_kind": kind,
            "trace_id": _text(field(obj, self.trace_id)) if self.trace_id is not None else None,
            "duration_ms": duration,
            "message": _text(field(obj, self.message)) if self.message is not None else None,
        }

    def reader(self, lines: Iterable[bytes], counts: ScanCounts) -> Iterator[dict[str, Any]]:
        """The request lines of a log in this format (a ``LineReader``), every line counted.

        Envelopes and prefixes are found as for the service's own log (``loadkit.logs.scan``).
        """
        request_line = self.request_line
        for obj in iter_json_objects(lines, counts, self.recognises):
            yield request_line(obj)


def field(obj: dict[str, Any], path: FieldPath) -> Any:
    """The value at ``path`` in ``obj``: nested keys, or one flat key holding the dots
    (``{"http.status": 502}``, as some shippers flatten); None when absent."""
    if len(path) > 1:
        flat = obj.get(".".join(path))
        if flat is not None:
            return flat
    value: Any = obj
    for key in path:
        if type(value) is not dict:
            return None
        value = value.get(key)
    return value


def _number(value: object) -> int | float | None:
    """A JSON number, or a string holding one (``"0.123"``, as some proxies log times)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            pass
        try:
            number = float(text)
        except ValueError:
            return None
        return number if number == number and abs(number) != float("inf") else None
    return None


def _kind(value: object) -> str | None:
    """An error kind as logged: a non-empty string, or a code number (``1042`` → ``"1042"``)."""
    if isinstance(value, str):
        return value or None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def _text(value: object) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None

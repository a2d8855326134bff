"""nginx's default ``combined`` access log, read as request lines.

``$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer"
"$http_user_agent"``: the endpoint is the method and the path of ``$request`` (query dropped, ids
folded into ``{id}``, ``loadkit.logs.paths``), the kind comes from the status
(``loadkit.logs.status_kinds``), the time from ``$time_local``. The log has no trace id and no
duration.

A fast path of its own, not the JSON reader: one compiled bytes regex per line and no JSON
attempt, with the last timestamp and the recent paths remembered (nginx logs to the second, and
most paths repeat), so that a proxy's log of millions of lines reads at hundreds of thousands of
lines a second. No library was used: those on PyPI build a full entry per line (datetimes,
headers, unescaping), which costs several times what the breakdown needs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

import orjson

from loadkit.logs.breakdown import REQUEST_EVENT
from loadkit.logs.paths import endpoint_path
from loadkit.logs.scan import ENVELOPE_KEYS, ScanCounts
from loadkit.logs.status_kinds import status_kind

# Anchored on what follows the client's address and user (a platform prefix before them is
# harmless). nginx escapes '"' inside $request as \x22, so the quoted request holds none.
# A request line that is not "METHOD target [protocol]" (a TLS hello sent to the plain port,
# garbage) still matches, without method and target: nginx answered it, usually 400.
_LINE = re.compile(
    rb" \[([0-9]{2}/[A-Za-z]{3}/[0-9]{4}:[0-9]{2}:[0-9]{2}:[0-9]{2} [+-][0-9]{4})\] "
    rb'"(?:([A-Z]+) ([^ "]+)(?: [^ "]+)?|[^"]*)" ([0-9]{3}) '
)

UNPARSED_REQUEST = "(unparsed request line)"
"""The endpoint of a logged request whose request line was not ``METHOD target [protocol]``."""

_MONTHS = {
    name.encode(): number
    for number, name in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"),
        start=1,
    )
}
_MAX_PATHS = 4096
"""Targets remembered with their endpoint; forgotten all at once when full (ids rarely repeat)."""


def time_local_epoch(text: bytes) -> float | None:
    """``$time_local`` (``10/Oct/2000:13:55:36 -0700``) in epoch seconds; None if impossible."""
    month = _MONTHS.get(text[3:6])
    if month is None or len(text) != 26:
        return None
    try:
        moment = datetime(
            int(text[7:11]),
            month,
            int(text[0:2]),
            int(text[12:14]),
            int(text[15:17]),
            int(text[18:20]),
            tzinfo=UTC,
        )
    except ValueError:
        return None
    offset = int(text[22:24]) * 3600 + int(text[24:26]) * 60
    return moment.timestamp() - (offset if text[21:22] == b"+" else -offset)


def _in_envelope(line: bytes) -> re.Match[bytes] | None:
    """The access line a platform wrapped in JSON (Docker's ``{"log": "..."}``, a shipper's
    ``{"message": "..."}``): its quotes are escaped there, so the raw line never matches."""
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(value, dict):
        return None
    for key in ENVELOPE_KEYS:
        inner = value.get(key)
        if isinstance(inner, str):
            return _LINE.search(inner.encode("utf-8", "surrogatepass"))
    return None


def read_combined(lines: Iterable[bytes], counts: ScanCounts) -> Iterator[dict[str, Any]]:
    """The request lines of an nginx combined access log (a ``LineReader``), every line
    counted: blank ones as blank, the others that do not parse as unmatched."""
    search = _LINE.search
    endpoints: dict[bytes, str] = {}
    last_time = b""
    last_epoch: float | None = None
    for line in lines:
        counts.lines += 1
        match = search(line)
        if match is None and line[:1] == b"{":
            match = _in_envelope(line)
        if match is None:
            if line.strip():
                counts.unmatched += 1
            else:
                counts.blank += 1
            continue
        counts.log_lines += 1
        time_local, method, target, status_text = match.groups()
        if time_local != last_time:
            last_time, last_epoch = time_local, time_local_epoch(time_local)
        if target is None:
            endpoint = UNPARSED_REQUEST
        else:
            known = endpoints.get(target)
            if known is None:
                if len(endpoints) >= _MAX_PATHS:
                    endpoints.clear()
                known = endpoints[target] = endpoint_path(target.decode("latin-1"))
            endpoint = known
        status = int(status_text)
        yield {
            "event": REQUEST_EVENT,
            "ts": last_epoch,
            "method": method.decode("ascii") if method is not None else None,
            "endpoint": endpoint,
            "status_code": status,
            "error_kind": status_kind(status) if status >= 400 else None,
        }

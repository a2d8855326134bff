"""The streaming reader of service logs: JSON log lines out of files, gzip files and stdin.

DESIGN.md, contract 3: the service writes one JSON object per line. Real logs are messier: the
platform may prefix each line with a timestamp (``kubectl logs --timestamps``, CRI's
``<ts> stdout F {...}``, syslog's ``Nov 28 12:00:01 host app[1]: {...}``) or wrap it in an envelope
of its own (Docker's ``{"log": "{...}\\n", "stream": ...}``, ``{"message": "{...}"}``, GCP's
``{"jsonPayload": {...}}``). The reader finds the service's object wherever it can be found in the
line, and counts every line it cannot use instead of failing on it: a log is evidence, and one
foreign line must not hide a million good ones.

Memory stays flat: lines are read one at a time and nothing is kept but counters.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import sys
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import orjson

from loadkit.exceptions import InputError

STDIN = "-"
"""The name that stands for standard input among the log files."""

GZIP_MAGIC = b"\x1f\x8b"

ENVELOPE_KEYS = (
    "log",  # Docker json-file, Fluent Bit
    "message",  # CloudWatch, Loki/Vector, Elastic's ECS
    "msg",
    "MESSAGE",  # journald's JSON export
    "jsonPayload",  # Google Cloud Logging
    "textPayload",
    "json",
    "data",
    "body",
    "line",
)
"""Keys under which platforms put the line they collected, tried in this order."""

MAX_ENVELOPE_DEPTH = 3
"""An envelope inside an envelope is common (Fluent Bit into CloudWatch); deeper is not a log."""

MAX_BRACE_TRIES = 4
"""How many ``{`` of a line are tried as the start of the object (a prefix may hold one)."""

MAX_LINE_BYTES = 1 << 20
"""Longer lines are skipped (counted as not JSON) without being held in memory whole: a binary
file or a log with no newlines must not cost memory in proportion to its size."""
_OVERLONG = b"\x00"  # stands for a skipped overlong line: no brace, so it counts as not JSON


@dataclass
class ScanCounts:
    """What the reader saw: every line read is either yielded or counted as skipped."""

    lines: int = 0
    """Lines read (blank lines included)."""
    log_lines: int = 0
    """Lines holding a service log object (they carry an ``event``), yielded to the caller."""
    blank: int = 0
    """Empty or whitespace-only lines (skipped, not counted as problems)."""
    not_json: int = 0
    """Lines in which no JSON object could be found (text, truncated or malformed JSON, and
    lines over ``MAX_LINE_BYTES``)."""
    foreign: int = 0
    """Lines holding JSON that is not a log line of the format (the service's: no ``event``
    field, even unwrapped; a ``[logs]`` mapping's: neither the route nor the status field)."""
    unmatched: int = 0
    """Text lines not in the text format read (the nginx preset's lines that do not parse)."""

    @property
    def skipped(self) -> int:
        """Lines that carried something but nothing usable (malformed, foreign, unmatched)."""
        return self.not_json + self.foreign + self.unmatched

    def add(self, other: ScanCounts) -> None:
        """Add another scan's counts to these."""
        self.lines += other.lines
        self.log_lines += other.log_lines
        self.blank += other.blank
        self.not_json += other.not_json
        self.foreign += other.foreign
        self.unmatched += other.unmatched


NOT_JSON = "not_json"
FOREIGN = "foreign"

Recognise = Callable[[dict[str, Any]], bool]
"""Whether a JSON object is a log line of the format read (not an envelope or foreign JSON)."""
LineReader = Callable[[Iterable[bytes], ScanCounts], Iterator[dict[str, Any]]]
"""Lines in, log objects in the service's shape (contract 3) out, every line counted."""


def is_service_line(value: dict[str, Any]) -> bool:
    """The bundled service's log line: it carries an ``event`` name."""
    return isinstance(value.get("event"), str)


def find_log_object(line: bytes, recognise: Recognise = is_service_line) -> dict[str, Any] | str:
    """The log object in one line, or why there is none (``NOT_JSON`` or ``FOREIGN``).

    The object may be the line itself, follow a prefix, or sit inside an envelope (see
    ``ENVELOPE_KEYS``) as a nested object or as a JSON string. ``recognise`` tells the object
    sought from an envelope (default: the service's lines, which carry an ``event``).
    """
    start = line.find(b"{")
    if start < 0:
        return NOT_JSON
    value = _loads_from(line, start)
    if value is None:
        return NOT_JSON
    found = _unwrap(value, MAX_ENVELOPE_DEPTH, recognise)
    return FOREIGN if found is None else found


def _loads_from(line: bytes, start: int) -> Any:
    """Decode the JSON object that starts at ``start``; None when there is none."""
    for _ in range(MAX_BRACE_TRIES):
        try:
            return orjson.loads(line[start:] if start else line)
        except orjson.JSONDecodeError:
            pass
        # A suffix after the object (a platform's trailing fields): cut at the last brace.
        end = line.rfind(b"}")
        if end > start:
            try:
                return orjson.loads(line[start : end + 1])
            except orjson.JSONDecodeError:
                pass
        # The prefix itself held a brace ("[{worker-1}] {...}"): try the next one.
        start = line.find(b"{", start + 1)
        if start < 0:
            return None
    return None


def _unwrap(value: Any, depth: int, recognise: Recognise) -> dict[str, Any] | None:
    if not isinstance(value, dict):
        return None
    if recognise(value):
        return value
    if depth <= 0:
        return None
    for key in ENVELOPE_KEYS:
        inner = value.get(key)
        if isinstance(inner, dict):
            found = _unwrap(inner, depth - 1, recognise)
        elif isinstance(inner, str) and "{" in inner:
            data = inner.encode("utf-8", "surrogatepass")
            found = _unwrap(_loads_from(data, data.find(b"{")), depth - 1, recognise)
        else:
            continue
        if found is not None:
            return found
    return None


def iter_log_objects(lines: Iterable[bytes], counts: ScanCounts) -> Iterator[dict[str, Any]]:
    """Yield the service log objects found in ``lines``, counting every line into ``counts``."""
    return iter_json_objects(lines, counts)


def iter_json_objects(
    lines: Iterable[bytes], counts: ScanCounts, recognise: Recognise | None = None
) -> Iterator[dict[str, Any]]:
    """Yield the JSON log objects found in ``lines`` that ``recognise`` accepts (default: the
    service's lines), counting every line into ``counts``."""
    if recognise is None:
        recognise = is_service_line
        # The service's own check, inlined below: the fast path runs once per line.
        service = True
    else:
        service = False
    loads = orjson.loads
    decode_error = orjson.JSONDecodeError
    for line in lines:
        counts.lines += 1
        # Fast path: the line is the object (the service's own stdout). orjson does the rest;
        # anything it refuses goes to the slow path that looks for prefixes and envelopes.
        if line[:1] == b"{":
            try:
                value = loads(line)
            except decode_error:
                value = None
            if type(value) is dict and (
                type(value.get("event")) is str if service else recognise(value)
            ):
                counts.log_lines += 1
                yield value
                continue
        elif not line.strip():
            counts.blank += 1
            continue
        found = find_log_object(line, recognise)
        if found == NOT_JSON:
            counts.not_json += 1
        elif isinstance(found, dict):
            counts.log_lines += 1
            yield found
        else:
            counts.foreign += 1


class LogSource:
    """One log to read: a file, a gzip file (recognised by its magic bytes), or stdin ("-").

    A context manager; ``open()`` raises ``InputError`` naming the file when it cannot be read.
    """

    def __init__(
        self, name: str, *, stdin: IO[bytes] | None = None, reader: LineReader = iter_log_objects
    ) -> None:
        """``stdin``: the stream "-" stands for (default: the process's binary stdin);
        ``reader``: the log format (default: the service's JSON lines)."""
        self.name = name
        self._reader = reader
        self.counts = ScanCounts()
        self._stdin = stdin
        self._raw: IO[bytes] | None = None
        self._stream: IO[bytes] | None = None

    def open(self) -> IO[bytes]:
        """Open the log for binary reading (decompressing gzip on the fly)."""
        if self.name == STDIN:
            raw = self._stdin if self._stdin is not None else sys.stdin.buffer
        else:
            raw = self._open_file(Path(self.name))
            self._raw = raw  # ours to close; stdin is not
        self._stream = _maybe_gunzip(raw, self.name)
        return self._stream

    def _open_file(self, path: Path) -> IO[bytes]:
        try:
            return path.open("rb")
        except FileNotFoundError:
            raise InputError(f"{self.name}: no such log file") from None
        except IsADirectoryError:
            raise InputError(f"{self.name}: is a directory, not a log file") from None
        except OSError as exc:
            raise InputError(f"{self.name}: cannot read: {exc.strerror}") from None

    def close(self) -> None:
        """Close what ``open()`` opened (never stdin itself)."""
        if self._stream is not None and self._stream is not self._raw:
            with contextlib.suppress(Exception):
                self._stream.close()  # a GzipFile does not close the file it wraps
        if self._raw is not None:
            self._raw.close()
        self._stream = self._raw = None

    def __iter__(self) -> Iterator[dict[str, Any]]:
        """The service log objects of this log, counted into ``self.counts``."""
        stream = self._stream if self._stream is not None else self.open()
        try:
            yield from self._reader(bounded_lines(stream), self.counts)
        except (OSError, EOFError, zlib.error) as exc:
            # gzip raises BadGzipFile (an OSError) on a corrupt file, EOFError on a truncated one.
            raise InputError(
                f"{self.name}: cannot read past line {self.counts.lines}: {exc}"
            ) from None
        finally:
            self.close()


def bounded_lines(stream: IO[bytes], limit: int = MAX_LINE_BYTES) -> Iterator[bytes]:
    """The lines of ``stream``, each at most ``limit`` bytes: a longer one is read past in
    ``limit``-sized pieces and stands as one line of no use (counted as not JSON)."""
    readline = stream.readline
    while True:
        line = readline(limit)
        if not line:
            return
        if len(line) == limit and not line.endswith(b"\n"):
            while True:
                rest = readline(limit)
                if not rest or rest.endswith(b"\n"):
                    break
            line = _OVERLONG
        yield line


def _maybe_gunzip(stream: IO[bytes], name: str) -> IO[bytes]:
    # Decide by content, not by name: rotated logs are often gzipped without a .gz suffix, and
    # stdin has no name at all. peek() needs a buffered stream; files and sys.stdin.buffer are.
    # A BytesIO (tests, typer's CliRunner) has no peek(): buffer it.
    peekable: Any = stream if hasattr(stream, "peek") else io.BufferedReader(stream)
    head = peekable.peek(2)[:2]
    if head == GZIP_MAGIC:
        return gzip.GzipFile(fileobj=peekable, mode="rb", filename=name)  # type: ignore[return-value]
    result: IO[bytes] = peekable
    return result


def sources_from(
    names: Sequence[str], *, stdin: IO[bytes] | None = None, reader: LineReader = iter_log_objects
) -> list[LogSource]:
    """One ``LogSource`` per name, read by ``reader``; a name given twice is read twice (as
    ``cat`` would)."""
    if names.count(STDIN) > 1:
        raise InputError('"-" (stdin) given more than once; it can only be read once')
    return [LogSource(name, stdin=stdin, reader=reader) for name in names]

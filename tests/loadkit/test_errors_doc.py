"""docs/errors.md documents every field of a real ``loadkit errors --format json`` document
(``loadkit.errors/1``), and nothing it does not hold: the page cannot drift from the code."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
from typer.testing import CliRunner

from loadkit.cli import app
from loadkit.measure.results import write_results
from tests.loadkit.crafted_errors import LOGIN, client_results, request, ts

DOCS = Path(__file__).resolve().parents[2] / "docs" / "errors.md"
MAPS = {"status_codes", "client_status_codes", "events", "other_kinds"}
"""Fields whose keys are data (a status, an event's name, a kind), not field names."""


def _document(tmp_path: Path) -> dict[str, Any]:
    """A report with every part present: errors, successes, a pool line, a fault, a client."""
    lines = [
        {"event": "fault_injection_enabled", "fault": "lock_hold", "hold_ms": 200, "ts": ts(0)},
        *[
            request(
                "/api/auth/login", at=i, status=503, kind="storage_lock_timeout", trace_id=f"L{i}"
            )
            for i in range(3)
        ],
        *[request("/api/items", method="GET", at=i) for i in range(3)],
        {"event": "db_pool", "ts": ts(1), "size": 5, "max_size": 5, "checked_out": 5, "waited": 2},
    ]
    log = tmp_path / "service.log"
    log.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in lines))
    results = client_results([(LOGIN, "storage_lock_timeout", 503, "L0")], requests=5)
    path = write_results(tmp_path / "load.json", results)
    args = ["errors", str(log), "--results", str(path), "--format", "json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    document: dict[str, Any] = orjson.loads(result.stdout)
    return document


def _documented() -> dict[str, set[str]]:
    """Each table of the page by its section (``""`` for the top level): its field names."""
    sections = re.split(r"^### (\S+)$", DOCS.read_text(), flags=re.MULTILINE)
    tables = {"": sections[0], **dict(zip(sections[1::2], sections[2::2], strict=True))}
    return {
        name: set(re.findall(r"^\| `([a-z_0-9]+)` \|", text, re.MULTILINE))
        for name, text in tables.items()
    }


def _records(value: Any, path: str = "") -> dict[str, set[str]]:
    """The document's objects of named fields by dotted path (a list's by its first item)."""
    if isinstance(value, list):
        return _records(value[0], path) if value else {}
    if not isinstance(value, dict):
        return {}
    found = {path: set(value)}
    for key, item in value.items():
        if key not in MAPS:
            found |= _records(item, f"{path}.{key}".lstrip("."))
    return found


def test_the_page_documents_exactly_the_fields_of_a_real_document(tmp_path: Path) -> None:
    document = _document(tmp_path)
    assert document["schema"] == "loadkit.errors/1"
    # Every part is present, so that each section is checked against real fields.
    assert document["pool"] and document["client"]["rows"] and document["faults"]
    assert _documented() == _records(document)

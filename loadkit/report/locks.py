"""Rendering lock-audit findings: text like ruff and mypy, JSON, and GitHub workflow annotations.

Text lines read ``path:line:col: LK001 message`` so that editors, CI logs and problem matchers
pick them up; ``github`` writes ``::error file=...,line=...,col=...::`` commands that annotate the
diff of a pull request.
"""

from __future__ import annotations

import json
from typing import Literal

from loadkit.exceptions import ConfigError
from loadkit.lockaudit.audit import AuditSummary, Finding

LockReportFormat = Literal["text", "json", "github"]
FORMATS: tuple[LockReportFormat, ...] = ("text", "json", "github")


def parse_format(value: str) -> LockReportFormat:
    """A ``--format`` value, or a ConfigError listing the formats there are."""
    for fmt in FORMATS:
        if value == fmt:
            return fmt
    raise ConfigError(
        f"--format {value!r} is not a lock-report format; use one of {', '.join(FORMATS)}"
    )


def render_locks(summary: AuditSummary, fmt: LockReportFormat) -> str:
    """The whole report in one format, ending with a newline."""
    if fmt == "json":
        return render_locks_json(summary)
    if fmt == "github":
        return render_locks_github(summary)
    return render_locks_text(summary)


def render_locks_text(summary: AuditSummary) -> str:
    """One ``path:line:col: CODE message`` line per finding, then a count."""
    lines = [format_finding(f) for f in summary.findings]
    return "\n".join([*lines, summary_line(summary)]) + "\n"


def format_finding(finding: Finding) -> str:
    """``path:line:col: LK001 message``."""
    return f"{finding.path}:{finding.line}:{finding.col}: {finding.code} {finding.message}"


def summary_line(summary: AuditSummary) -> str:
    """A sentence with the counts: violations, files, suppressions."""
    files = _plural(summary.files_checked, "file")
    suppressed = f", {summary.suppressed} suppressed" if summary.suppressed else ""
    if not summary.violations:
        return f"No lock-safety violations ({files} checked{suppressed})."
    found = _plural(summary.violations, "lock-safety violation")
    where = _plural(summary.files_with_findings, "file")
    return f"Found {found} in {where} ({files} checked{suppressed})."


def render_locks_json(summary: AuditSummary) -> str:
    """A JSON document: the counts and every finding (``lock_line`` is where the lock was taken)."""
    document = {
        "violations": summary.violations,
        "files_checked": summary.files_checked,
        "suppressed": summary.suppressed,
        "findings": [
            {
                "path": f.path,
                "line": f.line,
                "col": f.col,
                "code": f.code,
                "message": f.message,
                "lock_line": f.lock_line,
            }
            for f in summary.findings
        ],
    }
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def render_locks_github(summary: AuditSummary) -> str:
    """GitHub Actions workflow commands, one ``::error`` per finding, then the count."""
    lines = [
        f"::error file={_property(f.path)},line={f.line},col={f.col},"
        f"title={_property('lockaudit ' + f.code)}::{_data(f.code + ' ' + f.message)}"
        for f in summary.findings
    ]
    return "\n".join([*lines, summary_line(summary)]) + "\n"


def _data(text: str) -> str:
    # Escaping as the Actions runner expects (toolkit/packages/core/src/command.ts).
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _property(text: str) -> str:
    return _data(text).replace(":", "%3A").replace(",", "%2C")


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"

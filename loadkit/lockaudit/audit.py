"""The lock audit: find where code holds a lock while it works, waits, or may never let go.

Pure: it is handed source text and returns findings; it reads no files and never prints (files are
found and read by ``loadkit.lockaudit.run``, findings rendered by ``loadkit.report.locks``). The
rules themselves live in ``loadkit.lockaudit.rules``; this module parses, applies suppression
comments and sums up.

A finding is suppressed by a comment on its line that says which code and why::

    time.sleep(hold_s)  # lockaudit: ignore[LK001] fault injection holds the lock on purpose

A suppression without a reason (or naming an unknown code) suppresses nothing and is itself
reported, as LK900: a reviewer should never have to guess why a lock rule was waived.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from collections.abc import Iterable
from dataclasses import dataclass

from loadkit.config import LockAuditConfig
from loadkit.exceptions import InputError
from loadkit.lockaudit.rules import BAD_SUPPRESSION, RULES, Finding, RuleSet

__all__ = ["RULES", "AuditSummary", "FileAudit", "Finding", "LockAuditor", "audit_source"]

_DIRECTIVE = re.compile(r"#\s*lockaudit\s*:\s*(?P<rest>.*)$")
_IGNORE = re.compile(r"ignore\s*\[(?P<codes>[^\]]*)\]\s*(?P<reason>.*)$")
_REASON_PUNCTUATION = " \t-—–:;,."


@dataclass(frozen=True, slots=True)
class FileAudit:
    """What the audit found in one file, after suppressions."""

    path: str
    findings: tuple[Finding, ...]
    suppressed: int


@dataclass(frozen=True, slots=True)
class AuditSummary:
    """What the audit found in every file it checked."""

    findings: tuple[Finding, ...]
    files_checked: int
    suppressed: int

    @property
    def violations(self) -> int:
        """How many findings remain after suppressions (what the gate's ``lock_violations`` is)."""
        return len(self.findings)

    @property
    def files_with_findings(self) -> int:
        """How many files have at least one finding."""
        return len({f.path for f in self.findings})

    @classmethod
    def of(cls, audits: Iterable[FileAudit]) -> AuditSummary:
        """Sum up per-file audits; findings stay in the order of the files, then of the lines."""
        audits = list(audits)
        return cls(
            findings=tuple(f for audit in audits for f in audit.findings),
            files_checked=len(audits),
            suppressed=sum(audit.suppressed for audit in audits),
        )


@dataclass(frozen=True, slots=True)
class _Suppression:
    line: int
    codes: frozenset[str]


class LockAuditor:
    """Audits source text against one ``[lock_audit]`` configuration (patterns compiled once)."""

    def __init__(self, config: LockAuditConfig) -> None:
        self.rules = RuleSet(config)

    def audit_source(self, source: str, *, path: str) -> FileAudit:
        """Audit one module's source; ``path`` names it in findings and errors.

        Raises ``InputError`` naming the file and line when the source does not parse: a file the
        audit cannot read must fail the audit, not pass it.
        """
        try:
            tree = ast.parse(source, filename=path)
        except SyntaxError as exc:
            where = f"{path}:{exc.lineno or 1}:{exc.offset or 1}"
            raise InputError(f"{where}: cannot parse: {exc.msg}; fix the syntax error") from None
        except ValueError as exc:  # e.g. null bytes in the source
            raise InputError(f"{path}: cannot parse: {exc}") from None
        except (RecursionError, MemoryError):
            # CPython's parser gives up on very deep nesting (`1+1+...` 100,000 times) this
            # way, as its documentation of ast.parse warns.
            raise InputError(f"{path}: cannot parse: nested too deeply for Python") from None
        try:
            findings = self.rules.check(tree, path=path)
        except RecursionError:
            # The rules walk the tree recursively: a tree just shallow enough to parse can
            # still be too deep to walk.
            raise InputError(f"{path}: cannot audit: nested too deeply to walk") from None
        suppressions, problems = _suppressions(source, path)
        kept: list[Finding] = []
        suppressed = 0
        for finding in findings:
            waived = suppressions.get(finding.line)
            if waived is not None and finding.code in waived.codes:
                suppressed += 1
            else:
                kept.append(finding)
        kept.extend(problems)
        kept.sort(key=lambda f: (f.line, f.col, f.code))
        return FileAudit(path=path, findings=tuple(kept), suppressed=suppressed)


def audit_source(source: str, *, path: str, config: LockAuditConfig) -> FileAudit:
    """Audit one module's source with ``config`` (see ``LockAuditor`` to audit many)."""
    return LockAuditor(config).audit_source(source, path=path)


def _suppressions(source: str, path: str) -> tuple[dict[int, _Suppression], list[Finding]]:
    """The valid suppression comments by line, and a finding for each invalid one."""
    valid: dict[int, _Suppression] = {}
    problems: list[Finding] = []
    example = "write `# lockaudit: ignore[LK001] <why holding the lock here is safe>`"
    for line, col, text in _comments(source):
        directive = _DIRECTIVE.search(text)
        if directive is None:
            continue

        def problem(message: str, line: int = line, col: int = col) -> None:
            problems.append(Finding(path, line, col + 1, BAD_SUPPRESSION, message))

        ignore = _IGNORE.match(directive.group("rest").strip())
        if ignore is None:
            problem(f"malformed lockaudit comment: {example}")
            continue
        codes = frozenset(c for c in re.split(r"[\s,]+", ignore.group("codes").upper()) if c)
        unknown = sorted(c for c in codes if c not in RULES or c == BAD_SUPPRESSION)
        reason = ignore.group("reason").strip(_REASON_PUNCTUATION)
        if not codes:
            problem(f"suppression names no code: {example}")
        elif unknown:
            problem(f"suppression names unknown code {', '.join(unknown)}; known: LK001-LK004")
        elif not any(ch.isalpha() for ch in reason):
            named = ",".join(sorted(codes))
            problem(f"suppression of {named} has no reason, so it suppresses nothing: {example}")
        else:
            valid[line] = _Suppression(line, codes)
    return valid, problems


def _comments(source: str) -> list[tuple[int, int, str]]:
    """(line, col, text) of every comment; tokenizing keeps a ``#`` inside a string out."""
    found: list[tuple[int, int, str]] = []
    if "lockaudit" not in source:
        return found  # tokenizing costs as much as the whole audit; most files have nothing
    try:
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            if token.type == tokenize.COMMENT:
                found.append((token.start[0], token.start[1], token.string))
    except (tokenize.TokenError, SyntaxError):
        pass  # the source parsed, so this is an edge of tokenize; keep what was found
    return found

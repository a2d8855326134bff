"""Running the lock audit over files on disk: find the Python files, read them, audit, time it.

The I/O side of ``loadkit.lockaudit.audit`` (which stays pure), and the bridge to the results file
(``LockAuditResults``) that the gate reads as ``lock_audit.lock_violations``.
"""

from __future__ import annotations

import time
import tokenize
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from loadkit.config import LockAuditConfig, load_config
from loadkit.exceptions import ConfigError, InputError
from loadkit.lockaudit.audit import AuditSummary, LockAuditor
from loadkit.measure.results import LockAuditResults, LockFinding, write_results
from loadkit.measure.validity import aborted_reason

SKIPPED_DIRECTORIES: frozenset[str] = frozenset({"__pycache__", "node_modules", "site-packages"})
"""Directory names never walked into (nor any whose name starts with a dot, such as ``.venv``)."""


@dataclass(frozen=True, slots=True)
class AuditRun:
    """An audit of files on disk: what it found, when it started, how long it took."""

    summary: AuditSummary
    targets: tuple[str, ...]
    started_at: datetime
    duration_s: float


def find_python_files(paths: Iterable[Path]) -> list[Path]:
    """The files to audit: each file given, and every ``*.py`` under each directory given.

    Sorted within each directory and without duplicates, so output is stable from run to run.
    Raises ``InputError`` for a path that does not exist.
    """
    found: dict[Path, None] = {}
    for path in paths:
        if path.is_file():
            found.setdefault(path, None)
        elif path.is_dir():
            for file in sorted(_walk(path)):
                found.setdefault(file, None)
        else:
            raise InputError(f"{path}: no such file or directory to audit")
    return list(found)


def _walk(directory: Path) -> Iterable[Path]:
    for entry in directory.iterdir():
        if entry.is_dir():
            if not (entry.name.startswith(".") or entry.name in SKIPPED_DIRECTORIES):
                yield from _walk(entry)
        elif entry.suffix == ".py" and entry.is_file():
            yield entry


def read_source(path: Path) -> str:
    """A Python file's text, decoded as Python does (PEP 263 coding cookie, else UTF-8)."""
    try:
        with tokenize.open(path) as handle:
            return handle.read()
    except (SyntaxError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot decode: {exc}") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror}") from None


def audit_paths(paths: Sequence[Path], config: LockAuditConfig) -> AuditRun:
    """Audit every Python file under ``paths``; raises ``InputError`` naming a file that cannot
    be read or parsed, or the paths when they hold no Python file."""
    started_at = datetime.now(UTC)
    started = time.perf_counter()
    auditor = LockAuditor(config)
    files = find_python_files(paths)
    if not files:
        # "No violations" in no file at all is a mistyped scope, not a clean audit.
        where = ", ".join(path.as_posix() for path in paths) or "(no path given)"
        raise InputError(f"{where}: no Python file to audit; check the paths")
    audits = [auditor.audit_source(read_source(file), path=file.as_posix()) for file in files]
    return AuditRun(
        summary=AuditSummary.of(audits),
        targets=tuple(path.as_posix() for path in paths),
        started_at=started_at,
        duration_s=time.perf_counter() - started,
    )


def to_results(run: AuditRun, config: LockAuditConfig) -> LockAuditResults:
    """The results file for an audit run (kind ``lock_audit``)."""
    summary = run.summary
    return LockAuditResults(
        target=" ".join(run.targets),
        started_at=run.started_at,
        duration_s=run.duration_s,
        config=config.model_dump(mode="json"),
        files_checked=summary.files_checked,
        suppressed=summary.suppressed,
        violations=summary.violations,
        findings=[
            LockFinding(
                path=f.path,
                line=f.line,
                col=f.col,
                code=f.code,
                message=f.message,
                lock_line=f.lock_line,
            )
            for f in summary.findings
        ],
    )


def write_audit_results(path: Path, run: AuditRun, config: LockAuditConfig) -> Path:
    """Write the results file for ``--out`` atomically; a ConfigError names a path not writable."""
    try:
        return write_results(path, to_results(run, config))
    except OSError as exc:
        raise ConfigError(f"--out {path}: cannot write the results file: {exc.strerror}") from None


def write_failed_audit(
    path: Path, targets: Sequence[Path], config: LockAuditConfig, reason: str
) -> Path:
    """Write a results file for an audit that could not complete (a file that does not parse):
    marked aborted, so the gate calls it invalid instead of reading an older file that passed."""
    results = LockAuditResults(
        target=" ".join(target.as_posix() for target in targets),
        started_at=datetime.now(UTC),
        duration_s=0.0,
        config=config.model_dump(mode="json"),
        files_checked=0,
        violations=0,
        invalid_reasons=[aborted_reason(reason)],
    )
    try:
        return write_results(path, results)
    except OSError as exc:
        raise ConfigError(f"--out {path}: cannot write the results file: {exc.strerror}") from None


def audit_scope(
    paths: Sequence[Path], config_path: Path | None, *, default_config: Path
) -> tuple[LockAuditConfig, list[Path]]:
    """The ``[lock_audit]`` settings and the paths to audit.

    The settings come from ``config_path`` (which must exist), else from ``default_config`` when
    it exists, else from the built-in defaults. Paths given on the command line win; otherwise the
    configured ``paths`` are taken relative to the configuration file's folder.
    """
    source = config_path if config_path is not None else default_config
    if config_path is not None or default_config.is_file():
        config = load_config(source).lock_audit
        base = source.parent
    else:
        config = LockAuditConfig()
        base = Path()
    targets = list(paths) if paths else [base / entry for entry in config.paths]
    return config, targets

"""Which baseline results files a command judges regressions against, and saving a new one.

``--baseline PATH`` (repeatable, one per kind of results) wins; else ``[baseline] path`` of the
acceptance file, relative to that file. A ``--baseline`` that does not exist is an error (exit
2); a ``[baseline] path`` that does not exist yet is not: the first run of a branch has no
baseline, its regression criteria are then not evaluated (and ``accept --save-baseline`` makes
one), which the command says.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from loadkit.config import AcceptanceConfig
from loadkit.measure.results import (
    LoadResults,
    LockAuditResults,
    SmokeResults,
    write_results,
)
from loadkit.measure.results_histograms import read_checked_results


@dataclass(frozen=True)
class Baselines:
    """The baselines read, each with the name it is shown under, and what to say about them."""

    files: tuple[tuple[str, SmokeResults | LoadResults | LockAuditResults], ...]
    force: bool
    note: str | None = None


def read_baselines(
    options: Sequence[Path] | None,
    config: AcceptanceConfig,
    config_path: Path,
    *,
    force: bool = False,
) -> Baselines:
    """The baselines of the command line (``--baseline``), else of ``[baseline]``; ``force``
    (``--force-baseline``) or ``[baseline] force`` allow an incomparable one.

    Raises ``InputError`` for a ``--baseline`` that cannot be read.
    """
    force = force or config.baseline.force
    if options:
        return Baselines(
            files=tuple((str(path), read_checked_results(path)) for path in options), force=force
        )
    if config.baseline.path is None:
        return Baselines(files=(), force=force)
    path = config_path.parent / config.baseline.path
    if not path.exists():
        return Baselines(
            files=(),
            force=force,
            note=f"[baseline] path {path} does not exist yet: regression criteria not evaluated",
        )
    return Baselines(files=((str(path), read_checked_results(path)),), force=force)


def save_baseline(path: Path, results: LoadResults) -> Path:
    """Write ``results`` as the new baseline at ``path``, atomically (the one writer)."""
    return write_results(path, results)

"""``loadkit report``: render results files into an HTML page, ``.hgrm`` files and a CSV.

It renders, it never gates: the verdict shown is the gate's (``evaluate_gate`` on the criteria of
``--config``, regression criteria against ``--baseline`` or the acceptance file's ``[baseline]``),
but the command's outcome is whether the files were written. The reading and writing is here; the
rendering is pure (``loadkit.report.html``, ``hgrm``, ``timeline_csv``); every file goes through
the one atomic writer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from loadkit.config import load_config
from loadkit.exceptions import InputError
from loadkit.files import write_output
from loadkit.gate.against_baseline import evaluate_gate
from loadkit.gate.evaluate import AnyResults, GateReport
from loadkit.measure.results import LockAuditResults
from loadkit.measure.results_histograms import read_checked_results
from loadkit.report.gate_regression import drawn_baselines_note
from loadkit.report.hgrm import hgrm_file_names, hgrm_folder_names, render_hgrm
from loadkit.report.html import ReportInput, drawn_baselines, render_html_report
from loadkit.report.timeline_csv import render_timeline_csv
from loadkit.report.timeline_figures import second_figures
from loadkit.run.baseline import read_baselines

Sourced = tuple[str, AnyResults]


@dataclass(frozen=True)
class LoadedReport:
    """The results read, the gate's report on them (None without criteria) and the baselines."""

    results: tuple[Sourced, ...]
    gate: GateReport | None
    baselines: tuple[Sourced, ...]
    note: str | None = None
    """What to say about the baselines (``[baseline] path`` not there yet)."""


def load_report(
    results: Sequence[Path],
    *,
    config: Path | None = None,
    baseline: Sequence[Path] = (),
    force_baseline: bool = False,
) -> LoadedReport:
    """Read ``results`` (at least one), and with ``config`` judge them as the gate does
    (``force_baseline``: compare with a baseline of another load, as ``--force-baseline``).

    Raises ``InputError`` for a results or baseline file that cannot be read, ``ConfigError`` for
    a bad acceptance file or an incomparable baseline (what ``loadkit gate`` raises too).
    """
    if not results:
        raise InputError("no results files given: name at least one (loadkit report RESULTS…)")
    loaded = tuple((str(path), read_checked_results(path)) for path in results)
    if config is None:
        baselines = tuple((str(path), read_checked_results(path)) for path in baseline)
        return LoadedReport(results=loaded, gate=None, baselines=baselines)
    settings = load_config(config)
    chosen = read_baselines(list(baseline) or None, settings, config, force=force_baseline)
    gate = evaluate_gate(
        settings.criteria,
        settings.regressions,
        loaded,
        baselines=chosen.files,
        force_baseline=chosen.force,
    )
    return LoadedReport(results=loaded, gate=gate, baselines=chosen.files, note=chosen.note)


def page_gate(report: LoadedReport) -> GateReport | None:
    """The gate's report as the page shows it: of a baseline no criterion judged, it says what
    the page does with it (draws it beside a run of its kind: the latency distribution) where
    the gate says it was not used; a baseline the page does not draw stays "not used"."""
    gate = report.gate
    if gate is None or not gate.unused_baselines:
        return gate
    drawn = drawn_baselines(report.results, report.baselines)
    shown = [source for source in gate.unused_baselines if source in drawn]
    unused = tuple(source for source in gate.unused_baselines if source not in drawn)
    notes = (drawn_baselines_note(shown),) if shown else ()
    return replace(gate, unused_baselines=unused, baseline_notes=gate.baseline_notes + notes)


def render_report(report: LoadedReport, *, now: datetime | None = None) -> str:
    """The HTML page of a loaded report."""
    return render_html_report(
        ReportInput(
            results=report.results,
            gate=page_gate(report),
            version=_loadkit_version(),
            generated_at=now or datetime.now(tz=UTC),
            baselines=report.baselines,
        )
    )


def _loadkit_version() -> str:
    try:
        return version("loadkit")
    except PackageNotFoundError:  # a source tree never installed
        return "unknown"


def write_html_report(
    results: Sequence[Path],
    html: Path,
    *,
    config: Path | None = None,
    baseline: Sequence[Path] = (),
) -> Path:
    """Render RESULTS into one self-contained HTML file at `html` (atomic write); returns it."""
    report = load_report(results, config=config, baseline=baseline)
    return write_output(html, render_report(report).encode(), option="--html")


def hgrm_folders(report: LoadedReport, folder: Path) -> list[tuple[str, Path]]:
    """Where the ``.hgrm`` files of each results file with requests go, in order: ``folder``
    itself for one, else a subfolder of its own per results file (``hgrm_folder_names``: never
    shared, so none overwrites another's)."""
    sources = [s for s, r in report.results if not isinstance(r, LockAuditResults)]
    if len(sources) == 1:
        return [(sources[0], folder)]
    names = hgrm_folder_names(sources)
    return [(source, folder / name) for source, name in zip(sources, names, strict=True)]


def write_hgrm_files(report: LoadedReport, folder: Path) -> list[Path]:
    """One ``.hgrm`` file per endpoint and ``all.hgrm`` for the whole run, of each results file
    with requests; in a subfolder of its own per results file when there are several
    (``hgrm_folders``)."""
    traffic = [r for _, r in report.results if not isinstance(r, LockAuditResults)]
    written = []
    for results, (_, target) in zip(traffic, hgrm_folders(report, folder), strict=True):
        if isinstance(results, LockAuditResults):  # filtered above; for the type checker
            continue
        names = hgrm_file_names([e.name for e in results.endpoints])
        written.append(
            write_output(target / "all.hgrm", render_hgrm(results.histogram), option="--hgrm")
        )
        for endpoint in results.endpoints:
            written.append(
                write_output(
                    target / names[endpoint.name], render_hgrm(endpoint.histogram), option="--hgrm"
                )
            )
    return written


def write_timeline_csv(report: LoadedReport, path: Path) -> Path:
    """The per-second timeline of the (single) run with requests as CSV."""
    traffic = [(s, r) for s, r in report.results if not isinstance(r, LockAuditResults)]
    if len(traffic) != 1:
        found = ", ".join(s for s, _ in traffic) or "none"
        raise InputError(
            f"--csv writes the timeline of one run: give one smoke or load results file "
            f"(got {len(traffic)}: {found})"
        )
    results = traffic[0][1]
    assert not isinstance(results, LockAuditResults)
    return write_output(path, render_timeline_csv(second_figures(results.timeline)), option="--csv")

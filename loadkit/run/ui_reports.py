"""``loadkit ui``: an HTML report beside each results file a test of the web UI writes.

The plugin writes ``ui-<time>.json`` when a test started from the UI stops; this watcher, in
``loadkit ui``'s own process, renders ``ui-<time>.html`` beside it, which the UI serves and
links (``report.load_webui``). Rendering here, not in Locust's process, keeps the report's
imports and its rendering time off Locust's event loop: the UI stays responsive, and a report
that cannot be written costs the test nothing (its results are out already).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from loadkit.exceptions import LoadkitError
from loadkit.report.load_webui import html_report_path

RESULTS_GLOB = "ui-*.json"
"""The results files the web UI's tests write (``LoadTest._output_path``); the atomic writer's
temporary files (``.ui-….tmp``) never match."""
POLL_S = 0.25
"""How often the folder is looked at: a report is ready well within a second of the stop."""

WriteReport = Callable[[Path, Path], object]
"""Renders the results file (first argument) into the HTML file (second)."""


def prepare_ui_report() -> None:
    """Import the report's renderer (its charting library takes over a second to import here):
    done as the UI starts, so that a report is ready as soon as a test stops."""
    import loadkit.run.report  # noqa: F401


def write_ui_report(results: Path, html: Path) -> Path:
    """The HTML report of one results file of the web UI (no criteria: the UI gates nothing)."""
    from loadkit.run.report import write_html_report

    return write_html_report([results], html, config=None)


class UiReportWriter:
    """Watches the web UI's results folder and writes each new results file's HTML report."""

    def __init__(
        self,
        folder: Path,
        *,
        announce: Callable[[str], None] | None = None,
        write: WriteReport = write_ui_report,
        prepare: Callable[[], None] = prepare_ui_report,
        poll_s: float = POLL_S,
    ) -> None:
        """Files already in ``folder`` (earlier sessions') are left alone. ``prepare`` runs
        once, first thing on the watching thread."""
        self.folder = folder
        self.announce = announce
        self.write = write
        self.prepare = prepare
        self.poll_s = poll_s
        self.done: set[Path] = set(self._results_files())
        self.written: list[Path] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _results_files(self) -> list[Path]:
        return sorted(self.folder.glob(RESULTS_GLOB)) if self.folder.is_dir() else []

    def sweep(self) -> list[Path]:
        """Write the reports of the results files that came since the last sweep; the HTML
        files written. A report that cannot be written is said (once), not retried."""
        written = []
        for results in self._results_files():
            if results in self.done:
                continue
            self.done.add(results)
            html = html_report_path(results)
            try:
                self.write(results, html)
            except (LoadkitError, OSError, ValueError, ImportError) as exc:
                self._say(f"loadkit: cannot write the HTML report of {results}: {exc}")
                continue
            written.append(html)
            self._say(f"HTML report of the test: {html}")
        self.written += written
        return written

    def _say(self, line: str) -> None:
        if self.announce is not None:
            self.announce(line)

    def _watch(self) -> None:
        try:
            self.prepare()
        except ImportError as exc:  # said here; each report that cannot be written says so too
            self._say(f"loadkit: HTML reports cannot be written: {exc}")
        while not self._stop.wait(self.poll_s):
            self.sweep()

    def __enter__(self) -> UiReportWriter:
        self._thread = threading.Thread(target=self._watch, name="loadkit-ui-reports", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        """Stop watching, then write what the last test (stopped as the UI closed) left."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.sweep()

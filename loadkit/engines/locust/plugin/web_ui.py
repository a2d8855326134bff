"""What Locust's web UI shows of the tests started from it: the plugin's side of load_webui."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from loadkit.engines.locust.plugin.load_test import LoadTest
from loadkit.report.load_webui import Rows, web_tab_rows, web_tab_rows_of_results

Tests = tuple[LoadTest[Any] | None, LoadTest[Any] | None]
"""The plugin's current test and the one before it."""


class PluginWebUiTest:
    """The plugin's tests as the web UI sees them (``load_webui.WebUiTest``)."""

    def __init__(self, tests: Callable[[], Tests]) -> None:
        """``tests`` gives the plugin's current test and the one before (None: none yet)."""
        self._tests = tests

    def tab_rows(self) -> Rows:
        """The test under way live from its recorder; a stopped one from the results it wrote."""
        test, _ = self._tests()
        if test is None:
            return web_tab_rows(None)
        if test.results is not None:
            return web_tab_rows_of_results(test.results)
        return web_tab_rows(test.recording.flush())

    def stopping(self) -> bool:
        """Whether the current test's users were told to stop and its results are not out."""
        test, _ = self._tests()
        return test is not None and test.stop_time is not None and not test.finalized

    def last_results(self) -> Path | None:
        """The results file of the last test stopped (the current one's once written, else the
        one before's)."""
        for test in self._tests():
            if test is not None and test.results_path is not None:
                return test.results_path
        return None

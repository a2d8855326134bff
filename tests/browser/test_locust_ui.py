"""`loadkit ui` in a real browser: a test started and stopped from the page itself, then the
loadkit tabs hold the figures of the results file it wrote, and the page links its HTML report.

Locust's page polls its stats every 2 s only while a test runs and keeps what its last poll
brought: what a user sees after pressing Stop is exactly what is checked here, in the page that
pressed it (a fresh page would ask once more and hide a stale last poll).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin

import pytest
from playwright.sync_api import Page

from loadkit.measure.results import LatencySummary, LoadResults, read_results
from loadkit.run.bundled_service import free_port
from tests.browser.conftest import RecordedPage
from tests.browser.failing_share_server import FailingShareServer, failing_share_server
from tests.loadkit.test_load_ui import wait_for_port

pytestmark = pytest.mark.slow

STEP_TIMEOUT_MS = 15_000
"""The longest one step in the page may take (the first figures, the results file, the report)."""


@dataclass
class LocustUi:
    """A `loadkit ui` serving its web UI, the API it loads and where its tests write."""

    url: str
    target: FailingShareServer
    results_dir: Path
    process: subprocess.Popen[str]


@pytest.fixture(scope="module")
def locust_ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocustUi]:
    """`loadkit ui` (the url scenario) against an API failing one request in four with two
    kinds in turn; stopped by its process handle (Ctrl-C, then kill) at the module's end."""
    folder = tmp_path_factory.mktemp("ui") / "results"
    port = free_port()
    with failing_share_server(fail_every=4, hold_s=0.01) as (target_url, target):
        command = [
            sys.executable, "-m", "loadkit", "ui", "--scenario", "url",
            "--host", f"{target_url}/items", "--web-port", str(port),
            "--results-dir", str(folder),
        ]  # fmt: skip
        ui = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            wait_for_port(port)
            yield LocustUi(f"http://127.0.0.1:{port}", target, folder, ui)
        finally:
            ui.send_signal(signal.SIGINT)
            try:
                ui.communicate(timeout=20)
            except subprocess.TimeoutExpired:
                ui.kill()
                ui.communicate()


def table_rows(page: Page, tab: str) -> list[list[str]]:
    """The cells of the table under one of the page's tabs, row by row (headers aside)."""
    page.get_by_role("tab", name=tab).click()
    body = page.locator("table tbody")
    body.locator("tr").first.wait_for()
    return [
        [cell.strip() for cell in row.locator("td").all_inner_texts()]
        for row in body.locator("tr").all()
    ]


def latency_cells(name: str, requests: int, errors: int, latency: LatencySummary) -> list[str]:
    """A row of the latency tab as the page shows the numbers (JavaScript's own formatting)."""
    figures = [latency.p50, latency.p95, latency.p99, latency.max]
    return [name, str(requests), str(errors), *(js_number(f) for f in figures)]


def js_number(value: float | None) -> str:
    """A number as JavaScript prints it (1040.0 -> "1040", 43.871 -> "43.871")."""
    assert value is not None
    return str(int(value)) if value == int(value) else repr(value)


def test_a_test_run_from_the_page_shows_its_results_files_figures_and_links_its_report(
    recorded_page: RecordedPage, locust_ui: LocustUi
) -> None:
    page = recorded_page.page
    page.set_default_timeout(STEP_TIMEOUT_MS)
    page.goto(locust_ui.url)
    # Started from the page's own form, as a user does.
    page.fill("input[name=userCount]", "2")
    page.fill("input[name=spawnRate]", "2")
    page.get_by_role("button", name="Start").click()
    # Running: the live tab shows the endpoint being measured (at the page's next poll, 2 s
    # apart: the test runs that long), then the page stops the test.
    page.get_by_role("tab", name="Exact latency (loadkit)").click()
    page.locator("table tbody tr", has_text="GET /items").wait_for()
    page.get_by_role("button", name="Stop").click()
    page.get_by_role("button", name="New").wait_for()  # the page saw the test stopped

    (results_file,) = locust_ui.results_dir.glob("ui-*.json")
    results = read_results(results_file)
    assert isinstance(results, LoadResults) and results.config["ui"] is True
    # The API failed one request in four, each failure with a known kind: the tabs have content.
    assert results.totals.requests > 20
    assert {(g.kind, tuple(g.status_codes)) for g in results.errors} == {
        ("overloaded", ("503",)),
        ("database_error", ("500",)),
    }
    # One in four, give or take the requests in flight at the stop and the launcher's preflight.
    assert abs(results.totals.errors - results.totals.requests / 4) <= 3

    expected_latency = [
        latency_cells(e.name, e.requests, e.errors, e.latency_ms) for e in results.endpoints
    ]
    expected_latency.append(
        latency_cells(
            "Aggregated", results.totals.requests, results.totals.errors, results.latency_ms
        )
    )
    assert table_rows(page, "Exact latency (loadkit)") == expected_latency
    assert table_rows(page, "Errors by kind (loadkit)") == [
        [
            g.endpoint,
            g.kind,
            str(g.count),
            ", ".join(f"{code}x{n}" for code, n in g.status_codes.items()),
            g.example_trace_id or "",
        ]
        for g in results.errors
    ]
    recorded_page.assert_no_console_errors()
    recorded_page.assert_requests_stay_local()

    # The page links the stopped test's results file and HTML report ("Download data").
    page.get_by_role("tab", name="Download Data").click()
    results_link = page.get_by_role("link", name="Results file of the last stopped test (loadkit)")
    href = results_link.get_attribute("href")
    assert href is not None
    served = page.request.get(urljoin(page.url, href))
    assert json.loads(served.body()) == json.loads(results_file.read_bytes())

    recorded_page.requests.clear()
    page.get_by_role("link", name="HTML report of the last stopped test (loadkit)").click()
    page.wait_for_url("**/loadkit/report")
    overall = page.locator("tr[data-overall]")
    overall.wait_for()
    shown = overall.locator('td[data-metric="requests"]').inner_text().replace(",", "")
    assert int(shown) == results.totals.requests
    for group in results.errors:
        page.locator(f'tr[data-error-group][data-kind="{group.kind}"]').wait_for()
    assert results_file.with_suffix(".html").is_file()  # written beside the results file
    recorded_page.assert_no_console_errors()
    # The report is self-contained: nothing is fetched beside the page itself.
    recorded_page.assert_no_requests(opened=page.url)

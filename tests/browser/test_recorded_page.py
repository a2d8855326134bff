"""The browser fixture itself: what the report's and the UI's browser tests rely on it to catch."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page

from tests.browser.conftest import RecordedPage, is_local


@pytest.mark.parametrize(
    ("url", "local"),
    [
        ("file:///tmp/report.html", True),
        ("data:image/png;base64,AAAA", True),
        ("http://127.0.0.1:8089/stats/requests", True),
        ("http://localhost:8089/", True),
        ("http://[::1]:8089/", True),
        ("https://cdn.jsdelivr.net/npm/chart.js", False),
        ("http://127.0.0.1.example.com/", False),
        ("http://10.0.0.1/", False),
    ],
)
def test_what_counts_as_staying_on_the_machine(url: str, local: bool) -> None:
    assert is_local(url) is local


def test_the_page_records_console_errors_and_requests_and_blocks_the_network(
    recorded_page: RecordedPage, tmp_path: Path
) -> None:
    page_file = tmp_path / "page.html"
    page_file.write_text(
        "<!doctype html><html><body><img src='data:image/gif;base64,R0lGODlhAQABAAAAACw='>"
        "<script>console.error('drawn badly');</script>"
        "<script src='https://cdn.example.com/lib.js'></script></body></html>"
    )
    recorded_page.page.goto(page_file.as_uri())
    assert any("drawn badly" in m for m in recorded_page.console_errors)
    assert "https://cdn.example.com/lib.js" in recorded_page.requests
    with pytest.raises(AssertionError, match="drawn badly"):
        recorded_page.assert_no_console_errors()
    with pytest.raises(AssertionError, match=r"cdn\.example\.com"):
        recorded_page.assert_requests_stay_local()
    with pytest.raises(AssertionError, match=r"cdn\.example\.com"):
        recorded_page.assert_no_requests(opened=page_file.as_uri())


def test_a_self_contained_page_passes_every_check(
    page: Page, recorded_page: RecordedPage, tmp_path: Path
) -> None:
    assert page is recorded_page.page
    page_file = tmp_path / "page.html"
    page_file.write_text(
        "<!doctype html><html><body><p id='figure'>1041.4</p>"
        "<script>document.getElementById('figure').dataset.drawn = 'yes';</script></body></html>"
    )
    recorded_page.page.goto(page_file.as_uri())
    assert recorded_page.page.get_attribute("#figure", "data-drawn") == "yes"
    recorded_page.assert_no_console_errors()
    recorded_page.assert_requests_stay_local()
    recorded_page.assert_no_requests(opened=page_file.as_uri())

"""A real browser for the tests: Debian's Chromium driven by Playwright, one per session.

Playwright's own browser download is not used: the system's ``chromium`` (Debian package, which
``.ci/run`` installs when missing) is launched by path. Starting it costs about a second, so one
browser serves the whole session; each test gets a fresh context (no cookies or storage shared)
and a page (``page``) that records what the tests assert on (``recorded_page``): console errors,
uncaught page errors and every request the page made. Requests that would leave the machine are
aborted as well as recorded, so a test never reaches the internet, and the report's "works
offline" is checked, not assumed. (Chromium asks no ``/favicon.ico`` in a routed context, so a
page served over HTTP without an icon of its own is not caught by that here.)

Where Chromium is missing the browser tests are skipped with the reason, except when ``CI`` is
set: there a missing browser fails them (like ``ENGINES_TEST_REQUIRE_POSTGRES``), so that CI never
passes by skipping.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Playwright, Route, sync_playwright
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Request as BrowserRequest

REQUIRE_BROWSER_ENV = "CI"
"""When set (any CI system sets it), a missing Chromium fails the browser tests instead of
skipping them."""

BROWSER_NAMES = ("chromium", "chromium-browser")
"""The system browser's command: Debian's package installs ``chromium``, Ubuntu's
``chromium-browser``."""

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
IN_PAGE_SCHEMES = frozenset({"data", "blob", "about"})
"""Schemes that never touch a network or a file: content carried by the page itself."""

DEFAULT_TIMEOUT_MS = 10_000
"""Every wait of a browser test is bounded: a page that never shows what is awaited fails in
10 s."""


def find_chromium() -> str | None:
    """The path of the system's Chromium, or None."""
    for name in BROWSER_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


def is_local(url: str) -> bool:
    """Whether a request's URL stays on this machine: a file, in-page content, or loopback."""
    parts = urlsplit(url)
    if parts.scheme == "file" or parts.scheme in IN_PAGE_SCHEMES:
        return True
    return parts.scheme in {"http", "https", "ws", "wss"} and parts.hostname in LOOPBACK_HOSTS


@dataclass
class RecordedPage:
    """A page and what it did: console errors, uncaught errors and every request it made."""

    page: Page
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    def assert_no_console_errors(self) -> None:
        """Fail naming each console error or uncaught exception the page logged."""
        problems = [f"console: {m}" for m in self.console_errors]
        problems += [f"uncaught: {e}" for e in self.page_errors]
        assert not problems, "the page logged errors:\n" + "\n".join(problems)

    def assert_requests_stay_local(self) -> None:
        """Fail naming each request that went anywhere but loopback, a file or the page itself."""
        away = [url for url in self.requests if not is_local(url)]
        assert not away, "requests left the machine:\n" + "\n".join(away)

    def assert_no_requests(self, opened: str | None = None) -> None:
        """Fail naming each request the page made, the document it was opened from (``opened``)
        and content it carries inline (``data:``, ``blob:``) aside: a self-contained file."""
        made = [
            url
            for url in self.requests
            if url != opened and urlsplit(url).scheme not in IN_PAGE_SCHEMES
        ]
        assert not made, "a self-contained page made requests:\n" + "\n".join(made)


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """The system Chromium's path; skipped (failed when ``CI`` is set) where there is none."""
    path = find_chromium()
    if path is None:
        reason = (
            "no system Chromium (looked for: " + ", ".join(BROWSER_NAMES) + "); "
            "install Debian's `chromium` package (.ci/run does)"
        )
        if os.environ.get(REQUIRE_BROWSER_ENV):
            pytest.fail(f"{REQUIRE_BROWSER_ENV} is set but: {reason}")
        pytest.skip(reason)
    return path


@pytest.fixture(scope="package")
def playwright_driver() -> Iterator[Playwright]:
    """Playwright's driver process, one for the browser tests.

    Package-scoped, not session-scoped: while its sync API is open it leaves an asyncio loop
    marked running in this thread, and every later test calling ``asyncio.run`` would fail
    ("cannot be called from a running event loop"); it is closed when tests/browser ends."""
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="package")
def browser(playwright_driver: Playwright, chromium_path: str) -> Iterator[Browser]:
    """One headless Chromium for the browser tests (its start-up is the costly part)."""
    # Chromium refuses to run its sandbox as root (CI containers run as root).
    args = ["--no-sandbox"] if os.geteuid() == 0 else []
    launched = playwright_driver.chromium.launch(
        executable_path=chromium_path, headless=True, args=[*args, "--disable-gpu"]
    )
    yield launched
    launched.close()


@pytest.fixture
def recorded_page(browser: Browser) -> Iterator[RecordedPage]:
    """A fresh page in a context of its own, recording console errors, page errors and requests;
    requests leaving the machine are aborted (and recorded)."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(DEFAULT_TIMEOUT_MS)
    page = context.new_page()
    recorded = RecordedPage(page)

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            recorded.console_errors.append(f"{message.text} ({message.location.get('url', '')})")

    def on_request(request: BrowserRequest) -> None:
        recorded.requests.append(request.url)

    def keep_local(route: Route) -> None:
        if is_local(route.request.url):
            route.continue_()
        else:
            route.abort("blockedbyclient")

    page.on("console", on_console)
    page.on("pageerror", lambda error: recorded.page_errors.append(str(error)))
    page.on("request", on_request)
    context.route("**/*", keep_local)
    try:
        yield recorded
    finally:
        # The browser may have gone away with the test that failed.
        with contextlib.suppress(PlaywrightError):
            context.close()


@pytest.fixture
def page(recorded_page: RecordedPage) -> Page:
    """The recorded page itself, for tests that drive it (its records: ``recorded_page``, the
    same page when a test asks for both)."""
    return recorded_page.page

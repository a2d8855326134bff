"""docs/report.png: the HTML report of a run whose gate fails, as Chromium shows it.

The run is synthesized through the real recorder (tests/loadkit/report_runs.py: 60 s at 100
requests/s, 3 % errors, a 6 s freeze from second 20), judged by the repository's acceptance.toml
(its P95 and no-freeze criteria fail). Headless Chromium (Playwright, Debian's /usr/bin/chromium)
takes the top of the page: the verdict, the run's facts and the time charts.

Run: .venv/bin/python bench/report_screenshot.py [--out docs/report.png]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from playwright.sync_api import sync_playwright  # noqa: E402

from loadkit.measure.results import write_results  # noqa: E402
from loadkit.run.report import write_html_report  # noqa: E402
from tests.loadkit.report_runs import synthetic_run  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
RENDERED = "() => window.Bokeh !== undefined && Bokeh.index.roots.length >= 4"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "report.png")
    parser.add_argument("--height", type=int, default=1700, help="pixels of the page's top")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="report-shot-"))
    run = write_results(folder / "load.json", synthetic_run(freeze=(20.0, 26.0)))
    html = write_html_report([run], folder / "report.html", config=ROOT / "acceptance.toml")
    with sync_playwright() as driver:
        browser = driver.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
        )
        page = browser.new_page(viewport={"width": 1280, "height": args.height})
        page.goto(html.as_uri())
        page.wait_for_function(RENDERED)
        page.wait_for_timeout(500)  # the canvases' last paint
        page.screenshot(
            path=str(args.out), clip={"x": 0, "y": 0, "width": 1280, "height": args.height}
        )
        browser.close()
    print(f"{args.out} from {html}")


if __name__ == "__main__":
    main()

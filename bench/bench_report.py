"""The HTML report: generation time and file size for a 60 s and a 600 s run, and the chart
libraries measured against each other (why Bokeh, docs/report.md).

A benchmark, not a test: no assertions. The runs are synthesized through the real recorder
(tests/loadkit/report_runs.py: 200 requests/s over three endpoints, 3 % errors of three kinds, a
6 s freeze), written as results files, then:

1. ``loadkit report --html`` (``write_html_report``) on each, timed (median of the rounds), and
   the page's size; ``--hgrm`` and ``--csv`` too.
2. The same four charts of the 60 s run drawn by Bokeh (loadkit's page) and by Altair (Vega-Lite,
   its JavaScript inlined by ``vl-convert``'s bundle, the only way it opens offline): file size,
   generation time, and the time from navigation to every chart drawn in headless Chromium
   (Playwright, /usr/bin/chromium), alternating A B A B on the same machine. Plotly is not
   measured: its ``plotly.min.js`` alone (4.8 MB) is over the 3 MB target.

Run: .venv/bin/python bench/bench_report.py [--rounds 5] [--write]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from loadkit.measure.results import LoadResults, read_results, write_results  # noqa: E402
from loadkit.report.hgrm import percentile_distribution  # noqa: E402
from loadkit.report.timeline_figures import error_kinds, second_figures  # noqa: E402
from loadkit.run.report import (  # noqa: E402
    load_report,
    write_hgrm_files,
    write_html_report,
    write_timeline_csv,
)
from tests.loadkit.report_runs import synthetic_run  # noqa: E402

from benchmarks_page import write_section  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
RATE = 200
BOKEH_DRAWN = (
    "() => window.Bokeh !== undefined && Bokeh.documents.length > 0"
    " && Bokeh.index.roots.length >= 4"
)
VEGA_DRAWN = "() => document.querySelectorAll('.vega-embed canvas, .vega-embed svg').length > 0"


def median_time(action: Callable[[], object], rounds: int) -> float:
    """The median wall time of ``action`` over ``rounds`` calls, in seconds."""
    times = []
    for _ in range(rounds):
        began = time.perf_counter()
        action()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def altair_page(results: LoadResults, path: Path) -> None:
    """The report's four charts in Altair, interactive (tooltips, x zoom), inlined offline."""
    import altair as alt

    seconds = second_figures(results.timeline)
    frame = alt.Data(  # type: ignore[no-untyped-call, unused-ignore]
        values=[
            {
                "t": s.t_s,
                "completions": s.completions,
                "errors": s.errors,
                "P50": s.p50_ms,
                "P95": s.p95_ms,
                "P99": s.p99_ms,
                "max": s.max_ms,
            }
            for s in seconds
        ]
    )
    zoom = alt.selection_interval(bind="scales", encodings=["x"])
    latency = (
        alt.Chart(frame)
        .transform_fold(["P50", "P95", "P99", "max"], as_=["figure", "ms"])
        .mark_line()
        .encode(x="t:Q", y="ms:Q", color="figure:N", tooltip=["t:Q", "figure:N", "ms:Q"])
        .add_params(zoom)
        .properties(width=1000, height=240)
    )
    throughput = (
        alt.Chart(frame)
        .mark_line()
        .encode(x="t:Q", y="completions:Q", tooltip=["t:Q", "completions:Q", "errors:Q"])
        .properties(width=1000, height=240)
    )
    kinds = error_kinds(seconds)
    stacked = alt.Data(  # type: ignore[no-untyped-call, unused-ignore]
        values=[
            {"t": s.t_s, "kind": kind, "count": s.errors_by_kind.get(kind, 0)}
            for s in seconds
            for kind in kinds
        ]
    )
    errors = (
        alt.Chart(stacked)
        .mark_bar()
        .encode(x="t:O", y="count:Q", color="kind:N", tooltip=["t:O", "kind:N", "count:Q"])
        .properties(width=1000, height=240)
    )
    distribution = alt.Data(  # type: ignore[no-untyped-call, unused-ignore]
        values=[
            {"x": p.inverse_tail, "percentile": p.percentile, "ms": p.value_ms}
            for p in percentile_distribution(results.histogram)
            if p.percentile < 100
        ]
    )
    tail = (
        alt.Chart(distribution)
        .mark_line()
        .encode(
            x=alt.X("x:Q", scale=alt.Scale(type="log")),
            y="ms:Q",
            tooltip=["percentile:Q", "ms:Q"],
        )
        .properties(width=1000, height=300)
    )
    alt.vconcat(latency, throughput, errors, tail).save(str(path), inline=True)


COLD = {
    "bokeh": "from loadkit.run.report import write_html_report\n"
    "write_html_report([Path(sys.argv[1])], Path(sys.argv[2]))",
    "altair": "from loadkit.measure.results import read_results\n"
    "from bench_report import altair_page\n"
    "altair_page(read_results(Path(sys.argv[1])), Path(sys.argv[2]))",
}


def cold_s(library: str, source: Path, out: Path) -> float:
    """Seconds for a fresh Python process to import the library and write the page (what one
    `loadkit report` costs; vl-convert builds its JavaScript bundle once per process)."""
    code = "import sys\nfrom pathlib import Path\n" + COLD[library]
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'bench'}"}
    began = time.perf_counter()
    subprocess.run([sys.executable, "-c", code, str(source), str(out)], check=True, env=env)
    return time.perf_counter() - began


def first_render_s(page: Any, path: Path, drawn: str) -> float:
    """Seconds from navigating to ``path`` to every chart drawn (``drawn`` true)."""
    began = time.perf_counter()
    page.goto(path.as_uri())
    page.wait_for_function(drawn, timeout=60_000)
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-report-"))
    rows = []
    for duration in (60, 600):
        results = synthetic_run(duration_s=duration, rate=RATE, freeze=(20.0, 26.0))
        source = write_results(folder / f"load{duration}.json", results)
        html = folder / f"report{duration}.html"
        generate = median_time(lambda: write_html_report([source], html), args.rounds)  # noqa: B023
        loaded = load_report([source])
        hgrm = median_time(lambda: write_hgrm_files(loaded, folder / "hgrm"), args.rounds)  # noqa: B023
        csv_s = median_time(lambda: write_timeline_csv(loaded, folder / "t.csv"), args.rounds)  # noqa: B023
        rows.append(
            f"| {duration} s | {results.totals.requests:,} | {source.stat().st_size / 1e6:.2f} MB "
            f"| {generate:.2f} s | {html.stat().st_size / 1e6:.2f} MB | {hgrm:.2f} s "
            f"| {csv_s:.2f} s |"
        )
        print(rows[-1], flush=True)

    # The libraries, on the 60 s run.
    from playwright.sync_api import sync_playwright

    sixty = read_results(folder / "load60.json")
    assert isinstance(sixty, LoadResults)
    bokeh_page = folder / "report60.html"
    altair_file = folder / "altair60.html"
    altair_generate = median_time(lambda: altair_page(sixty, altair_file), args.rounds)
    bokeh_generate = median_time(
        lambda: write_html_report([folder / "load60.json"], bokeh_page), args.rounds
    )
    colds: dict[str, list[float]] = {"bokeh": [], "altair": []}
    for _ in range(args.rounds):  # A B A B
        colds["bokeh"].append(cold_s("bokeh", folder / "load60.json", folder / "cold-b.html"))
        colds["altair"].append(cold_s("altair", folder / "load60.json", folder / "cold-a.html"))
    bokeh_cold = statistics.median(colds["bokeh"])
    altair_cold = statistics.median(colds["altair"])
    renders: dict[str, list[float]] = {"bokeh": [], "altair": []}
    with sync_playwright() as driver:
        browser = driver.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
        )
        for _ in range(args.rounds):  # A B A B: both see the same machine
            for name, path, drawn in (
                ("bokeh", bokeh_page, BOKEH_DRAWN),
                ("altair", altair_file, VEGA_DRAWN),
            ):
                context = browser.new_context(viewport={"width": 1400, "height": 900})
                renders[name].append(first_render_s(context.new_page(), path, drawn))
                context.close()
        browser.close()
    bokeh_render = statistics.median(renders["bokeh"])
    altair_render = statistics.median(renders["altair"])
    libraries = [
        f"| Bokeh 3.9 (loadkit's page: 4 charts, tables, verdict) | "
        f"{bokeh_page.stat().st_size / 1e6:.2f} MB | {bokeh_generate:.2f} s | "
        f"{bokeh_cold:.2f} s | {bokeh_render:.2f} s | INLINE resources from the package |",
        f"| Altair 6 + vl-convert (the 4 charts alone) | {altair_file.stat().st_size / 1e6:.2f} MB "
        f"| {altair_generate:.2f} s | {altair_cold:.2f} s | {altair_render:.2f} s | "
        "vl-convert's JavaScript bundle |",
        "| Plotly | > 4.8 MB (plotly.min.js alone) | — | — | — | over the 3 MB target |",
    ]
    for line in libraries:
        print(line)
    print(f"render ratio altair/bokeh: {altair_render / bokeh_render:.2f}")
    section = "\n".join(
        [
            "## HTML report: generation and size, chart libraries (bench/bench_report.py)",
            "",
            f"`.venv/bin/python bench/bench_report.py --rounds {args.rounds} --write` — runs "
            f"synthesized through the recorder ({RATE} requests/s, 3 endpoints, 3 % errors of 3 "
            "kinds, a 6 s freeze); times are medians of the rounds, on this 2-core machine.",
            "",
            "| run | requests | results file | `report --html` | HTML | `--hgrm` | `--csv` |",
            "|---|---|---|---|---|---|---|",
            *rows,
            "",
            "Chart libraries, same 60 s run, first render = navigation to every chart drawn in "
            "headless Chromium (Playwright, Debian's chromium), A B A B:",
            "",
            "| library | file | generation (warm) | fresh process | first render | offline by |",
            "|---|---|---|---|---|---|",
            *libraries,
            "",
            f"First render, Altair / Bokeh: {altair_render / bokeh_render:.2f}; a fresh "
            f"process making the page, Altair / Bokeh: {altair_cold / bokeh_cold:.2f}.",
        ]
    )
    if args.write:
        write_section(section)
    print(section)


if __name__ == "__main__":
    main()

"""The HTML report's interactive charts, drawn by Bokeh (docs/report.md says why Bokeh).

Four charts per load run, each a Bokeh model the page embeds (``loadkit.report.html``):

- ``latency``: P50, P95, P99 and max of each second, the longest stall shaded, stages marked; in
  an open-model run the response time's, with the service time's P50, P95 and P99 dashed beside
  them (the whole run's service P50 and P95 as flat lines for files without each second's);
- ``throughput``: completions and errors per second;
- ``errors``: errors per second stacked by kind;
- ``distribution``: HdrHistogram's percentile plot (log scale to 99.999 %), one line per
  endpoint and the whole run, chosen with a selector, the baseline's dashed beside it.

The three time charts share their x range: a zoom on a time range (drag, wheel) zooms all three.
Hovering shows each value. Pure: figures in, Bokeh models out; nothing is written here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bokeh.layouts import column
from bokeh.models import ColumnDataSource, CustomJS, FixedTicker, HoverTool, Range1d
from bokeh.models.annotations import BoxAnnotation, Label, Span
from bokeh.models.layouts import LayoutDOM
from bokeh.models.renderers import DataRenderer
from bokeh.models.widgets import Select
from bokeh.palettes import Category10_10
from bokeh.plotting import figure

from loadkit.measure.results import EncodedHistogram, LoadResults, SmokeResults
from loadkit.report.hgrm import PercentilePoint, percentile_distribution
from loadkit.report.timeline_figures import SecondFigures, error_kinds, has_service_times

CHART_WIDTH = 1100
TIME_CHART_HEIGHT = 280
DISTRIBUTION_HEIGHT = 360
TIME_TOOLS = "xpan,xbox_zoom,xwheel_zoom,reset,save"
ALL_ENDPOINTS = "all endpoints"
DISTRIBUTION_TOP = 100_000.0
"""The distribution's x axis ends at 1/(1-p) = 100,000: 99.999 %."""
DISTRIBUTION_TICKS = {
    1.0: "0%",
    10.0: "90%",
    100.0: "99%",
    1_000.0: "99.9%",
    10_000.0: "99.99%",
    100_000.0: "99.999%",
}
LATENCY_LINES = (
    ("p50_ms", "P50", "#1f77b4"),
    ("p95_ms", "P95", "#ff7f0e"),
    ("p99_ms", "P99", "#d62728"),
    ("max_ms", "max", "#7f7f7f"),
)
SERVICE_LINES = (
    ("service_p50_ms", "service P50", "#1f77b4"),
    ("service_p95_ms", "service P95", "#ff7f0e"),
    ("service_p99_ms", "service P99", "#d62728"),
)
"""An open run's service time per second: dashed, in the colour of its response-time twin."""
STALL_COLOR = "#d62728"
STAGE_COLOR = "#2ca02c"
SERVICE_COLOR = "#9467bd"

Traffic = LoadResults | SmokeResults


@dataclass(frozen=True)
class RunCharts:
    """One run's charts, keyed by their ``data-chart`` name."""

    charts: dict[str, LayoutDOM]


def _nan(value: float | None) -> float:
    # Bokeh draws a gap at NaN: a second with nothing completed has no latency.
    return float("nan") if value is None else value


def _time_figure(title: str, y_label: str, x_range: Range1d | None) -> Any:
    options: dict[str, Any] = {
        "title": title,
        "width": CHART_WIDTH,
        "height": TIME_CHART_HEIGHT,
        "tools": TIME_TOOLS,
        "active_drag": "xbox_zoom",
        "x_axis_label": "seconds into the run",
        "y_axis_label": y_label,
        "sizing_mode": "stretch_width",
    }
    if x_range is not None:
        options["x_range"] = x_range
    return figure(**options)


def latency_chart(
    results: Traffic, seconds: Sequence[SecondFigures], x_range: Range1d | None = None
) -> Any:
    """Response time of each second: P50, P95, P99 and max, and in an open-model run the service
    time's P50, P95 and P99 dashed beside them; the longest stall shaded, the stages marked
    where they begin."""
    open_model = isinstance(results, LoadResults) and results.schedule is not None
    what = "response time (from the due time)" if open_model else "latency"
    plot = _time_figure(f"{what} per second (ms)", "ms", x_range)
    per_second_service = has_service_times(seconds)
    lines = LATENCY_LINES + (SERVICE_LINES if per_second_service else ())
    data: dict[str, list[Any]] = {"t": [s.t_s for s in seconds]}
    for key, _, _ in lines:
        data[key] = [_nan(getattr(s, key)) for s in seconds]
    data["completions"] = [s.completions for s in seconds]
    source = ColumnDataSource(data)
    renderers = []
    for key, label, color in LATENCY_LINES:
        renderers.append(
            plot.line("t", key, source=source, color=color, line_width=2, legend_label=label)
        )
    tooltips = [
        ("second", "@t"),
        ("P50", "@p50_ms{0,0.0} ms"),
        ("P95", "@p95_ms{0,0.0} ms"),
        ("P99", "@p99_ms{0,0.0} ms"),
        ("max", "@max_ms{0,0.0} ms"),
    ]
    if per_second_service:
        # The gap between a line and its dashed twin is the time spent waiting to be sent: the
        # generator's queueing, second by second.
        for key, label, color in SERVICE_LINES:
            plot.line(
                "t",
                key,
                source=source,
                color=color,
                line_width=2,
                line_dash="dashed",
                legend_label=label,
                name=key,
            )
            tooltips.append((label, f"@{key}{{0,0.0}} ms"))
    tooltips.append(("completions", "@completions"))
    plot.add_tools(HoverTool(renderers=[renderers[1]], mode="vline", tooltips=tooltips))
    service = results.service_time_ms
    if open_model and service is not None and not per_second_service:
        # A file without each second's service times: the run's figures, drawn flat, so that
        # the gap to the response time still shows the generator's queueing.
        for value, label in ((service.p50, "P50"), (service.p95, "P95")):
            if value is None:
                continue
            plot.add_layout(
                Span(
                    location=value, dimension="width", line_color=SERVICE_COLOR, line_dash="dotted"
                )
            )
            plot.add_layout(
                Label(
                    x=0,
                    y=value,
                    x_offset=4,
                    text=f"service time {label} (whole run) {value:,.1f} ms",
                    text_color=SERVICE_COLOR,
                    text_font_size="11px",
                )
            )
    stall = results.longest_stall
    if stall is not None:
        plot.add_layout(
            BoxAnnotation(
                left=stall.start_s,
                right=stall.end_s,
                fill_color=STALL_COLOR,
                fill_alpha=0.15,
                name="longest-stall",
            )
        )
        plot.add_layout(
            Label(
                x=stall.start_s,
                y=0,
                y_units="screen",
                text=f"stall {stall.duration_s:.2f} s",
                text_color=STALL_COLOR,
                text_font_size="11px",
            )
        )
    if isinstance(results, LoadResults) and results.stages:
        offset = results.span_start_s or 0.0
        for stage in results.stages:
            plot.add_layout(
                Span(
                    location=offset + stage.start_s,
                    dimension="height",
                    line_color=STAGE_COLOR,
                    line_dash="dashed",
                )
            )
            plot.add_layout(
                Label(
                    x=offset + stage.start_s,
                    y=TIME_CHART_HEIGHT - 60,
                    y_units="screen",
                    text=stage.label(),
                    text_color=STAGE_COLOR,
                    text_font_size="11px",
                )
            )
    plot.legend.location = "top_left"
    plot.legend.click_policy = "hide"
    return plot


def throughput_chart(seconds: Sequence[SecondFigures], x_range: Range1d) -> Any:
    """Completions and errors per second."""
    plot = _time_figure("completions per second", "per second", x_range)
    source = ColumnDataSource(
        {
            "t": [s.t_s for s in seconds],
            "completions": [s.completions for s in seconds],
            "ok": [s.completions - s.errors for s in seconds],
            "errors": [s.errors for s in seconds],
        }
    )
    line = plot.line(
        "t", "completions", source=source, color="#1f77b4", line_width=2, legend_label="all"
    )
    plot.line("t", "errors", source=source, color="#d62728", line_width=2, legend_label="errors")
    plot.add_tools(
        HoverTool(
            renderers=[line],
            mode="vline",
            tooltips=[
                ("second", "@t"),
                ("completions", "@completions{0,0}"),
                ("ok", "@ok{0,0}"),
                ("errors", "@errors{0,0}"),
            ],
        )
    )
    plot.y_range.start = 0
    plot.legend.location = "top_left"
    return plot


def errors_chart(
    seconds: Sequence[SecondFigures], x_range: Range1d, *, errors: int, not_sent: int = 0
) -> Any:
    """Errors per second, stacked by kind (the most frequent kind at the bottom); ``errors``
    and ``not_sent`` are the run's totals, so that errors the per-second timeline does not hold
    (iterations never sent) are said rather than drawn as no errors."""
    kinds = error_kinds(seconds)
    plot = _time_figure("errors per second by kind", "errors per second", x_range)
    # Kinds are the API's words: columns get made-up names (a kind may be called "t").
    columns = [f"kind_{index}" for index in range(len(kinds))]
    data: dict[str, list[Any]] = {"t": [s.t_s for s in seconds]}
    data["errors"] = [s.errors for s in seconds]
    for kind, name in zip(kinds, columns, strict=True):
        data[name] = [s.errors_by_kind.get(kind, 0) for s in seconds]
    source = ColumnDataSource(data)
    if kinds:
        colors = [Category10_10[index % 10] for index in range(len(kinds))]
        bars = plot.vbar_stack(
            columns, x="t", width=0.9, source=source, color=colors, legend_label=kinds
        )
        tooltips = [("second", "@t"), ("errors", "@errors{0,0}")]
        tooltips += [(kind, f"@{name}{{0,0}}") for kind, name in zip(kinds, columns, strict=True)]
        plot.add_tools(HoverTool(renderers=list(bars), tooltips=tooltips))
        plot.legend.location = "top_left"
    else:
        # An empty chart still says why (and draws the zero line, so it is not blank).
        plot.line("t", "errors", source=source, color="#2ca02c", line_width=2)
    note = errors_note(errors=errors, in_timeline=sum(s.errors for s in seconds), not_sent=not_sent)
    if note:
        plot.add_layout(Label(x=10, y=10, x_units="screen", y_units="screen", text=note))
    plot.y_range.start = 0
    return plot


def errors_note(*, errors: int, in_timeline: int, not_sent: int) -> str | None:
    """What the errors chart says below its bars: that the run had no errors, or how many of
    its errors the per-second timeline does not hold (and so the chart does not draw)."""
    if errors == 0:
        return "no errors in this run"
    missing = errors - in_timeline
    if missing <= 0:
        return None
    if missing == not_sent:
        why = "not sent (iterations still due at the end of the run)"
    elif not_sent:
        why = f"{not_sent:,} of them not sent (iterations still due at the end of the run)"
    else:
        why = "counted in the run's totals only"
    return f"{missing:,} of the run's {errors:,} errors are not in the per-second timeline: {why}"


def _distribution_source(points: Sequence[PercentilePoint]) -> ColumnDataSource:
    # The 100 % tick has no finite 1/(1-p); HdrHistogram's plotter leaves it out as well.
    finite = [p for p in points if p.percentile < 100.0]
    return ColumnDataSource(
        {
            "x": [p.inverse_tail for p in finite],
            "percentile": [p.percentile for p in finite],
            "value": [p.value_ms for p in finite],
            "count": [p.total_count for p in finite],
        }
    )


def _histograms(results: Traffic) -> dict[str, EncodedHistogram]:
    histograms = {ALL_ENDPOINTS: results.histogram}
    for endpoint in results.endpoints:
        histograms.setdefault(endpoint.name, endpoint.histogram)
    return histograms


def distribution_chart(results: Traffic, baseline: Traffic | None = None) -> LayoutDOM:
    """HdrHistogram's percentile distribution of each endpoint (and of the whole run), one at
    a time (a selector), the baseline's dashed beside it when given."""
    plot = figure(
        title="latency by percentile (HdrHistogram percentile distribution)",
        width=CHART_WIDTH,
        height=DISTRIBUTION_HEIGHT,
        x_axis_type="log",
        x_range=Range1d(start=1.0, end=DISTRIBUTION_TOP),
        tools="box_zoom,wheel_zoom,pan,reset,save",
        x_axis_label="percentile",
        y_axis_label="ms",
        sizing_mode="stretch_width",
    )
    plot.xaxis.ticker = FixedTicker(ticks=list(DISTRIBUTION_TICKS))
    plot.xaxis.major_label_overrides = {tick: label for tick, label in DISTRIBUTION_TICKS.items()}
    current = _histograms(results)
    before = _histograms(baseline) if baseline is not None else {}
    lines: dict[str, list[Any]] = {}
    hovered: list[DataRenderer] = []
    for index, (name, histogram) in enumerate(current.items()):
        visible = index == 0
        line = plot.line(
            "x",
            "value",
            source=_distribution_source(percentile_distribution(histogram)),
            line_width=2,
            color="#1f77b4",
            legend_label="this run",
            visible=visible,
        )
        lines[name] = [line]
        hovered.append(line)
        if name in before:
            dashed = plot.line(
                "x",
                "value",
                source=_distribution_source(percentile_distribution(before[name])),
                line_width=2,
                line_dash="dashed",
                color="#7f7f7f",
                legend_label="baseline",
                visible=visible,
            )
            lines[name].append(dashed)
            hovered.append(dashed)
    plot.add_tools(
        HoverTool(
            renderers=hovered,
            tooltips=[
                ("percentile", "@percentile{0.000}%"),
                ("latency", "@value{0,0.000} ms"),
                ("requests at or below", "@count{0,0}"),
            ],
        )
    )
    plot.legend.location = "top_left"
    options: list[str | None] = list(current)
    select = Select(title="endpoint", value=ALL_ENDPOINTS, options=options, width=420)
    select.js_on_change(
        "value",
        CustomJS(
            args={"lines": lines},
            code="for (const [name, shown] of Object.entries(lines)) {"
            " for (const line of shown) { line.visible = (name === this.value); } }",
        ),
    )
    return column(select, plot, sizing_mode="stretch_width")


def run_charts(
    results: Traffic, seconds: Sequence[SecondFigures], baseline: Traffic | None = None
) -> RunCharts:
    """The four charts of one run (the time charts zoom together)."""
    last = max((s.t_s for s in seconds), default=0) + 1
    x_range = Range1d(start=0, end=max(last, results.duration_s + (_span_start(results) or 0.0)))
    charts: Mapping[str, LayoutDOM] = {
        "latency": latency_chart(results, seconds, x_range),
        "throughput": throughput_chart(seconds, x_range),
        "errors": errors_chart(
            seconds,
            x_range,
            errors=results.totals.errors,
            not_sent=results.not_sent if isinstance(results, LoadResults) else 0,
        ),
        "distribution": distribution_chart(results, baseline),
    }
    return RunCharts(charts=dict(charts))


def _span_start(results: Traffic) -> float | None:
    return results.span_start_s if isinstance(results, LoadResults) else None

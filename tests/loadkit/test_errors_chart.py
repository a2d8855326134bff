"""The HTML report's errors chart (pure: figures in, a Bokeh model out): what it says when the
per-second timeline holds none of the run's errors, and kinds whatever their names."""

from __future__ import annotations

from typing import Any

from bokeh.models import ColumnDataSource, HoverTool, Range1d
from bokeh.models.annotations import Label, Legend

from loadkit.report.html_charts import errors_chart
from loadkit.report.timeline_figures import SecondFigures


def _second(t_s: int, by_kind: dict[str, int]) -> SecondFigures:
    errors = sum(by_kind.values())
    return SecondFigures(
        t_s=t_s,
        completions=10 + errors,
        errors=errors,
        p50_ms=1.0,
        p95_ms=2.0,
        p99_ms=3.0,
        max_ms=4.0,
        errors_by_kind=by_kind,
    )


def _labels(plot: Any) -> list[str]:
    return [str(label.text) for label in plot.select(type=Label)]


def test_errors_only_never_sent_are_said_not_drawn_as_no_errors() -> None:
    seconds = [_second(0, {}), _second(1, {})]
    plot = errors_chart(seconds, Range1d(start=0, end=2), errors=40, not_sent=40)
    (label,) = _labels(plot)
    assert "no errors" not in label
    assert label.startswith("40 of the run's 40 errors are not in the per-second timeline")
    assert "not sent" in label


def test_a_run_without_errors_says_so_and_one_whose_errors_are_all_drawn_adds_nothing() -> None:
    quiet = errors_chart([_second(0, {})], Range1d(start=0, end=1), errors=0)
    assert _labels(quiet) == ["no errors in this run"]
    drawn = errors_chart([_second(0, {"timeout": 2})], Range1d(start=0, end=1), errors=2)
    assert _labels(drawn) == []
    both = errors_chart([_second(0, {"timeout": 2})], Range1d(start=0, end=1), errors=5, not_sent=3)
    assert _labels(both) == [
        "3 of the run's 5 errors are not in the per-second timeline: not sent "
        "(iterations still due at the end of the run)"
    ]


def test_kinds_named_like_the_charts_own_columns_keep_their_own_counts() -> None:
    seconds = [_second(0, {"t": 3, "errors": 1}), _second(1, {"t": 1, "timeout": 2})]
    plot = errors_chart(seconds, Range1d(start=0, end=2), errors=7)
    (source,) = {
        r.data_source for r in plot.renderers if isinstance(r.data_source, ColumnDataSource)
    }
    assert source.data["t"] == [0, 1] and source.data["errors"] == [4, 3]
    (legend,) = plot.select(type=Legend)
    shown = [str(item.label["value"]) for item in legend.items]
    assert shown == ["t", "timeout", "errors"]
    (hover,) = plot.select(type=HoverTool)
    tooltips = dict(hover.tooltips)
    for kind, counts in {"t": [3, 1], "timeout": [0, 2], "errors": [1, 0]}.items():
        column = tooltips[kind].removeprefix("@").removesuffix("{0,0}")
        assert source.data[column] == counts

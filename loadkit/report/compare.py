"""Rendering of a before/after comparison: terminal tables and Markdown."""

from __future__ import annotations

from tabulate import tabulate

from loadkit.gate.compare import Change, Comparison, Section
from loadkit.report.units import NO_VALUE, format_delta, format_percent, format_value

_MARK = {"better": "better", "worse": "WORSE", "same": "", "n/a": ""}
_MD_MARK = {"better": "✅ better", "worse": "❌ worse", "same": "", "n/a": ""}
HEADERS = ("", "before", "after", "change", "change %", "")


def _value(change: Change, value: float | None) -> str:
    if value is None:
        return NO_VALUE
    return format_value(change.metric, value)


def _delta(change: Change) -> str:
    delta = change.delta
    if delta is None:
        return NO_VALUE
    sign = "+" if delta > 0 else "-" if delta < 0 else "±"
    return sign + format_delta(change.metric, abs(delta))


def _percent(change: Change) -> str:
    percent = change.percent
    if percent is None:
        return "new" if change.before == 0 and change.after else NO_VALUE
    return format_percent(percent, signed=True)


def _rows(section: Section, marks: dict[str, str]) -> list[list[str]]:
    return [
        [
            c.label,
            _value(c, c.before),
            _value(c, c.after),
            _delta(c),
            _percent(c),
            marks[c.direction],
        ]
        for c in section.changes
    ]


def render_compare_headline(comparison: Comparison) -> str:
    """One line: the changes a fix is judged by (P95, P99, errors, error rate, RPS, stall)."""
    run = comparison.sections[0]
    by_label = {c.label: c for c in run.changes}
    wanted = ("P95", "P99", "errors", "error rate", "RPS", "longest stall")
    parts = [f"{label} {_percent(by_label[label])}" for label in wanted if label in by_label]
    return f"{comparison.before_source} → {comparison.after_source}: " + ", ".join(parts)


def render_compare_table(comparison: Comparison) -> str:
    """The comparison as the terminal shows it."""
    parts = [render_compare_headline(comparison)]
    for section in comparison.sections:
        table = tabulate(_rows(section, _MARK), headers=HEADERS, tablefmt="simple")
        parts.append(f"{section.title}\n{table}")
    parts.extend(f"note: {note}" for note in comparison.notes)
    return "\n\n".join(parts) + "\n"


def render_compare_markdown(comparison: Comparison) -> str:
    """The comparison as GitHub-flavoured Markdown."""
    parts = [
        f"## Comparison: `{comparison.before_source}` → `{comparison.after_source}`",
        render_compare_headline(comparison).replace("|", "\\|"),
    ]
    for section in comparison.sections:
        parts.append(f"### {section.title}")
        parts.append(tabulate(_rows(section, _MD_MARK), headers=HEADERS, tablefmt="github"))
    parts.extend(f"- note: {note}" for note in comparison.notes)
    return "\n\n".join(parts) + "\n"

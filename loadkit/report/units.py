"""How a metric's values are shown: units and digits, shared by the gate and every renderer.

A value is never printed as its threshold when it differs from it (999.96 ms is not "1000.0 ms"
beside ``< 1000``), a non-zero difference never prints as 0, and counts keep every digit.
"""

from __future__ import annotations

from loadkit.config import FRACTION_METRICS

NO_VALUE = "—"
"""What a cell shows when there is no value (no request completed, nothing measured)."""


def format_value(
    metric: str, value: float, *, against: float | None = None, exact: bool = False
) -> str:
    """A metric's value with its unit: ``1040.2 ms``, ``10.00 %``, ``3 s``, ``125.4 req/s``.

    With ``against`` (the threshold it is judged by), more digits are shown when needed so that a
    value that differs from the threshold never prints as the threshold: 999.96 ms against
    ``< 1000`` shows as ``999.96 ms``, not ``1000.0 ms`` beside a PASS. ``exact`` shows all the
    digits a value has (a threshold of 999.95 is not ``1000.0 ms``).
    """
    scale, decimals, unit = _unit(metric)
    text = _number(value * scale, decimals) + unit
    if decimals is None:
        return text
    if exact:
        extra = 0
        while float(_number(value * scale, decimals + extra)) != round(value * scale, 9):
            extra += 1
            if extra == 9:
                break
        return _number(value * scale, decimals + extra) + unit
    if against is None or value == against:
        return text
    limit = _number(against * scale, decimals) + unit
    extra = 0
    while text == limit and extra < 9:
        extra += 1
        text = _number(value * scale, decimals + extra) + unit
        limit = _number(against * scale, decimals + extra) + unit
    return text


def format_delta(metric: str, value: float) -> str:
    """A difference of a metric's values: fractions in percentage points. A difference that is
    not zero never prints as zero (``0.04 ms``, not ``0.0 ms``)."""
    scale, decimals, unit = _unit(metric)
    if unit == " %":
        unit = " pp"
    text = _number(value * scale, decimals)
    if decimals is not None and value != 0:
        extra = 0
        while float(text) == 0 and extra < 9:
            extra += 1
            text = _number(value * scale, decimals + extra)
    return text + unit


def format_percent(value: float, *, signed: bool = False) -> str:
    """A relative change in percent, to 0.1 %; below 0.1 % two significant digits, so that a
    change that is not zero never shows as 0.0 % (nor 0.06 % as 0.1 %)."""
    sign = "+" if signed else ""
    if value != 0 and abs(value) < 0.1:
        return f"{value:{sign}.2g} %"
    return f"{value:{sign}.1f} %"


def _unit(metric: str) -> tuple[float, int | None, str]:
    """(scale, decimals, unit) a metric is shown with; None decimals: a count, shown as is."""
    name = metric.rpartition(".")[2] if not metric.startswith("errors.") else "errors"
    if name in FRACTION_METRICS:
        return 100.0, 2, " %"
    if name.endswith("_ms"):
        return 1.0, 1, " ms"
    if name.endswith("_s"):
        return 1.0, 2, " s"
    if name == "rps":
        return 1.0, 1, " req/s"
    return 1.0, None, ""


def _number(value: float, decimals: int | None) -> str:
    if decimals is not None:
        return f"{value:.{decimals}f}"
    # Counts: every digit (``:g`` would print 1234567 as 1.23457e+06).
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def format_ms(value: float | None, *, unit: bool = False) -> str:
    """A latency to 0.1 ms with thousands separators: ``1,040.2`` (a table's cell, its header
    says ms), ``1,040.2 ms`` with ``unit``; ``—`` for no value."""
    if value is None:
        return NO_VALUE
    return f"{value:,.1f}" + (" ms" if unit else "")


def format_fraction(value: float | None, *, decimals: int = 2) -> str:
    """A fraction as a percentage: 0.1 → ``10.00 %`` (``10.0 %`` with one decimal); ``—`` for
    no value."""
    if value is None:
        return NO_VALUE
    return f"{value * 100:.{decimals}f} %"


def format_seconds(value: float, *, decimals: int = 2) -> str:
    """A span or an offset into the run: ``6.51 s``."""
    return f"{value:.{decimals}f} s"

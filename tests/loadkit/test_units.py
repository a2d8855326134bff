"""How every renderer shows latencies, fractions, spans and relative changes (report/units.py)."""

from __future__ import annotations

from loadkit.report.units import (
    NO_VALUE,
    format_fraction,
    format_ms,
    format_percent,
    format_seconds,
)


def test_latency_cells_keep_a_tenth_of_a_ms_and_group_thousands() -> None:
    assert format_ms(1040.25) == "1,040.2"
    assert format_ms(12.0, unit=True) == "12.0 ms"
    assert format_ms(None) == format_ms(None, unit=True) == NO_VALUE


def test_fractions_show_as_percentages_to_the_digits_asked() -> None:
    assert format_fraction(0.1) == "10.00 %"
    assert format_fraction(0.6, decimals=1) == "60.0 %"
    assert format_fraction(None) == NO_VALUE


def test_spans_in_seconds() -> None:
    assert format_seconds(6.5149) == "6.51 s"


def test_a_change_that_is_not_zero_never_shows_as_zero_or_rounded_up() -> None:
    assert format_percent(-99.94, signed=True) == "-99.9 %"
    assert format_percent(0.0, signed=True) == "+0.0 %"
    assert format_percent(0.04) == "0.04 %"
    assert format_percent(0.06, signed=True) == "+0.06 %"  # not "+0.1 %"
    assert format_percent(-0.001, signed=True) == "-0.001 %"

"""The plugin's CPU judgement (plugin/cpu.py) with the clock and the CPU readings injected:
every span of a test of 1 s or more is judged, whatever Locust's readings were."""

from __future__ import annotations

import pytest

from loadkit.engines.locust.plugin.cpu import CpuWatch


class Machine:
    """A process whose CPU seconds and clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0
        self.cpu = 5.0

    def run(self, seconds: float, *, cpu_percent: float) -> None:
        self.now += seconds
        self.cpu += seconds * cpu_percent / 100.0

    def watch(self) -> CpuWatch:
        return CpuWatch(cpu_s=lambda: self.cpu, clock=lambda: self.now)


def test_a_saturated_10_s_run_is_judged_though_locusts_first_reading_is_0() -> None:
    # Locust's first usage_monitor reading (~10 s in) is psutil's meaningless 0.0, and the run
    # stops right after it: the span before it must still be judged.
    machine = Machine()
    cpu = machine.watch()
    machine.run(9.8, cpu_percent=99.0)
    cpu.reading(0.0)
    machine.run(0.3, cpu_percent=99.0)
    cpu.check_own()
    assert cpu.warnings == 1
    assert cpu.max_percent is not None and cpu.max_percent > 98


def test_every_span_between_readings_is_judged_not_only_the_last() -> None:
    machine = Machine()
    cpu = machine.watch()
    machine.run(10, cpu_percent=20.0)
    cpu.reading(0.0)
    machine.run(10, cpu_percent=97.0)
    cpu.reading(60.0)  # Locust's interval reached back before the test: diluted below 90 %
    machine.run(5, cpu_percent=30.0)
    cpu.check_own()
    assert cpu.warnings == 1
    assert cpu.max_percent == pytest.approx(97.0)


def test_a_span_locust_warned_about_is_not_counted_twice() -> None:
    machine = Machine()
    cpu = machine.watch()
    machine.run(10, cpu_percent=95.0)
    cpu.warning(95.0)  # Locust fires cpu_warning, then usage_monitor, for the same reading
    cpu.reading(95.0)
    machine.run(4, cpu_percent=10.0)
    cpu.check_own()
    assert cpu.warnings == 1


def test_a_span_under_a_second_joins_the_next_one() -> None:
    # The test began 0.5 s before a Locust reading: that half second is judged with what follows.
    machine = Machine()
    cpu = machine.watch()
    machine.run(0.5, cpu_percent=100.0)
    cpu.reading(40.0)
    machine.run(0.7, cpu_percent=100.0)
    cpu.check_own()
    assert cpu.warnings == 1 and cpu.max_percent == pytest.approx(100.0)


def test_a_test_under_a_second_is_not_judged_and_readings_after_the_end_are_ignored() -> None:
    machine = Machine()
    cpu = machine.watch()
    machine.run(0.6, cpu_percent=100.0)
    cpu.check_own()
    cpu.closed = True
    machine.run(10, cpu_percent=100.0)
    cpu.reading(100.0)
    assert cpu.warnings == 0 and cpu.max_percent is None

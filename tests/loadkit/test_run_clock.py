"""The run clock a distributed worker measures on: its master's, whatever its own wall clock
says (docs/distributed.md, "Clocks"); across namespaces with skewed clocks in
tests/e2e/test_distributed_netns.py."""

from __future__ import annotations

import time

import pytest

from loadkit.measure.recorder import RunClock


def test_a_clock_aligned_to_a_reading_reads_it_and_then_runs_on() -> None:
    clock = RunClock()
    master_now = time.time() - 3600.0  # a master whose clock is an hour behind this machine's
    clock.align_to(master_now)
    first = clock.now()
    assert first == pytest.approx(master_now, abs=0.05)
    time.sleep(0.01)
    assert clock.now() > first  # it runs on this machine's monotonic clock from there


def test_an_offset_clock_reads_this_machines_wall_clock_plus_the_offset() -> None:
    assert RunClock(offset_s=-20.0).now() == pytest.approx(time.time() - 20.0, abs=0.05)

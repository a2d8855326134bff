"""One clock for a multi-process native open run: every process's timetable is due from the
common start, its users set up before it (a process of ``--processes`` or a distributed worker
says it is ready once its users are; a plan with a fixed start sets them up in its lead), so the
merged duration, the iterations due and the achieved rate all tell the timetable the user asked
for, however slow the setup (a login). A setup that outlasts a fixed start delays iterations:
their wait is lag, never a later timetable. (The distributed handshake itself:
test_native_distributed.py.)"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from loadkit.config import DeclarativeScenario, LoadProfile
from loadkit.engines.declarative import describe
from loadkit.engines.native.share import SharePlan, run_share
from loadkit.engines.url_request import request_spec
from loadkit.measure.recorder import RunClock
from loadkit.run.native import run_native_load
from tests.loadkit.misbehaving_servers import read_request, serve

LOGIN_S = 0.4
"""The setup step's answer time: far beyond a timetable's slack (the lag bound is 10 ms)."""
RATE = 40.0
DURATION_S = 0.5
USERS = 4
"""The in-flight bound: a user per slot, two in each of the two processes."""

SCENARIO = DeclarativeScenario.model_validate(
    {
        "setup": [{"method": "POST", "path": "/login", "json": {}, "expect_status": 200}],
        "requests": [{"path": "/items", "expect_status": 200}],
    }
)
OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"


def _slow_login(conn: socket.socket) -> None:
    # A login answered after LOGIN_S, anything else at once, on a kept-alive connection.
    while request := read_request(conn):
        if request.startswith(b"POST /login"):
            time.sleep(LOGIN_S)
        conn.sendall(OK)


@pytest.fixture(scope="module")
def slow_login_api() -> Iterator[str]:
    with serve(_slow_login) as url:
        yield url


def test_a_slow_setup_shifts_no_process_off_the_common_timetable(
    slow_login_api: str, tmp_path: Path
) -> None:
    results = run_native_load(
        request=request_spec(slow_login_api),
        profile=LoadProfile(scenario="slow", rate=RATE, duration_s=DURATION_S, max_in_flight=USERS),
        out=tmp_path / "load.json",
        processes=2,
        quiet=True,
        scenario=describe("slow", SCENARIO, {}),
    )
    schedule = results.schedule
    assert schedule is not None
    # Every process ran its timetable from the one start the duration counts from: the
    # iterations due are the plan's, and the run did not last the plan plus a process's setup
    # (bounded by half the setup: validity, the exact span and the rate achieved hang on the
    # shared cores' scheduling, not asserted here).
    assert abs(schedule.iterations_due - RATE * DURATION_S) <= 1
    assert results.duration_s < DURATION_S + LOGIN_S / 2
    # The setup came before the timetable: no iteration waited for a login.
    assert (schedule.lag_ms.max or 0.0) < LOGIN_S * 1000 / 4
    counts = {e.name: e.requests for e in results.endpoints}
    assert counts["POST /login"] == USERS
    assert counts["GET /items"] == schedule.iterations_dispatched


@pytest.mark.parametrize(
    ("lead_s", "late"), [(LOGIN_S + 0.2, False), (0.1, True)], ids=["in-the-lead", "past-the-start"]
)
def test_a_fixed_start_is_the_timetable_start_whatever_the_setup_takes(
    slow_login_api: str, lead_s: float, late: bool, caplog: pytest.LogCaptureFixture
) -> None:
    # A plan that carries the common start: its users are set up before it (in the lead), and
    # its timetable is due from it even when the setup outlasts the lead.
    start = RunClock().now() + lead_s
    plan = SharePlan(
        request=request_spec(slow_login_api),
        model="open",
        start=start,
        duration_s=DURATION_S,
        rate=RATE,
        max_in_flight=2,
        scenario=describe("slow", SCENARIO, {}),
    )
    outcome = run_share(plan)
    recorder = outcome.recorder
    schedule = recorder.schedule_results()
    assert schedule is not None
    assert recorder.start == start and recorder.span_start_s() is None
    assert abs(schedule.iterations_due - RATE * DURATION_S) <= 1
    assert recorder.endpoint_results(["POST /login"])[0].requests == 2
    if late:
        # The iterations due while the logins ran past the start waited for them: their wait
        # is the generator's lag (the run is then judged by it), not hidden by a later start.
        assert (schedule.lag_ms.max or 0.0) >= (LOGIN_S - lead_s) * 1000 / 2
        assert "the scenario's setup ended" in caplog.text  # the user is told why
    else:
        assert "the scenario's setup ended" not in caplog.text
        assert (schedule.lag_ms.max or 0.0) < LOGIN_S * 1000 / 4

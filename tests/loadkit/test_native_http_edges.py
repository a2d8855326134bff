"""The native engine on the edges of HTTP/1.1 a review found it wrong on: responses cut short,
HEAD, connections that end with their response, loadkit's own bugs. Each share runs in-process
(``run_share``) for a fraction of a second against a loopback server of the test's own."""

from __future__ import annotations

import itertools
import socket
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from loadkit.config import LoadProfile
from loadkit.engines.http_request import RequestSpec
from loadkit.engines.native.pool import Pool
from loadkit.engines.native.request_bytes import encode_request
from loadkit.engines.native.share import ShareControl, ShareOutcome, SharePlan, run_share
from loadkit.exceptions import ConfigError, InvalidLoadRunError
from loadkit.measure.live_status import LiveStatus
from loadkit.run.native import run_native_load
from loadkit.stages import Stage
from tests.loadkit.misbehaving_servers import read_request, serve
from tests.loadkit.native_servers import answering


def run_closed(
    url: str, *, method: str = "GET", duration_s: float = 0.2, timeout_s: float = 1.0
) -> ShareOutcome:
    plan = SharePlan(
        request=RequestSpec(url=f"{url}/x", method=method),
        model="closed",
        start=None,
        duration_s=duration_s,
        concurrency=1,
        timeout_s=timeout_s,
    )
    return run_share(plan)


def kinds(outcome: ShareOutcome) -> dict[str, int]:
    return {group.kind: group.count for group in outcome.recorder.error_groups()}


def test_a_body_cut_short_by_the_close_is_a_failure_not_a_success() -> None:
    # Connection: close says this is the last response, not that the close ends its body:
    # a Content-Length or chunked body cut by the close is incomplete (the Locust path fails it).
    cut = [
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1000\r\n\r\nshort",
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n100\r\nabc",
        b"HTTP/1.0 200 OK\r\nContent-Length: 1000\r\n\r\nshort",
    ]
    for response in cut:
        with serve(answering(response, close_after=True)) as url:
            outcome = run_closed(url)
        assert outcome.recorder.requests >= 2, response
        assert kinds(outcome) == {"connection_reset": outcome.recorder.requests}, response


def test_connections_whose_body_ends_at_the_close_are_not_kept(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Each HTTP/1.0 answer takes its connection with it: the pool must forget every one (the
    # timeout sweep walks what it keeps; a long run would grow without bound).
    left: list[int] = []
    close = Pool.close

    def counting_close(pool: Pool) -> None:
        left.append(len(pool.connections))
        close(pool)

    monkeypatch.setattr(Pool, "close", counting_close)
    with serve(answering(b"HTTP/1.0 200 OK\r\n\r\nbody", close_after=True)) as url:
        outcome = run_closed(url)
    assert outcome.recorder.requests >= 5 and outcome.recorder.errors == 0
    assert left[0] <= 1  # at most the one in flight at the end


def test_a_head_request_ends_at_its_head() -> None:
    # A HEAD response announces the length of the body a GET would have, and sends none.
    for response in [
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 100\r\n\r\n",
    ]:
        close_after = b"close" in response
        with serve(answering(response, close_after=close_after)) as url:
            outcome = run_closed(url, method="HEAD", timeout_s=0.5)
        assert outcome.recorder.errors == 0, (response, kinds(outcome))
        assert outcome.recorder.requests >= 5, response


def test_a_response_cut_short_is_connection_reset_mid_response() -> None:
    # As the Locust path says for the same failure: head cut, or body cut on a kept-alive
    # connection (the server promised more, then closed).
    for response in [
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nshort",
    ]:
        with serve(answering(response, close_after=True)) as url:
            outcome = run_closed(url)
        [group] = outcome.recorder.error_groups()
        assert group.kind == "connection_reset" and group.count >= 2, response
        assert "closed the connection mid-response" in (group.example_message or ""), response


def test_a_bug_in_loadkits_own_code_stops_the_share_and_is_not_blamed_on_the_target(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    responded = Pool.responded
    calls = itertools.count(1)

    def buggy(pool: Pool, *args: Any) -> None:
        if next(calls) % 10 == 0:
            raise RuntimeError("bug in our own callback")
        responded(pool, *args)

    monkeypatch.setattr(Pool, "responded", buggy)
    with serve(answering(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")) as url:
        outcome = run_closed(url, duration_s=2.0)
    assert outcome.crashed is not None and "bug in our own callback" in outcome.crashed
    assert outcome.recorder.errors == 0  # nothing recorded against the target
    assert outcome.recorder.requests < 20  # it stopped at the bug, not at the planned end
    assert "bug in our own callback" in caplog.text  # with its traceback, for the bug report
    # A run of one process says so in its results: invalid, generator_crashed (exit 4).
    calls = itertools.count(1)
    with (
        serve(answering(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")) as url,
        pytest.raises(InvalidLoadRunError) as invalid,
    ):
        run_native_load(
            request=RequestSpec(url=url),
            profile=LoadProfile(concurrency=1, duration_s=2.0),
            out=tmp_path / "load.json",
            quiet=True,
        )
    assert [r.code for r in invalid.value.results.invalid_reasons] == ["generator_crashed"]


def test_no_iteration_due_at_the_planned_end_is_sent() -> None:
    # 200/s for 0.5 s is iterations 0..99 (due 0 to 0.495 s): the one due at 0.5 s is not the
    # run's, as on the Locust path.
    plan = SharePlan(
        request=RequestSpec(url=""),
        model="open",
        start=None,
        duration_s=0.5,
        rate=200.0,
        max_in_flight=20,
        timeout_s=1.0,
    )
    with serve(answering(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")) as url:
        for _ in range(2):  # the dispatcher's timer and the stop's race: twice
            outcome = run_share(replace(plan, request=RequestSpec(url=f"{url}/")))
            schedule = outcome.recorder.schedule_results()
            assert schedule is not None
            assert schedule.iterations_dispatched <= 100, schedule
            assert outcome.recorder.requests <= 100


@pytest.mark.parametrize("signals", [1, 2], ids=["once", "delivered-twice"])
def test_an_interrupted_open_run_drains_its_requests_in_flight(signals: int) -> None:
    # Ctrl-C (here ShareControl.stop, the same interruption) sends nothing more, and the
    # requests already sent are waited for and recorded, as the Locust path drains. In a child
    # of --processes one Ctrl-C comes twice at once (the terminal's, the parent's SIGTERM):
    # the second must not cut the drain the first began.
    def slow(conn: socket.socket) -> None:
        while read_request(conn):
            time.sleep(0.4)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    control = ShareControl()
    with serve(slow) as url:
        plan = SharePlan(
            request=RequestSpec(url=f"{url}/"),
            model="open",
            start=None,
            duration_s=3.0,
            rate=40.0,
            max_in_flight=50,
            timeout_s=2.0,
        )

        def interrupt() -> None:
            for _ in range(signals):
                control.stop()
                time.sleep(0.01)

        timer = threading.Timer(0.25, interrupt)
        timer.start()
        outcome = run_share(plan, control=control)
        timer.join()
    schedule = outcome.recorder.schedule_results()
    assert schedule is not None
    assert outcome.interrupted
    assert schedule.iterations_dispatched >= 5
    assert outcome.recorder.requests == schedule.iterations_dispatched
    assert outcome.recorder.errors == 0


def head_lines(spec: RequestSpec) -> list[str]:
    request = encode_request(spec)
    return (request.head + request.tail).decode("latin-1").split("\r\n")


def test_host_credentials_and_path_are_sent_as_an_http_client_sends_them() -> None:
    lines = head_lines(RequestSpec(url="http://us%40er:p%3Aw@127.0.0.1:8080/caf\u00e9?q=\u00e9"))
    assert lines[0] == "GET /caf%C3%A9?q=%C3%A9 HTTP/1.1"
    assert "Host: 127.0.0.1:8080" in lines  # no credentials in it
    assert "Authorization: Basic dXNAZXI6cDp3" in lines  # base64 of "us@er:p:w"
    assert "Host: xn--bcher-kva.example" in head_lines(
        RequestSpec(url="http://b\u00fccher.example/")
    )
    assert "Host: [::1]:81" in head_lines(RequestSpec(url="http://[::1]:81/"))
    # The user's own Host and Authorization win, as on the Locust path.
    lines = head_lines(
        RequestSpec(
            url="http://u:p@127.0.0.1:8080/",
            headers=(("Host", "api.example"), ("Authorization", "Bearer t")),
        )
    )
    assert "Host: api.example" in lines and "Host: 127.0.0.1:8080" not in lines
    assert [line for line in lines if line.startswith("Authorization")] == [
        "Authorization: Bearer t"
    ]


def test_a_header_the_engine_would_drop_or_cannot_send_is_refused_by_name() -> None:
    for name, value in [
        ("Connection", "close"),
        ("Content-Length", "3"),
        ("Transfer-Encoding", "chunked"),
        ("traceparent", "00-x"),
        ("X-Name", "\u20ac"),
    ]:
        with pytest.raises(ConfigError, match=name):
            encode_request(RequestSpec(url="http://127.0.0.1:8080/", headers=((name, value),)))


def test_any_http_token_is_a_method_the_native_engine_sends() -> None:
    # --method M-SEARCH passes the CLI's check (an RFC 9110 token) and Locust sends it: so does
    # the native engine, with the same check in the same place.
    assert head_lines(RequestSpec(url="http://127.0.0.1:8080/", method="m-search"))[0] == (
        "M-SEARCH / HTTP/1.1"
    )
    with pytest.raises(ConfigError, match="--method 'GET /'"):
        encode_request(RequestSpec(url="http://127.0.0.1:8080/", method="GET /"))


def test_the_live_line_of_an_open_run_shows_its_achieved_rate_and_last_target() -> None:
    statuses: list[LiveStatus] = []
    plan = SharePlan(
        request=RequestSpec(url=""),
        model="open",
        start=None,
        duration_s=1.2,
        stages=(Stage(duration_s=1.2, target=60.0),),
        rate=60.0,
        max_in_flight=20,
        timeout_s=1.0,
    )
    with serve(answering(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")) as url:
        run_share(replace(plan, request=RequestSpec(url=f"{url}/")), on_status=statuses.append)
    running = [s for s in statuses if s.state == "running"]
    assert running and running[0].achieved_rate is not None
    assert 40.0 <= running[0].achieved_rate <= 80.0
    # After its stages ended, the target shown is their last one, not the 0 they end with.
    assert statuses[-1].state == "done" and statuses[-1].target_rate == 60.0

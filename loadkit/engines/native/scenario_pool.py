"""The native engine's pool for a declarative scenario: each request sent for a simulated user,
judged by the scenario's own statuses, and the user's next request chosen.

The models (closed, open) see the same pool as for a URL: ``send(due, now)`` starts an iteration
and ``on_done`` says one ended. Here an iteration belongs to a user: ``send`` takes a free user
(the one freed last first), sends its iteration's first request (``ScenarioUser.first``), and
while its setup steps pass sends the next one on the same iteration, timed from its own send
(the Locust path's open model times only an iteration's first request from its due time); when
the iteration is over the user is free again and the model is told.

Users: one per slot, made at the start: the closed model's ``concurrency`` connections, the open
model's ``max_in_flight`` (this process's share of either). A request in flight always has its
user, so a slot is free exactly when a user is; the user free the longest takes the next
iteration (so every user gets its turn, as on the Locust path, even at a low rate).
``run_setup`` sends every user's setup at once, before an open run's timetable starts (as
Locust's users run their ``on_start`` before it).

A response whose status is one of the request's statuses (and whose values to save are in its
body) passes, whatever the status (a 404 that was expected counts as ok); any other is failed and
classified as on the Locust path: by the API's own kind when it says one, else
``unexpected_status``. A request that got no response is classified as every native request is
(``pool.py``). A value that cannot go on the wire (a saved token with a line break in a header)
fails the request unsent, as ``protocol_error``.
"""

from __future__ import annotations

import asyncio
import random
import ssl
from collections import deque
from time import perf_counter

from loadkit.engines.native.connection import Connection
from loadkit.engines.native.pool import DEFAULT_TIMEOUT_S, Pool
from loadkit.engines.native.request_bytes import EncodedRequest, TraceIds
from loadkit.engines.native.request_template import UnsendableValue
from loadkit.engines.native.scenario import CompiledScenario, ScenarioCall, ScenarioUser, judge
from loadkit.measure.classify import classify_response
from loadkit.measure.error_reader import ErrorReader
from loadkit.measure.kinds import ErrorKind
from loadkit.measure.recorder import LatencyRecorder

PROTOCOL_ERROR = ErrorKind.PROTOCOL_ERROR.value


class ScenarioPool(Pool):
    """The connections of one process's share of a declarative run, and its users."""

    def __init__(
        self,
        *,
        scenario: CompiledScenario,
        users: int,
        base: EncodedRequest,
        ssl_context: ssl.SSLContext | None,
        recorder: LatencyRecorder,
        run_clock_offset: float,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        service_times: bool = False,
        reader: ErrorReader | None = None,
    ) -> None:
        """``users`` simulated users run ``scenario`` against ``base``'s host (its scheme, host
        and port; its own request is never sent)."""
        super().__init__(
            request=base,
            ssl_context=ssl_context,
            recorder=recorder,
            run_clock_offset=run_clock_offset,
            timeout_s=timeout_s,
            service_times=service_times,
            reader=reader,
        )
        self.scenario = scenario
        chooser = random.Random()  # seeded from os.urandom
        self.users = [ScenarioUser(scenario, chooser) for _ in range(users)]
        self.free = deque(self.users)
        """Users with no iteration running; the longest free is taken first (as on the Locust
        path, where the user that freed first takes the earliest iteration)."""
        self.ids = TraceIds()
        self.halted = False
        """The load is over: an iteration in flight sends no further step."""
        self._setting_up: asyncio.Event | None = None

    def halt(self) -> None:
        """Send nothing more, not even the next step of an iteration in flight."""
        self.halted = True

    def run_setup(self) -> asyncio.Event:
        """Every user sends its setup steps now (as an iteration each); the event is set once
        they are all free again (each set up, or stopped by a step that failed)."""
        done = asyncio.Event()
        now = perf_counter()
        if not self.scenario.setup:
            done.set()
            return done
        self._setting_up = done
        for _ in range(len(self.free)):
            self.send(now, now)
        return done

    # --- sending ----------------------------------------------------------------------------

    def send(self, due: float, now: float) -> None:
        """Start an iteration of a free user at ``now``, timed from ``due``."""
        user = self.free.popleft()
        self._start(user, user.first(), due, now)

    def _start(self, user: ScenarioUser, call: ScenarioCall, due: float, now: float) -> None:
        self.in_flight += 1
        try:
            payload, trace_at = call.template.render(user.values, self.ids.next())
        except UnsendableValue as unsendable:
            end = perf_counter()
            self.recorder.record(
                endpoint=call.endpoint,
                latency_s=end - due,
                end=end + self.offset,
                error_kind=PROTOCOL_ERROR,
                message=str(unsendable),
                service_s=end - now if self.service_times else None,
            )
            # Ended on the loop's next turn (its slot busy till then, as its user is): a closed
            # run whose every request is unsendable would otherwise recurse, send after send.
            asyncio.get_running_loop().call_soon(self._unsent, user, call, end)
            return
        idle = self.idle
        connection = idle.pop() if idle else Connection(self)
        while connection.transport is not None and connection.transport.is_closing():
            connection = idle.pop() if idle else Connection(self)
        connection.payload = payload
        connection.trace_at = trace_at
        connection.user = user
        connection.call = call
        connection.bodiless = call.bodiless
        connection.keep_body = bool(call.save)
        connection.due = due
        connection.sent = now
        connection.deadline = now + self.timeout_s
        connection.attempts = 1
        connection.busy = True
        if connection.transport is not None:
            connection.write(connection.payload)
        else:
            self._open(connection)

    def is_idempotent(self, connection: Connection) -> bool:
        """Whether the scenario's request on ``connection`` may be sent again."""
        call: ScenarioCall = connection.call
        return call.idempotent

    def retry_of(self, connection: Connection) -> Connection:
        """The lost request's second attempt, for the same user."""
        retry = super().retry_of(connection)
        retry.trace_at = connection.trace_at
        retry.user = connection.user
        retry.call = connection.call
        retry.bodiless = connection.bodiless
        retry.keep_body = connection.keep_body
        return retry

    # --- what the connections report ----------------------------------------------------------

    def responded(
        self, connection: Connection, status: int, body: bytes | None, keep_alive: bool
    ) -> None:
        """Judge the response by the scenario, record it, free the connection, and go on with
        the user's iteration (or free the user)."""
        end = perf_counter()
        if not connection.busy:
            return  # a response nobody asked for (after a timeout): ignored
        user: ScenarioUser = connection.user
        call: ScenarioCall = connection.call
        # Most responses pass and save nothing: judged without a call.
        why = (
            None
            if status in call.statuses and not call.save
            else judge(call, status, body, user.values)
        )
        if why is None:
            self.recorder.record(
                endpoint=call.endpoint,
                latency_s=end - connection.due,
                end=end + self.offset,
                status=status,
                service_s=end - connection.sent if self.service_times else None,
            )
        else:
            headers = connection.response_headers() if self.reader is not None else None
            verdict = classify_response(status, headers, body, reader=self.reader)
            if status < 400 or verdict.kind is None:
                # The status alone looks fine, yet the scenario failed it: its words say why.
                kind, message = ErrorKind.UNEXPECTED_STATUS.value, why
            else:
                kind, message = verdict.kind, verdict.message or why
            self._record(
                connection, end, kind, status=status, message=message, trace_id=verdict.trace_id
            )
        connection.busy = False
        connection.reused = True
        connection.keep_body = False
        self.in_flight -= 1
        if keep_alive and not self.closing:
            self.idle.append(connection)
        else:
            connection.close()
        self._next(user, call, why is None, end)

    def _failed(self, connection: Connection, end: float, kind: str, message: str) -> None:
        status = connection.status if connection.status >= 200 else None
        self._record(connection, end, kind, status=status, message=message, trace_id=None)
        self.in_flight -= 1
        self._next(connection.user, connection.call, False, end)

    def _record(
        self,
        connection: Connection,
        end: float,
        kind: str | None,
        *,
        status: int | None,
        message: str | None,
        trace_id: str | None,
    ) -> None:
        at = connection.trace_at
        self.recorder.record(
            endpoint=connection.call.endpoint,
            latency_s=end - connection.due,
            end=end + self.offset,
            error_kind=kind,
            status=status,
            # The API's own word when it gave one, else the id this request carried.
            trace_id=trace_id or connection.payload[at : at + 32].decode("ascii"),
            message=message,
            service_s=end - connection.sent if self.service_times else None,
        )

    def _unsent(self, user: ScenarioUser, call: ScenarioCall, end: float) -> None:
        self.in_flight -= 1
        self._next(user, call, False, end)

    def _next(self, user: ScenarioUser, call: ScenarioCall, passed: bool, end: float) -> None:
        """After ``call`` ended: the iteration's next step, else the user is free."""
        following = user.after(call, passed)
        if following is not None and not (self.halted or self.closing):
            now = perf_counter()
            self._start(user, following, now, now)
            return
        self.free.append(user)
        setting_up = self._setting_up
        if setting_up is not None and len(self.free) == len(self.users):
            self._setting_up = None
            setting_up.set()
        self.on_done(end)

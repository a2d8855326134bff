"""A native run across machines, on Locust's own master/worker transport (DESIGN.md: no
home-made cluster protocol).

Locust's runners (its ZeroMQ channel, heartbeats, worker ids) carry the messages; they live in
a relay process of their own (``loadkit.engines.locust.plugin.native_relay``: gevent, never
next to asyncio), started here and spoken to over its stdin and stdout in JSON lines. This
process does the native work on either side:

- **master** (``run_master``): waits for ``expect`` native workers, sends each its plan (closed:
  its connections; open: ``Timetable(worker_index=k, worker_count=N)``), waits until every one
  says its share is set up, then sends them all one common start a short lead ahead (as
  ``--processes`` does), and collects their live status and their final shares; a worker that
  quit or went missing (Locust's heartbeats) before its share arrived is reported missing, and
  the run is given up (``WorkersNotReadyError``) when one is still not set up after a bound.
- **worker** (``run_worker``): learns its plan from the master (and its master's clock with it),
  runs it with ``run_share`` on this process's event loop, which sets the share up (an open
  run's users log in) and says so, then starts at the common start the master sends; it sends
  its status each second and its share at the end; a "stop" from the master (Ctrl-C there)
  ends it early, still sending its share.

Messages, relay → this process: ``ready`` (the workers, by index), ``plan``, ``set_up``,
``start``, ``status``, ``live``, ``share``, ``lost``, ``stop``, ``refused``; this process →
relay: ``plan``, ``set_up``, ``start``, ``status``, ``live``, ``share``, ``stop``, ``quit``
(end of stdin: quit too). ``live`` is a worker's figures so far, every second, in a run with
abort-on-fail criteria (its plan's ``live_shares``): the master judges them merged and stops
every worker when one fails.
"""

from __future__ import annotations

import base64
import contextlib
import json
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import IO, Any

from loadkit.config import TargetProfile
from loadkit.defaults import DEFAULT_WORKERS_WAIT_S
from loadkit.engines.http_request import RequestSpec, TlsOptions
from loadkit.engines.native.processes import READY_TIMEOUT_S, SHARE_GRACE_S, ProcessShare
from loadkit.engines.native.share import ShareControl, SharePlan, run_share
from loadkit.exceptions import (
    ConfigError,
    GeneratorCrashedError,
    InputError,
    InvalidRunError,
    WorkersNotConnectedError,
)
from loadkit.files import scratch_file
from loadkit.measure.live_status import LiveStatus
from loadkit.measure.recorder import LatencyRecorder, RunClock
from loadkit.measure.worker_share import WorkerShare
from loadkit.stages import Stage

RELAY_MODULE = "loadkit.engines.locust.plugin.native_relay"
PLAN_VERSION = "loadkit.native_plan/4"
"""/2: the request carries the target profile (error kinds, trace header); a /1 worker would
run it with the bundled service's. /3: a declarative scenario's description (``scenario``),
which a /2 worker would ignore, sending the bare host instead. /4: no start in the plan: the
worker says when it is set up and the master sends the common start once all are (a /3 worker
would find no start in the plan, a /4 one wait for a ``start`` message a /3 master never
sends)."""
SENT_AT = "sent_at"
"""A plan's optional key: the master's wall clock when it sent the plan. The worker runs on
its master's clock from then on (its offset measured on arrival, one hop late), so that a
worker whose clock is wrong neither starts early or late nor shifts its share's seconds."""
RELAY_QUIT_S = 5.0
"""How long a relay has to quit once told to (it tells Locust's peers first)."""
WORKER_QUIT_WAIT_S = 30.0
"""How long a worker that sent its share waits for its master's quit before it leaves."""
START_POLL_S = 0.05
"""How often a worker waiting for its start looks whether it was stopped meanwhile."""
LOG_TAIL_CHARS = 2_000


# --- the plan, as plain data ------------------------------------------------------------------


def plan_to_wire(plan: SharePlan) -> dict[str, Any]:
    """A share's plan as JSON- and msgpack-safe data (``plan_from_wire`` reads it back), but
    for its ``start``, never sent: the master sends the common start once all are set up."""
    request = plan.request
    return {
        "version": PLAN_VERSION,
        "request": {
            "url": request.url,
            "method": request.method,
            "headers": [list(h) for h in request.headers],
            "body": base64.b64encode(request.body).decode(),
            "name": request.name,
            "verify": request.tls.verify,
            "ca_cert": str(request.tls.ca_cert) if request.tls.ca_cert is not None else None,
            "target": request.target.model_dump(mode="json", exclude_defaults=True),
        },
        "model": plan.model,
        "duration_s": plan.duration_s,
        "concurrency": plan.concurrency,
        "rate": plan.rate,
        "stages": [asdict(stage) for stage in plan.stages],
        "max_in_flight": plan.max_in_flight,
        "worker_index": plan.worker_index,
        "worker_count": plan.worker_count,
        "timeout_s": plan.timeout_s,
        "source": plan.source,
        "live_shares": plan.live_shares,
        "scenario": plan.scenario,
    }


def plan_from_wire(data: object) -> SharePlan:
    """The plan a master sent; an InputError when it is not one this loadkit reads."""
    version = data.get("version") if isinstance(data, dict) else None
    if not isinstance(data, dict) or version != PLAN_VERSION:
        raise InputError(
            f"the master sent a native plan of version {version!r}, this loadkit reads "
            f"{PLAN_VERSION}: run the same loadkit on the master and every worker"
        )
    try:
        request = data["request"]
        ca_cert = request["ca_cert"]
        model = data["model"]
        if model not in ("closed", "open"):
            raise ValueError(f"model {model!r}")
        return SharePlan(
            request=RequestSpec(
                url=str(request["url"]),
                method=str(request["method"]),
                headers=tuple((str(n), str(v)) for n, v in request["headers"]),
                body=base64.b64decode(request["body"]),
                name=request["name"],
                tls=TlsOptions(
                    verify=bool(request["verify"]), ca_cert=Path(ca_cert) if ca_cert else None
                ),
                target=TargetProfile.model_validate(request["target"]),
            ),
            model=model,
            start=None,  # the master's ``start`` message brings it
            duration_s=float(data["duration_s"]),
            concurrency=int(data["concurrency"]),
            rate=float(data["rate"]) if data["rate"] is not None else None,
            stages=tuple(
                Stage(duration_s=float(s["duration_s"]), target=float(s["target"]), name=s["name"])
                for s in data["stages"]
            ),
            max_in_flight=int(data["max_in_flight"]),
            worker_index=int(data["worker_index"]),
            worker_count=int(data["worker_count"]),
            timeout_s=float(data["timeout_s"]),
            source=str(data["source"]),
            live_shares=bool(data.get("live_shares", False)),
            scenario=str(data["scenario"]) if data.get("scenario") is not None else None,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"the master sent an invalid native plan ({exc!r})") from None


# --- the relay process ------------------------------------------------------------------------


def relay_argv(role: str, *options: str) -> list[str]:
    """The relay's command line: ``master``/``worker`` and its options."""
    return [sys.executable, "-m", RELAY_MODULE, role, *options]


class Relay:
    """The Locust relay as a child process: JSON lines to its stdin, events from its stdout."""

    def __init__(self, argv: Sequence[str]) -> None:
        """Start it; its log (Locust's) goes to a temporary file, read back on failure."""
        # Closed in close(): it outlives this call.
        self._log: IO[bytes] = scratch_file()
        self.process = subprocess.Popen(
            list(argv),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            bufsize=1,
            # Ctrl-C reaches this process alone, which tells the relay (a master: "stop" to its
            # workers, whose shares still come); the relay quits when its stdin ends.
            start_new_session=True,
        )
        self._events: queue.Queue[dict[str, Any]] = queue.Queue()
        self._lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with contextlib.suppress(ValueError):
                event = json.loads(line)
                if isinstance(event, dict):
                    self._events.put(event)
        self._events.put({"event": "eof"})

    def send(self, message: dict[str, Any]) -> None:
        """One line to the relay (from any thread); lost silently once it has gone."""
        assert self.process.stdin is not None
        with self._lock, contextlib.suppress(OSError, ValueError):
            self.process.stdin.write(json.dumps(message, separators=(",", ":")) + "\n")
            self.process.stdin.flush()

    def next_event(self, timeout_s: float) -> dict[str, Any] | None:
        """The next event, None when none came within ``timeout_s``."""
        try:
            return self._events.get(timeout=max(timeout_s, 0.0))
        except queue.Empty:
            return None

    def close(self) -> int | None:
        """Tell it to quit (end of stdin), wait a little, kill it if it stays; its exit code."""
        with self._lock, contextlib.suppress(OSError, ValueError):
            assert self.process.stdin is not None
            self.process.stdin.close()
        try:
            return self.process.wait(timeout=RELAY_QUIT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()
        finally:
            self._log.close()

    def log_tail(self) -> str:
        """The last lines of its log (Locust's)."""
        with contextlib.suppress(OSError, ValueError):
            self._log.seek(0)
            return self._log.read().decode(errors="replace")[-LOG_TAIL_CHARS:]
        return ""

    def crashed(self, what: str) -> GeneratorCrashedError:
        """The error for a relay that ended when it should not have."""
        code = self.process.poll()
        return GeneratorCrashedError(
            f"the native engine's Locust relay ({what}) ended (exit code {code})",
            log_tail=self.log_tail(),
            exit_code=code,
        )


def share_to_wire(outcome_share: WorkerShare, **health: Any) -> dict[str, Any]:
    """A finished share and its process's health, as the relay carries it."""
    return {"share": outcome_share.to_wire(), **health}


def _share_from_wire(data: Any) -> ProcessShare:
    if not isinstance(data, dict):
        raise InputError(f"a worker sent a native share that is not a mapping: {data!r}")
    peak = data.get("max_cpu_percent")
    return ProcessShare(
        share=WorkerShare.from_wire(data.get("share")),
        cpu_warnings=int(data.get("cpu_warnings") or 0),
        max_cpu_percent=float(peak) if peak is not None else None,
        interrupted=bool(data.get("interrupted")),
        crashed=str(data["crashed"]) if data.get("crashed") is not None else None,
    )


# --- master -----------------------------------------------------------------------------------


@dataclass
class MasterOutcome:
    """What the workers sent: their shares by worker index (None: missing), and why not."""

    workers: list[str]
    """Locust's worker ids, by worker index."""
    shares: list[ProcessShare | None]
    refused: dict[str, str] = field(default_factory=dict)
    """Workers whose share could not be read, and why."""
    interrupted: bool = False
    """Ctrl-C or SIGTERM here: the workers were told to stop early."""
    start: float | None = None
    """The common start sent to the workers (run clock); None: the run never started (every
    worker ended, or the master was stopped, before all were set up)."""

    @property
    def missing(self) -> list[str]:
        """Workers whose share never arrived (quit, missing, or past the deadline)."""
        return [w for w, s in zip(self.workers, self.shares, strict=True) if s is None]


class RunGivenUpError(InvalidRunError):
    """A worker's master gave the run up before it started (exit 4): the master names why."""


class WorkersNotReadyError(InvalidRunError):
    """Workers connected and got their plans but were not set up in time: nothing was run
    (exit 4, as for workers that never connected)."""

    def __init__(
        self, *, not_ready: Sequence[str], expect: int, wait_s: float, ended: bool = False
    ) -> None:
        """The error for ``not_ready`` (Locust's worker ids) of ``expect`` after ``wait_s``;
        ``ended``: they ended (lost, stopped, crashed, refused their plan) before they were set
        up, and the others were stopped rather than started without them."""
        names = ", ".join(not_ready)
        if ended:
            message = (
                f"--expect-workers {expect}: {len(not_ready)} worker(s) ended before they were "
                f"set up: {names}; the others were stopped before the common start, nothing was "
                "run: see those workers' output (stopped, crashed, lost or refused their plan) "
                "and start the run again"
            )
        else:
            message = (
                f"--expect-workers {expect}: {len(not_ready)} worker(s) got their plan but were "
                f"not set up within {wait_s:g} s: {names}; a worker sets up its users (a "
                "scenario's setup steps, a login) before the common start: check that those "
                "machines reach the target and that its setup steps answer there, and that "
                "their load is not starving them"
            )
        super().__init__(message)
        self.not_ready = list(not_ready)


def run_master(
    *,
    expect_workers: int,
    bind_host: str,
    bind_port: int,
    make_plans: Callable[[int], list[SharePlan]],
    on_status: Callable[[list[LiveStatus | None]], None] | None = None,
    on_live: Callable[[list[WorkerShare | None], float], bool] | None = None,
    wait_s: float = DEFAULT_WORKERS_WAIT_S,
    ready_wait_s: float = READY_TIMEOUT_S,
    start_lead_s: float,
) -> MasterOutcome:
    """Wait for ``expect_workers`` native workers on ``bind_host:bind_port``, send worker k
    ``make_plans(n)[k]`` (its ``start`` is not sent), and once every one says its share is set
    up, the common start ``start_lead_s`` ahead; collect their shares (a worker that quit or
    went missing first is missing; none waits past its plan's end, drain and a grace). Ctrl-C
    or SIGTERM stops them early (their shares still come; ``interrupted``). ``on_live`` gets
    every worker's latest figures so far (plans with ``live_shares``) as one arrives, with the
    common start: True stops every worker, as planned (their shares still come; not
    ``interrupted``).

    Raises ConfigError when the relay cannot listen there, GeneratorCrashedError when it died,
    WorkersNotConnectedError when they had not all come after ``wait_s`` seconds,
    WorkersNotReadyError when one was still not set up ``ready_wait_s`` after the plans went,
    or ended (refused its plan, stopped, crashed, lost) before the start (the others are told
    to stop first).
    """
    relay = Relay(
        relay_argv(
            "master",
            *("--bind-host", bind_host, "--bind-port", str(bind_port)),
            *("--expect-workers", str(expect_workers)),
        )
    )
    try:
        deadline = time.monotonic() + wait_s
        workers = _wait_for_workers(relay, bind_host, bind_port, deadline)
        if workers is None:
            raise WorkersNotConnectedError.waited(
                expect=expect_workers, address=f"{bind_host}:{bind_port}", wait_s=wait_s
            )
        plans = make_plans(len(workers))
        for worker, plan in zip(workers, plans, strict=True):
            # Its master's clock now, for the worker to take (SENT_AT): the moment it is sent.
            data = {**plan_to_wire(plan), SENT_AT: time.time()}
            relay.send({"send": "plan", "worker": worker, "data": data})
        collection = _Collection(relay, workers, plans[0], on_status, on_live)
        return collection.run(ready_wait_s=ready_wait_s, start_lead_s=start_lead_s)
    finally:
        relay.send({"send": "quit"})
        relay.close()


def _wait_for_workers(
    relay: Relay, bind_host: str, bind_port: int, deadline: float
) -> list[str] | None:
    # As Locust's --expect-workers with --expect-workers-max-wait: None once ``deadline``
    # (monotonic) has passed; Ctrl-C ends the wait too.
    while True:
        if time.monotonic() > deadline:
            return None
        event = relay.next_event(1.0)
        if event is None:
            continue
        if event.get("event") == "ready":
            return [str(w) for w in event["workers"]]
        if event.get("event") == "eof":
            tail = relay.log_tail()
            if "was busy" in tail:
                raise ConfigError(
                    f"--master-bind-port {bind_port}: {bind_host}:{bind_port} is in use; "
                    "pick another port"
                )
            raise relay.crashed("master, before its workers connected")


class _Collection:
    """The master's side of a run once the plans went: the workers' setup, the common start,
    their statuses, figures and shares, as the relay's events arrive."""

    def __init__(
        self,
        relay: Relay,
        workers: list[str],
        plan: SharePlan,
        on_status: Callable[[list[LiveStatus | None]], None] | None,
        on_live: Callable[[list[WorkerShare | None], float], bool] | None,
    ) -> None:
        self.relay = relay
        self.workers = workers
        self.plan = plan
        self.on_status = on_status
        self.on_live = on_live
        self.index = {worker: k for k, worker in enumerate(workers)}
        self.outcome = MasterOutcome(workers=workers, shares=[None] * len(workers))
        self.latest: list[LiveStatus | None] = [None] * len(workers)
        self.live: list[WorkerShare | None] = [None] * len(workers)
        self.live_stopped = False
        self.set_up: set[str] = set()
        self.ended: set[str] = set()

    def run(self, *, ready_wait_s: float, start_lead_s: float) -> MasterOutcome:
        """Until every share is in (or lost, or past the bound); the outcome."""
        outcome, plan = self.outcome, self.plan
        give_up = time.monotonic() + ready_wait_s
        while len(self.ended) < len(self.workers):
            if time.monotonic() >= give_up:
                if outcome.start is None and not outcome.interrupted:
                    not_ready = [w for w in self.workers if w not in self.set_up | self.ended]
                    error = WorkersNotReadyError(
                        not_ready=not_ready, expect=len(self.workers), wait_s=ready_wait_s
                    )
                    # No start will come: every worker stops, and says why.
                    self.relay.send({"send": "stop", "data": {"gave_up": str(error)}})
                    raise error
                break
            try:
                event = self.relay.next_event(give_up - time.monotonic())
            except KeyboardInterrupt:
                if outcome.interrupted:
                    break  # a second Ctrl-C: what arrived is what there is
                outcome.interrupted = True
                self.relay.send({"send": "stop"})
                give_up = min(give_up, time.monotonic() + plan.timeout_s + SHARE_GRACE_S)
                continue
            if event is None:
                continue
            if event.get("event") == "eof":
                break
            self._take(event)
            if outcome.start is None and self.ended and not outcome.interrupted:
                # A worker gone before the start (as a --processes child ended in its setup):
                # the others are stopped rather than run a part of the timetable without it.
                gone = [w for w in self.workers if w in self.ended]
                error = WorkersNotReadyError(
                    not_ready=gone, expect=len(self.workers), wait_s=ready_wait_s, ended=True
                )
                self.relay.send({"send": "stop", "data": {"gave_up": str(error)}})
                raise error
            waiting = set(self.workers) - self.set_up - self.ended
            if outcome.start is None and self.set_up and not waiting and not outcome.interrupted:
                # Every worker still in the run is set up: all start together, a lead ahead.
                outcome.start = RunClock().now() + start_lead_s
                self.relay.send({"send": "start", "data": {"start": outcome.start}})
                bound = plan.duration_s + plan.timeout_s + SHARE_GRACE_S
                give_up = time.monotonic() + start_lead_s + bound
        return outcome

    def _take(self, event: dict[str, Any]) -> None:
        kind, worker = event.get("event"), str(event.get("worker"))
        if worker not in self.index or worker in self.ended:
            return
        k, outcome = self.index[worker], self.outcome
        if kind == "set_up":
            self.set_up.add(worker)
        elif kind == "status":
            with contextlib.suppress(TypeError):
                self.latest[k] = LiveStatus(**event["data"])
                if self.on_status is not None:
                    self.on_status(list(self.latest))
        elif kind == "live" and self.on_live is not None and not self.live_stopped:
            with contextlib.suppress(InputError):
                self.live[k] = WorkerShare.from_wire(event.get("data"))
                if outcome.start is not None and self.on_live(list(self.live), outcome.start):
                    self.live_stopped = True
                    self.relay.send({"send": "stop"})
        elif kind == "share":
            self.ended.add(worker)
            try:
                outcome.shares[k] = _share_from_wire(event.get("data"))
            except InputError as exc:
                outcome.refused[worker] = str(exc)
        elif kind == "lost":
            self.ended.add(worker)


# --- worker -----------------------------------------------------------------------------------


@dataclass
class WorkerOutcome:
    """A worker's end: its plan, the share it sent, and its own counts (for its summary)."""

    plan: SharePlan
    share: ProcessShare
    requests: int
    errors: int


def run_worker(
    *,
    master_host: str,
    master_port: int,
    check_plan: Callable[[SharePlan], SharePlan],
    on_status: Callable[[LiveStatus], None] | None = None,
) -> WorkerOutcome:
    """Connect to the native master at ``master_host:master_port`` (Locust's retries), learn
    this worker's plan (``check_plan`` may refuse it with a ConfigError, or adapt it), set it
    up here, say so, run it from the common start the master sends and send the share; returns
    once the master has quit (or a while after).

    Raises ConfigError when the master refuses this worker or its plan cannot run here,
    GeneratorCrashedError when the relay died (the master never answered), RunGivenUpError
    when the master gave the run up before its start (a worker not set up in time)."""
    relay = Relay(
        relay_argv("worker", "--master-host", master_host, "--master-port", str(master_port))
    )
    try:
        plan = check_plan(_wait_for_plan(relay, master_host, master_port))

        def live(recorder: LatencyRecorder, _elapsed_s: float) -> bool:
            # The figures so far, cumulative, without the timeline and stages (which grow
            # with the run and which no abort criterion reads): the master judges them.
            share = recorder.to_share(timeline=False)
            relay.send({"send": "live", "data": share.to_wire()})
            return False

        starts: queue.Queue[float] = queue.Queue()

        def await_start(stopped: threading.Event) -> float | None:
            # Set up (the share calls this once its loop runs and its users are): say so, and
            # wait for the common start; None once stopped (the master's stop, its relay gone).
            relay.send({"send": "set_up"})
            while not stopped.is_set():
                with contextlib.suppress(queue.Empty):
                    return starts.get(timeout=START_POLL_S)
            return None

        control = ShareControl(watch=live if plan.live_shares else None, await_start=await_start)
        gave_up: list[str] = []
        follower = threading.Thread(
            target=_follow_master, args=(relay, control, starts, gave_up), daemon=True
        )
        follower.start()

        def status(live: LiveStatus) -> None:
            relay.send({"send": "status", "data": asdict(live)})
            if on_status is not None:
                on_status(live)

        outcome = run_share(plan, on_status=status, control=control)
        if gave_up:
            # Nothing to send: the master has written its results and quit.
            raise RunGivenUpError(
                f"the master at {master_host}:{master_port} gave the run up before it "
                f"started: {gave_up[0]}"
            )
        if relay.process.poll() is not None:
            # The relay (and so the master's channel) is gone: the share cannot reach the
            # master, which counts this worker missing; say so rather than claim it was sent.
            raise relay.crashed(f"worker of {master_host}:{master_port}, before its share went")
        share = ProcessShare(
            share=outcome.recorder.to_share(),
            cpu_warnings=outcome.cpu_warnings,
            max_cpu_percent=outcome.max_cpu_percent,
            interrupted=outcome.interrupted,
            crashed=outcome.crashed,
        )
        relay.send(
            {
                "send": "share",
                "data": share_to_wire(
                    share.share,
                    cpu_warnings=share.cpu_warnings,
                    max_cpu_percent=share.max_cpu_percent,
                    interrupted=share.interrupted,
                    crashed=share.crashed,
                ),
            }
        )
        # The master quits once every share is in, and its quit ends the relay.
        with contextlib.suppress(subprocess.TimeoutExpired):
            relay.process.wait(timeout=WORKER_QUIT_WAIT_S)
        recorder = outcome.recorder
        return WorkerOutcome(
            plan=plan, share=share, requests=recorder.requests, errors=recorder.errors
        )
    finally:
        relay.close()


def _wait_for_plan(relay: Relay, master_host: str, master_port: int) -> SharePlan:
    while True:
        event = relay.next_event(1.0)
        if event is None:
            continue
        kind = event.get("event")
        if kind == "plan":
            received = time.time()
            data = event.get("data")
            plan = plan_from_wire(data)
            sent_at = data.get(SENT_AT) if isinstance(data, dict) else None
            if isinstance(sent_at, int | float):
                # This worker runs on its master's clock, whatever its own says (a master
                # without SENT_AT: on its own, as before).
                plan = replace(plan, clock_offset_s=float(sent_at) - received)
            return plan
        if kind == "refused":
            raise ConfigError(str(event.get("message")))
        if kind == "eof":
            raise relay.crashed(f"worker of {master_host}:{master_port}, before a plan came")


def _follow_master(
    relay: Relay, control: ShareControl, starts: queue.Queue[float], gave_up: list[str]
) -> None:
    """The master's word once the plan came: the common start goes to ``starts``; a stop
    (Ctrl-C there; the run given up: why, to ``gave_up``) or the relay gone stops the share."""
    while True:
        event = relay.next_event(3600.0)
        if event is None:
            continue
        kind = event.get("event")
        if kind == "start":
            data = event.get("data")
            start = data.get("start") if isinstance(data, dict) else None
            if isinstance(start, int | float):
                starts.put(float(start))
        elif kind in ("stop", "eof"):
            data = event.get("data")
            if isinstance(data, dict) and data.get("gave_up") is not None:
                gave_up.append(str(data["gave_up"]))
            control.stop()
            return

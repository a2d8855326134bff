"""Locust's master/worker transport for native runs: a relay with no users.

    python -m loadkit.engines.locust.plugin.native_relay master --bind-host H --bind-port P \\
        --expect-workers N
    python -m loadkit.engines.locust.plugin.native_relay worker --master-host H --master-port P

A native run sends its requests from asyncio (``loadkit.engines.native``), which must never
share a process with gevent; across machines it still goes through Locust's runners (ZeroMQ,
worker ids, heartbeats: DESIGN.md). So this process is Locust's runner alone, as a library
(``Environment(user_classes=[])``: no user is ever spawned, no test started), carrying JSON
lines between its parent (``loadkit.engines.native.distributed``, which does the native work)
on stdin/stdout and Locust's custom messages to its peers:

- **master**: once ``expect`` workers said they are native (``NATIVE_READY``), prints
  ``ready`` with their ids (sorted, so that a worker's index is stable); forwards each ``plan``
  to its worker; prints each worker's ``set_up`` (its share is ready to start), ``status`` and
  ``share``; prints ``lost`` for a worker that quit or that Locust's heartbeats marked missing
  before its share came; forwards ``start`` (the common start) and ``stop`` to every worker;
  quits (telling the workers to quit) on ``quit`` or the end of stdin.
- **worker**: connects (Locust's retries), says it is native, prints the ``plan``, the
  ``start`` and a ``stop``; forwards ``set_up``, ``status`` and ``share`` lines to the master;
  quits on the master's quit or the end of stdin. A master that spawns users (a Locust-engine
  master) is ``refused``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any

import gevent
from gevent.fileobject import FileObjectPosix
from locust import log as locust_log
from locust.env import Environment
from locust.runners import STATE_MISSING, MasterRunner, WorkerRunner

NATIVE_READY = "loadkit_native_ready"
"""Worker → master on connect: this worker runs native shares (a Locust-path worker never
sends it, so a master never gives it a plan)."""
NATIVE_PLAN = "loadkit_native_plan"
NATIVE_SET_UP = "loadkit_native_set_up"
"""Worker → master once its share is ready to start: its plan checked, its event loop running
and, in an open run, its users set up (a declarative scenario's logins)."""
NATIVE_START = "loadkit_native_start"
"""Master → every worker once all are set up: the common start, on the master's clock."""
NATIVE_STATUS = "loadkit_native_status"
NATIVE_LIVE = "loadkit_native_live"
"""Worker → master every second in a run with abort-on-fail criteria: its figures so far."""
NATIVE_SHARE = "loadkit_native_share"
NATIVE_STOP = "loadkit_native_stop"
"""Master → every worker: stop early (Ctrl-C there, an abort-on-fail criterion; with
``{"gave_up": why}`` the run was given up before it started)."""
LOST_CHECK_S = 0.5

logger = logging.getLogger("loadkit")


def _print(event: str, **fields: Any) -> None:
    sys.stdout.write(json.dumps({"event": event, **fields}, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def _lines() -> Any:
    """stdin's JSON lines, read cooperatively (the runner's greenlets keep running)."""
    stdin = FileObjectPosix(sys.stdin.fileno(), "rb", close=False)
    for line in stdin:
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if isinstance(message, dict):
            yield message


class MasterRelay:
    """The master's side: Locust's ``MasterRunner``, no users."""

    def __init__(self, runner: MasterRunner, expect: int) -> None:
        """Listen to the workers' messages on ``runner``; ready at ``expect`` native ones."""
        self.runner = runner
        self.expect = expect
        self.native: list[str] = []
        self.workers: list[str] = []
        self.ended: set[str] = set()
        runner.register_message(NATIVE_READY, self._ready)
        runner.register_message(NATIVE_SET_UP, self._relay("set_up"))
        runner.register_message(NATIVE_STATUS, self._relay("status"))
        runner.register_message(NATIVE_LIVE, self._relay("live"))
        runner.register_message(NATIVE_SHARE, self._relay("share", ends=True))

    def _ready(self, environment: Any, msg: Any, **_kwargs: Any) -> None:
        if msg.node_id in self.native or self.workers:
            return  # a duplicate, or a worker beyond those the run started with
        # A worker that said ready and then left (or went silent) before the run started is
        # no longer one of its workers: a share planned for it would only go missing.
        self.native = [worker for worker in self.native if self._present(worker)]
        self.native.append(msg.node_id)
        if len(self.native) >= self.expect:
            self.workers = sorted(self.native)
            _print("ready", workers=self.workers)
            gevent.spawn(self._watch_lost)

    def _relay(self, event: str, *, ends: bool = False) -> Any:
        def relay(environment: Any, msg: Any, **_kwargs: Any) -> None:
            if msg.node_id not in self.workers or msg.node_id in self.ended:
                return
            if ends:
                self.ended.add(msg.node_id)
            _print(event, worker=msg.node_id, data=msg.data)

        return relay

    def _present(self, worker: str) -> bool:
        client = self.runner.clients.get(worker)
        return client is not None and client.state != STATE_MISSING

    def _watch_lost(self) -> None:
        # A worker that quit (Locust drops it) or stopped sending heartbeats (missing).
        while True:
            gevent.sleep(LOST_CHECK_S)
            for worker in self.workers:
                if not self._present(worker) and worker not in self.ended:
                    self.ended.add(worker)
                    _print("lost", worker=worker)

    def serve(self) -> None:
        """Forward the parent's lines until ``quit`` or the end of stdin, then quit."""
        for message in _lines():
            send = message.get("send")
            if send == "plan":
                self.runner.send_message(
                    NATIVE_PLAN, message.get("data"), client_id=str(message.get("worker"))
                )
            elif send == "start":
                for worker in self.workers:
                    self.runner.send_message(NATIVE_START, message.get("data"), client_id=worker)
            elif send == "stop":
                for worker in self.workers:
                    self.runner.send_message(NATIVE_STOP, message.get("data"), client_id=worker)
            elif send == "quit":
                break
        self.runner.quit()  # sends "quit" to every worker, waits for their last words


class WorkerRelay:
    """A worker's side: Locust's ``WorkerRunner``, no users."""

    def __init__(self, runner: WorkerRunner) -> None:
        """Say "native" to the master (connected by now) and listen for its plan."""
        self.runner = runner
        runner.register_message(NATIVE_PLAN, lambda msg, **_k: _print("plan", data=msg.data))
        runner.register_message(NATIVE_START, lambda msg, **_k: _print("start", data=msg.data))
        runner.register_message(NATIVE_STOP, lambda msg, **_k: _print("stop", data=msg.data))
        events: Any = runner.environment.events  # Locust's hooks are untyped
        events.test_start.add_listener(self._spawned)
        runner.send_message(NATIVE_READY)

    def _spawned(self, **_kwargs: Any) -> None:
        # Only a Locust-engine master spawns users: it expects a locustfile's worker.
        _print(
            "refused",
            message="the master at the other end runs Locust users (a locustfile), not the "
            "native engine: start this worker without --engine native, with the master's "
            "scenario (`loadkit load --worker --scenario ...`)",
        )
        gevent.spawn(self._quit)

    def _quit(self) -> None:
        events: Any = self.runner.environment.events
        events.quitting.fire(environment=self.runner.environment)
        gevent.sleep(0.5)  # the "quit" to the master goes out before the process ends
        self.runner.quit()

    def serve(self) -> None:
        """Forward the parent's lines to the master; quit at the end of stdin."""
        reader = gevent.spawn(self._forward)
        gevent.joinall([reader, *self.runner.greenlet], count=1)
        if not reader.dead:
            reader.kill()  # the master said quit: its runner's greenlets ended
            return
        self._quit()

    def _forward(self) -> None:
        for message in _lines():
            send = message.get("send")
            if send == "set_up":
                self.runner.send_message(NATIVE_SET_UP, message.get("data"))
            elif send == "status":
                self.runner.send_message(NATIVE_STATUS, message.get("data"))
            elif send == "live":
                self.runner.send_message(NATIVE_LIVE, message.get("data"))
            elif send == "share":
                self.runner.send_message(NATIVE_SHARE, message.get("data"))


def main(argv: list[str] | None = None) -> int:
    """The relay's command line (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="native_relay")
    sub = parser.add_subparsers(dest="role", required=True)
    master = sub.add_parser("master")
    master.add_argument("--bind-host", required=True)
    master.add_argument("--bind-port", type=int, required=True)
    master.add_argument("--expect-workers", type=int, required=True)
    worker = sub.add_parser("worker")
    worker.add_argument("--master-host", required=True)
    worker.add_argument("--master-port", type=int, required=True)
    args = parser.parse_args(argv)
    setup: Any = locust_log.setup_logging  # untyped
    setup("INFO")
    environment = Environment(user_classes=[])
    if args.role == "master":
        runner = environment.create_master_runner(args.bind_host, args.bind_port)
        MasterRelay(runner, args.expect_workers).serve()
    else:
        worker_runner = environment.create_worker_runner(args.master_host, args.master_port)
        WorkerRelay(worker_runner).serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A ``--processes`` master's wait for the workers it forked, in short steps.

Locust's headless master checks whether its ``--expect-workers`` are ready once a second
(locust/main.py, ``start_automatic_run``, a ``time.sleep(1)`` between checks). The workers of
``--processes`` are forked on this machine just before the master builds its runner and connect
within a fraction of a second, so nearly every run waited a whole second for them after they had
come. The plugin's ``init`` listener runs just before that check: it waits for them itself, in
``POLL_S`` steps, so Locust's first check finds them ready. Past ``BOUND_S`` (a worker that
died while starting) it returns, and Locust's own wait goes on as before. A master of workers
from elsewhere (``--master``) is left to Locust's wait: they may come much later, and its
``--expect-workers-max-wait`` counts from there.
"""

from __future__ import annotations

import time
from typing import Any

import gevent
from locust.runners import MasterRunner

POLL_S = 0.05
BOUND_S = 5.0


def await_forked_workers(environment: Any) -> None:
    """In a headless ``--processes`` master, return once its workers are all ready (or after
    ``BOUND_S``); elsewhere at once."""
    options = environment.parsed_options
    runner = environment.runner
    if not isinstance(runner, MasterRunner) or options is None:
        return
    if not options.headless or not getattr(options, "processes", None):
        return
    deadline = time.monotonic() + BOUND_S
    # gevent.sleep lets the runner's greenlets take the workers' "client_ready" messages.
    while len(runner.clients.ready) < options.expect_workers and time.monotonic() < deadline:
        gevent.sleep(POLL_S)

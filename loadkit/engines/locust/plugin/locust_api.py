"""What the plugin uses of Locust's ``Environment`` and runners, as typing Protocols.

Locust ships no type stubs: seen through these, a misspelt attribute is a type error instead of
an ``Any`` that hides it. Only the members the plugin reads or calls are listed; what it only
reads is a read-only property here (so a stand-in in a test may hold plain attributes).
"""

from __future__ import annotations

from argparse import Namespace
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol


class EventHook(Protocol):
    """One of Locust's events."""

    def add_listener(self, handler: Callable[..., Any]) -> Any:
        """Call ``handler`` each time the event fires (in registration order)."""


class Events(Protocol):
    """The events the plugin listens to (``environment.events``)."""

    test_start: EventHook
    test_stopping: EventHook
    test_stop: EventHook
    cpu_warning: EventHook
    usage_monitor: EventHook
    reset_stats: EventHook
    spawning_complete: EventHook
    quitting: EventHook
    quit: EventHook
    request: EventHook
    user_error: EventHook
    report_to_master: EventHook
    worker_report: EventHook


class UserGreenlet(Protocol):
    """A running user's greenlet: its first argument is the ``User``."""

    args: tuple[Any, ...]


class GreenletGroup(Protocol):
    """The runner's own greenlets (``runner.greenlet``): a headless Locust runs until they end."""

    def kill(self, *, block: bool = True) -> None:
        """Kill them all (Locust's ``quit()`` ends with this)."""


class Runner(Protocol):
    """A local, master or worker runner."""

    @property
    def greenlet(self) -> GreenletGroup:
        """The runner's own greenlets."""

    @property
    def state(self) -> str:
        """Locust's runner state (``locust.runners.STATE_RUNNING``, ...)."""

    @property
    def user_count(self) -> int:
        """Users running now (a master: over its workers)."""

    @property
    def target_user_count(self) -> int | None:
        """The users asked for."""

    @property
    def user_greenlets(self) -> Iterable[UserGreenlet]:
        """This process's running users."""

    def stop(self) -> None:
        """Stop the test (a master: its workers' too)."""

    def quit(self) -> None:
        """Stop and shut the runner down."""


class WorkerRunner(Runner, Protocol):
    """A worker's runner."""

    @property
    def client_id(self) -> str:
        """This worker's id, as the master knows it."""

    def send_message(self, msg_type: str, data: Any = None) -> None:
        """Send a custom message to the master (ordered with Locust's own messages)."""

    def register_message(self, msg_type: str, listener: Callable[..., Any]) -> None:
        """Call ``listener(environment, msg)`` for each custom message of ``msg_type``."""


class WorkerNode(Protocol):
    """The master's view of one worker."""

    @property
    def cpu_usage(self) -> float:
        """Its CPU percent, from its latest heartbeat."""


class MasterRunner(Runner, Protocol):
    """A master's runner."""

    @property
    def clients(self) -> Mapping[str, WorkerNode]:
        """The connected workers by client id."""

    @property
    def worker_cpu_warning_emitted(self) -> bool:
        """Set by Locust when a worker's heartbeat showed it above 90 % CPU."""

    def register_message(self, msg_type: str, listener: Callable[..., Any]) -> None:
        """Call ``listener(environment, msg)`` for each custom message of ``msg_type``."""

    def send_message(self, msg_type: str, data: Any = None, client_id: str | None = None) -> None:
        """Send a custom message to one worker (``client_id``), or to all."""


class Message(Protocol):
    """A custom message received by the master."""

    node_id: str
    data: Any


class Environment(Protocol):
    """Locust's composition root, as far as the plugin uses it."""

    events: Events
    runner: Runner | None
    parsed_options: Namespace | None
    host: str | None
    locustfile: str | None
    user_classes: list[type]
    reset_stats: bool
    process_exit_code: int | None
    shape_class: Any
    """The locustfile's ``LoadTestShape`` instance, or None: it drives users and length."""

"""What the plugin uses of Locust's ``Environment`` and runners, as typing Protocols.

Locust ships no type stubs: seen through these, a misspelt attribute is a type error instead of
an ``Any`` that hides it. Only the members the plugin reads or calls are listed.
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
    request: EventHook
    report_to_master: EventHook
    worker_report: EventHook


class UserGreenlet(Protocol):
    """A running user's greenlet: its first argument is the ``User``."""

    args: tuple[Any, ...]


class Runner(Protocol):
    """A local, master or worker runner."""

    state: str
    user_count: int
    target_user_count: int | None
    user_greenlets: Iterable[UserGreenlet]

    def stop(self) -> None:
        """Stop the test (a master: its workers' too)."""

    def quit(self) -> None:
        """Stop and shut the runner down."""


class WorkerRunner(Runner, Protocol):
    """A worker's runner."""

    client_id: str

    def send_message(self, msg_type: str, data: Any = None) -> None:
        """Send a custom message to the master (ordered with Locust's own messages)."""


class WorkerNode(Protocol):
    """The master's view of one worker."""

    cpu_usage: float


class MasterRunner(Runner, Protocol):
    """A master's runner."""

    clients: Mapping[str, WorkerNode]
    worker_cpu_warning_emitted: bool

    def register_message(self, msg_type: str, listener: Callable[..., Any]) -> None:
        """Call ``listener(environment, msg)`` for each custom message of ``msg_type``."""


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

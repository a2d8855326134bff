"""A user whose client speaks no HTTP and fires Locust's request events itself.

As Locust's examples for XML-RPC, gRPC or databases do: the client times each call and fires
``events.request`` with its own request type (``KV``) and name. A read of a key that is not
there is a failure (the ``KeyError`` is the request's exception).
"""

from __future__ import annotations

import time
from typing import Any

from locust import User, task
from locust.env import Environment

ITERATIONS = 4
PAUSE_S = 0.01
IDLE_S = 3600.0
CALL_S = 0.001
"""What one call to the store costs (the store is in this process: make it take some time)."""


class KeyValueClient:
    """An in-process key-value store with a client in Locust's manner."""

    def __init__(self, environment: Environment) -> None:
        self.environment = environment
        self.store: dict[str, str] = {"user:1": "ann"}

    def _call(self, name: str, operation: Any) -> Any:
        start = time.perf_counter()
        exception: BaseException | None = None
        result = None
        try:
            time.sleep(CALL_S)
            result = operation()
        except KeyError as error:
            exception = error
        self.environment.events.request.fire(  # type: ignore[no-untyped-call]
            request_type="KV",
            name=name,
            response_time=(time.perf_counter() - start) * 1000,
            response_length=len(str(result or "")),
            response=None,
            context={},
            exception=exception,
        )
        return result

    def get(self, key: str, *, name: str) -> str | None:
        """The value at ``key``; a missing key is a failed request."""
        return self._call(name, lambda: self.store[key])  # type: ignore[no-any-return]

    def set(self, key: str, value: str, *, name: str) -> None:
        """Store ``value`` at ``key``."""
        self._call(name, lambda: self.store.__setitem__(key, value))


class KeyValueUser(User):
    """Reads a user, writes one, reads one that does not exist; ``ITERATIONS`` times."""

    rounds_left = ITERATIONS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.client = KeyValueClient(self.environment)

    def wait_time(self) -> float:
        """A short pause between rounds; idle once they are done."""
        return PAUSE_S if self.rounds_left > 0 else IDLE_S

    @task
    def use_the_store(self) -> None:
        """Get, set, get a missing key."""
        self.rounds_left -= 1
        self.client.get("user:1", name="get user")
        self.client.set(f"user:{id(self)}", "bob", name="set user")
        self.client.get("user:nobody", name="get user")

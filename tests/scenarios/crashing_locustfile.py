"""A locustfile for tests: its user kills Locust's process after a few requests.

``os._exit`` ends the process at once, with no results written and no Python error, as a crash
in C code or the kernel's OOM killer would. Run by path, never imported by the test process
(Locust would monkey-patch it).
"""

from __future__ import annotations

import os

from locust import FastHttpUser, constant, task

CRASH_AFTER = 20
CRASH_CODE = 3


class CrashingUser(FastHttpUser):
    """Gets a file, then dies."""

    wait_time = constant(0.01)
    done = 0

    @task
    def hello(self) -> None:
        """An existing file, until the process dies."""
        self.client.get("/hello.txt")
        CrashingUser.done += 1
        if CrashingUser.done >= CRASH_AFTER:
            print(f"crashing on purpose after {CrashingUser.done} requests", flush=True)
            os._exit(CRASH_CODE)

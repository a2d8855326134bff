"""Waiting on the processes a test started: until Locust's users talk to the target."""

from __future__ import annotations

import time

import psutil


def connected(pid: int, port: int) -> bool:
    """Whether a child of ``pid`` (Locust) has a connection to ``port`` open."""
    for child in psutil.Process(pid).children(recursive=True):
        try:
            connections = child.net_connections(kind="tcp")
        except psutil.Error:
            continue
        if any(c.raddr and c.raddr.port == port for c in connections):
            return True
    return False


def wait_until_connected(pid: int, port: int, *, timeout_s: float = 30.0) -> None:
    """Return once a child of ``pid`` talks to ``port`` (or ``timeout_s`` passed: the caller's
    assertions then say what did not happen)."""
    deadline = time.monotonic() + timeout_s
    while not connected(pid, port) and time.monotonic() < deadline:
        time.sleep(0.1)

"""A small network of hosts on this machine, for tests of runs that cross machines.

Each host is a Linux network namespace with loopback up and one interface, ``eth0``, plugged
into a bridge that lives in a namespace of its own (the "switch"). Addresses are private, in one
/24 picked at random, and no namespace has a default route: nothing can leave the network, and
the machine's own interfaces and addresses are never touched. Everything is removed when the
``network`` context ends, also on failure: deleting a namespace deletes the veths in it.

Needs root and ``ip`` (iproute2). Where namespaces cannot be made, ``network`` calls
``pytest.skip`` with the command that failed and its message, so the skip and its reason show in
the test summary.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest

SWITCH = "switch"


class NamespaceUnavailable(Exception):
    """A namespace, veth or bridge could not be made here (not root, no ``ip``, EPERM)."""


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10, check=False)
    if done.returncode != 0:
        raise NamespaceUnavailable(f"`ip {' '.join(args)}` failed: {done.stderr.strip()}")


@dataclass(frozen=True)
class Host:
    """One machine of the network: its namespace, address, and its port on the switch."""

    name: str
    namespace: str
    address: str
    switch_port: str
    """The veth's end in the switch namespace: taking it down cuts this host's link."""

    def argv(self, argv: Sequence[str]) -> list[str]:
        """``argv`` run inside this host's namespace, under this host's own host name (a UTS
        namespace of its own: what a program calls its machine, as on a real host)."""
        named = ["unshare", "--uts", "sh", "-c", 'hostname "$0" && exec "$@"', self.name]
        return ["ip", "netns", "exec", self.namespace, *named, *argv]

    def popen(self, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[str]:
        """Start ``argv`` on this host (text mode, output captured unless said otherwise)."""
        kwargs.setdefault("stdout", subprocess.PIPE)
        kwargs.setdefault("stderr", subprocess.PIPE)
        return subprocess.Popen(self.argv(argv), text=True, **kwargs)


@dataclass
class Network:
    """The hosts by name, and what can be done to their links."""

    hosts: dict[str, Host]
    switch: str
    started: list[subprocess.Popen[str]] = field(default_factory=list)

    def __getitem__(self, name: str) -> Host:
        return self.hosts[name]

    def start(self, name: str, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[str]:
        """``argv`` on host ``name``; when the network is removed, every process on its host is
        killed (only this test's: the namespace is its own) and this one reaped by its handle."""
        process = self.hosts[name].popen(argv, **kwargs)
        self.started.append(process)
        return process

    def kill_host(self, name: str) -> None:
        """SIGKILL every process on host ``name`` (each started here, by its pid: ``ip netns
        pids``), children in sessions of their own included: a host that dies leaves nothing
        behind to say goodbye for it."""
        _kill_all_in(self.hosts[name].namespace)

    def cut(self, name: str) -> None:
        """Cut host ``name``'s link (its switch port down): its packets go nowhere, as when a
        cable is pulled or a host dies without closing its connections."""
        _ip("-n", self.switch, "link", "set", self.hosts[name].switch_port, "down")

    def _stop_all(self) -> None:
        for host in self.hosts.values():
            _kill_all_in(host.namespace)
        for process in self.started:
            with contextlib.suppress(subprocess.TimeoutExpired, ValueError):
                process.communicate(timeout=10)


def _kill_all_in(namespace: str) -> None:
    # Until none is left: a process forking while its parent is killed would keep the
    # namespace (and its addresses) alive after `ip netns delete`.
    for _ in range(50):
        listed = subprocess.run(
            ["ip", "netns", "pids", namespace], capture_output=True, text=True, check=False
        )
        pids = listed.stdout.split()
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
        time.sleep(0.02)


def _unavailable_reason() -> str | None:
    for tool, package in (("ip", "iproute2"), ("unshare", "util-linux")):
        if shutil.which(tool) is None:
            return f"`{tool}` ({package}) is not installed"
    if os.geteuid() != 0:
        return "network namespaces need root (this test makes its own, then removes them)"
    return None


@contextmanager
def network(names: Sequence[str]) -> Iterator[Network]:
    """Hosts ``names`` on one switch, each with an address of one random 10.x.y.0/24.

    Skips the test (naming what failed) where namespaces cannot be made here.
    """
    reason = _unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    suffix = secrets.token_hex(3)
    subnet = f"10.{200 + secrets.randbelow(50)}.{secrets.randbelow(250) + 1}"
    switch = f"lk{suffix}-{SWITCH}"
    made: list[str] = []
    net = Network(hosts={}, switch=switch)
    try:
        try:
            for namespace in [switch] + [f"lk{suffix}-{name}" for name in names]:
                _ip("netns", "add", namespace)
                made.append(namespace)
                _ip("-n", namespace, "link", "set", "lo", "up")
            _ip("-n", switch, "link", "add", "br0", "type", "bridge")
            _ip("-n", switch, "link", "set", "br0", "up")
            for index, name in enumerate(names, start=1):
                host = Host(
                    name=name,
                    namespace=f"lk{suffix}-{name}",
                    address=f"{subnet}.{index + 10}",
                    switch_port=f"p{index}",
                )
                # Made in the switch with its other end straight in the host: no name is ever
                # created in the machine's own namespace, so nothing there can clash.
                _ip(
                    *("-n", switch, "link", "add", host.switch_port, "type", "veth"),
                    *("peer", "name", "eth0", "netns", host.namespace),
                )
                _ip("-n", switch, "link", "set", host.switch_port, "master", "br0", "up")
                _ip("-n", host.namespace, "addr", "add", f"{host.address}/24", "dev", "eth0")
                _ip("-n", host.namespace, "link", "set", "eth0", "up")
                net.hosts[name] = host
        except NamespaceUnavailable as exc:
            pytest.skip(f"cannot build a network of namespaces here: {exc}")
        yield net
    finally:
        net._stop_all()
        for namespace in reversed(made):
            subprocess.run(["ip", "netns", "delete", namespace], capture_output=True, check=False)

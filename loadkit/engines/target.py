"""The target URL (``--host``, ``load URL``): checked once, the same way for every engine.

smoke, load, ui and accept all send to it, so all of them refuse the same malformed URLs with the
same ``ConfigError`` (exit 2), before anything connects: ``urlsplit`` raises ``ValueError`` for
``http://[::1``, an out-of-range port surfaces only at ``connect()`` as an ``OverflowError``, and
IDNA refuses a label over 63 characters with a ``UnicodeError`` deep inside the resolver.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from loadkit.defaults import DEFAULT_TARGET
from loadkit.exceptions import ConfigError
from loadkit.url_credentials import mask_password

_LABEL = re.compile(r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?", re.ASCII)
"""One DNS label after IDNA (RFC 1123; ``_`` too, which container hostnames use)."""
_MAX_HOSTNAME = 253
_BRACKETED = re.compile(r"\[[^\[\]]+\](:[0-9]*)?")
_UNSAFE = re.compile(r"[\x00-\x20\x7f]")
"""Whitespace and control characters: never part of a URL, and urlsplit silently drops some."""


@dataclass(frozen=True)
class TargetURL:
    """An http(s) URL with a host that can be connected to."""

    scheme: str
    hostname: str
    """As a resolver takes it: lower case, an IPv6 address without brackets."""
    port: int
    netloc: str
    path: str
    """The path and query ("/" when none)."""

    @property
    def base(self) -> str:
        """``scheme://netloc``: the URL without path or query."""
        return f"{self.scheme}://{self.netloc}"


def parse_target(text: str, *, option: str = "--host") -> TargetURL:
    """``text`` as a target URL; a ``ConfigError`` naming ``option`` and the fault otherwise."""
    url = text.strip()

    def refuse(why: str) -> ConfigError:
        masked = mask_password(text)
        shown = repr(masked) if len(masked) <= 200 else repr(masked[:200]) + "..."
        return ConfigError(f"{option} {shown}: {why}; give a URL like {DEFAULT_TARGET}")

    if _UNSAFE.search(url):
        raise refuse("holds whitespace or a control character")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:  # "Invalid IPv6 URL", "Port out of range 0-65535", ...
        raise refuse(f"not a URL ({exc})") from None
    if parts.scheme not in {"http", "https"}:
        raise refuse("not an http:// or https:// URL")
    hostname = parts.hostname
    if not hostname:
        raise refuse("no host")
    if port == 0:
        raise refuse("port 0 cannot be connected to")
    host_port = parts.netloc.rpartition("@")[2]
    bracketed = "[" in host_port or "]" in host_port
    if bracketed and not _BRACKETED.fullmatch(host_port):
        # urlsplit reads "[::1]]" as ::1 and leaves the stray bracket to the HTTP client.
        raise refuse(f"{host_port[:80]!r} is not [an IPv6 address] with an optional :port")
    _check_hostname(hostname, bracketed=bracketed, refuse=refuse)
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    default_port = 443 if parts.scheme == "https" else 80
    return TargetURL(
        scheme=parts.scheme,
        hostname=hostname,
        port=port if port is not None else default_port,
        netloc=parts.netloc,
        path=path,
    )


def scenario_target(text: str, *, option: str = "--host") -> str:
    """The URL a declarative scenario's request paths are appended to, the same on both engines:
    the target without its trailing slash (``http://h/v2/`` → ``http://h/v2``; ``http://h/`` →
    ``http://h``), so that ``/items`` is requested as ``/v2/items`` or ``/items``, never
    ``/v2//items`` or ``//items``. The Locust path gives it to Locust as ``--host`` (which
    writes ``host + path``); the native engine prepends its path (``scenario_base_path``).
    A ``ConfigError`` naming ``option`` for a target with a query or a fragment: each request's
    path would land inside it."""
    url = text.strip()
    parse_target(url, option=option)
    parts = urlsplit(url)
    after_host = url[len(parts.scheme) + 3 + len(parts.netloc) :]
    if "?" in after_host or "#" in after_host:
        raise ConfigError(
            f"{option} {mask_password(url)[:200]!r}: a declarative scenario appends its request "
            "paths to the target's path, so the target cannot carry a query or a fragment; give "
            "scheme://host[:port][/base path] and put the query in the scenario's requests"
        )
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"


def scenario_base_path(text: str, *, option: str = "--host") -> str:
    """What the native engine prepends to a declarative scenario's request paths: the path of
    ``scenario_target`` (``http://h/v2/`` → ``/v2``; nothing for no path or a lone ``/``)."""
    return urlsplit(scenario_target(text, option=option)).path


def check_host(text: str, *, option: str, any_address: bool = False) -> str:
    """``text`` as a bare host (a name, an IPv4 address, an IPv6 address with or without
    brackets) for Locust's master options; ``any_address`` also lets ``0.0.0.0`` and ``*`` (bind
    everywhere) through. A ``ConfigError`` naming ``option`` otherwise."""
    host = text.strip()

    def refuse(why: str) -> ConfigError:
        shown = repr(text) if len(text) <= 200 else repr(text[:200]) + "..."
        return ConfigError(f"{option} {shown}: {why}; give a host name or an IP address")

    if any_address and host in ("*", "0.0.0.0", "::"):
        return host
    if not host:
        raise refuse("empty")
    bracketed = host.startswith("[") and host.endswith("]")
    inner = host[1:-1] if bracketed else host
    _check_hostname(inner, bracketed=bracketed or ":" in inner, refuse=refuse)
    return host


def _check_hostname(
    hostname: str, *, bracketed: bool, refuse: Callable[[str], ConfigError]
) -> None:
    if bracketed:
        try:
            ipaddress.IPv6Address(hostname)
        except ValueError:
            raise refuse(f"[{hostname}] is not an IPv6 address") from None
        return
    try:
        ascii_name = hostname.encode("idna").decode("ascii")
    except UnicodeError:
        raise refuse(f"host {hostname[:80]!r} is not a valid host name") from None
    labels = ascii_name.removesuffix(".").split(".")
    if len(ascii_name) > _MAX_HOSTNAME or not all(_LABEL.fullmatch(label) for label in labels):
        raise refuse(f"host {hostname[:80]!r} is not a valid host name")

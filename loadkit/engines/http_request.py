"""The one request of a URL run, and how TLS is checked: what the CLI hands either engine.

Pure data: ``loadkit load URL`` (and its ``--method``, ``--header``, ``--body``, ``--insecure``,
``--ca-cert``) describes the request once; the native engine encodes it, Locust's ``url``
scenario sends it with FastHttpUser. The declarative scenario of acceptance.toml (the "any API"
issue) will describe several of these.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from loadkit.config import TargetProfile

DEFAULT_METHOD = "GET"


@dataclass(frozen=True)
class TlsOptions:
    """How an https target's certificate is checked: verified against the system's CAs by
    default (as curl and httpx do), or against ``ca_cert`` (a PEM file), or not at all
    (``verify=False``, ``--insecure``)."""

    verify: bool = True
    ca_cert: Path | None = None


@dataclass(frozen=True)
class RequestSpec:
    """One HTTP request, sent again and again: ``url`` is absolute (scheme, host, port, path
    and query); ``name`` is the endpoint it is recorded under (default: the path)."""

    url: str
    method: str = DEFAULT_METHOD
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    name: str | None = None
    tls: TlsOptions = field(default_factory=TlsOptions)
    target: TargetProfile = field(default_factory=TargetProfile)
    """How the API reports error kinds and trace ids, and the trace header each request
    carries fresh (acceptance.toml's ``[target]``; the bundled service's by default)."""

"""``--loadkit-insecure`` / ``--loadkit-ca-cert``: how the locustfile's HTTP users check an https
target's certificate, the same rule as smoke and the native engine (``engines/tls.py``).

Locust's ``FastHttpUser`` checks nothing by default (``insecure = True``), its ``HttpUser``
(requests) verifies against certifi's CAs. Under loadkit both verify by default against the
system's CAs (as smoke and the native engine do); ``--insecure`` turns checking off,
``--ca-cert`` trusts that PEM file. Applied once, at ``init``, to the user
classes Locust will run, before any user exists:

- a ``FastHttpUser`` class gets ``insecure`` and ``ssl_context_factory``, unless the class (or a
  base of its own, below ``FastHttpUser``) sets ``insecure``, ``ssl_context_factory`` or
  ``client_pool`` itself: the locustfile's explicit choice wins, as it would in plain Locust;
- an ``HttpUser`` class's client gets ``verify`` right after the user is built, so a choice the
  locustfile makes in ``on_start`` (``self.client.verify = ...``) still wins.
"""

from __future__ import annotations

import functools
import os
import ssl
from collections.abc import Callable, Iterable
from typing import Any

import gevent.ssl
from locust import FastHttpUser, HttpUser

from loadkit.engines.http_request import TlsOptions

OWN_CHOICE = ("insecure", "ssl_context_factory", "client_pool")
"""FastHttpUser attributes by which a locustfile's class decides TLS itself."""


def apply_tls(user_classes: Iterable[type[Any]], tls: TlsOptions) -> list[str]:
    """Make every HTTP user class in ``user_classes`` check certificates as ``tls`` says;
    the names of the classes left with a choice of their own."""
    classes = list(user_classes)
    # Decided before any class is changed: a class set here is not "its own choice" for a
    # subclass of it that is in the list too.
    kept = [cls for cls in classes if issubclass(cls, FastHttpUser) and _chooses_itself(cls)]
    for cls in classes:
        if issubclass(cls, FastHttpUser) and cls not in kept:
            cls.insecure = not tls.verify
            factory = _context_factory(tls)
            # A staticmethod: a plain function in a class attribute would be bound to the user.
            cls.ssl_context_factory = staticmethod(factory) if factory is not None else None
        elif issubclass(cls, HttpUser):
            _verify_after_init(cls, _requests_verify(tls))
        elif getattr(cls, "http2_capable", False) and not _sets_tls_itself(cls):
            # scenarios' Http2User (no FastHttpUser): the same two attributes decide its TLS
            cls.insecure = not tls.verify
            factory = _context_factory(tls)
            cls.ssl_context_factory = staticmethod(factory) if factory is not None else None
    return sorted(cls.__name__ for cls in kept)


def _sets_tls_itself(cls: type[Any]) -> bool:
    # Below the class that first says it can speak HTTP/2 (scenarios' Http2User): the
    # locustfile's own classes.
    below = [k for k in cls.__mro__ if getattr(k, "http2_capable", False)][:-1]
    return any(name in klass.__dict__ for klass in below for name in OWN_CHOICE)


def _chooses_itself(cls: type[Any]) -> bool:
    below = cls.__mro__[: cls.__mro__.index(FastHttpUser)]
    return any(name in klass.__dict__ for klass in below for name in OWN_CHOICE)


def _context_factory(tls: TlsOptions) -> Callable[[], Any] | None:
    """None: Locust's own factory for ``insecure`` (unverified)."""
    if not tls.verify:
        return None
    cafile = str(tls.ca_cert) if tls.ca_cert is not None else None

    def verifying_context(**_kwargs: Any) -> Any:
        # geventhttpclient calls the factory with cafile=<certifi's bundle>: ignored. Trusted
        # are the --ca-cert file, else the system's CAs, as smoke and the native engine do
        # (a CA installed only in the system store would otherwise fail here alone).
        return gevent.ssl.create_default_context(cafile=cafile)

    return verifying_context


def _requests_verify(tls: TlsOptions) -> bool | str:
    """requests' ``verify`` for ``tls``: its own default trusts certifi's bundle, so a verified
    run without --ca-cert names the system's CA file or folder (True when it has none)."""
    if not tls.verify:
        return False
    if tls.ca_cert is not None:
        return str(tls.ca_cert)
    paths = ssl.get_default_verify_paths()
    for candidate in (paths.cafile, paths.capath):
        if candidate and os.path.exists(candidate):
            return candidate
    return True


def _verify_after_init(cls: type[Any], verify: bool | str) -> None:
    original = cls.__init__

    @functools.wraps(original)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        self.client.verify = verify

    cls.__init__ = __init__

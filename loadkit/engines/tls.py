"""How an https target's certificate is checked, as an ``ssl.SSLContext``: one rule for smoke
(httpx), the native engine and the launcher's check of ``--ca-cert`` before Locust starts.

Verified against the system's CAs by default, as curl and httpx do; ``--ca-cert PATH`` trusts
that PEM bundle instead; ``--insecure`` checks nothing. A CA file that is missing, unreadable
or not PEM is a ConfigError naming it, before any request.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from loadkit.engines.http_request import TlsOptions
from loadkit.exceptions import ConfigError

CA_CERT_OPTION = "--ca-cert"


def tls_options(*, insecure: bool, ca_cert: Path | None) -> TlsOptions:
    """The CLI's ``--insecure`` / ``--ca-cert`` as ``TlsOptions``, the CA file checked (it is
    read once here, so that a bad one is exit 2 naming it, not an error per request)."""
    if insecure and ca_cert is not None:
        raise ConfigError(
            f"--insecure and {CA_CERT_OPTION} {ca_cert} cannot go together: --insecure checks "
            f"no certificate, {CA_CERT_OPTION} checks them against that file; give one"
        )
    if ca_cert is not None:
        ca_cert = Path(ca_cert).absolute()  # Locust runs in a process of its own
        client_context(TlsOptions(ca_cert=ca_cert))
    return TlsOptions(verify=not insecure, ca_cert=ca_cert)


def client_context(tls: TlsOptions) -> ssl.SSLContext:
    """The client-side SSL context ``tls`` describes; a ConfigError naming a CA file that cannot
    be read or holds no certificate."""
    if not tls.verify:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    if tls.ca_cert is None:
        return ssl.create_default_context()
    try:
        return ssl.create_default_context(cafile=str(tls.ca_cert))
    except FileNotFoundError:
        raise ConfigError(
            f"{CA_CERT_OPTION} {tls.ca_cert}: no such file; give the PEM file of the CA that "
            "signed the target's certificate (or --insecure to check none)"
        ) from None
    except OSError as exc:  # ssl.SSLError is one: a file that is not PEM certificates
        why = exc.strerror or getattr(exc, "reason", None) or str(exc)
        raise ConfigError(
            f"{CA_CERT_OPTION} {tls.ca_cert}: cannot be read as PEM certificates ({why})"
        ) from None

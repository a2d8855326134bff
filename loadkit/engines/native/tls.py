"""How the native engine checks an https target's certificate (``TlsOptions``): the loop's own
TLS (``ssl``), verifying against the system's CAs by default, against ``ca_cert`` when given, not
at all with ``verify=False``."""

from __future__ import annotations

import ssl

from loadkit.engines.http_request import TlsOptions
from loadkit.exceptions import ConfigError


def client_context(tls: TlsOptions) -> ssl.SSLContext:
    """The client context for ``tls`` (a ``ConfigError`` naming a CA file that cannot be read)."""
    if not tls.verify:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    try:
        return ssl.create_default_context(
            cafile=str(tls.ca_cert) if tls.ca_cert is not None else None
        )
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"--ca-cert {tls.ca_cert}: cannot be read as PEM certificates ({exc}); give a PEM "
            "file of the CA that signed the target's certificate"
        ) from None

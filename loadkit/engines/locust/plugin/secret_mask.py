"""``--loadkit-secrets``: the environment variables whose values are secrets (a declarative
scenario's ``${NAME}``), masked as ``${NAME}`` in the tracebacks the plugin records.

Only the names travel (on Locust's command line, and from a master to its workers in the spawn
message); each process reads the values from its own environment, as the locustfile does, and
uses them for nothing but masking: an HTTP client that refuses a filled-in header quotes it in
its exception, which the results and the summary would otherwise show.
"""

from __future__ import annotations

from collections.abc import Mapping

from loadkit.engines.templates import Secrets


class SecretMask:
    """Masks the secrets ``--loadkit-secrets`` names (comma-separated), read from ``environ``."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ
        self._names: str | None = None
        self._secrets = Secrets({})

    def mask(self, names: str | None, text: str) -> str:
        """``text`` with the values of the variables ``names`` lists replaced by ``${NAME}``
        (also percent-, JSON- or repr-encoded, as ``Secrets.mask`` does)."""
        if names != self._names:
            # Read when the names change: a worker gets them with its master's spawn message.
            wanted = [name for name in (names or "").split(",") if name]
            values = {name: self._environ[name] for name in wanted if name in self._environ}
            self._names, self._secrets = names, Secrets(values)
        return self._secrets.mask(text)

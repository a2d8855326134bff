"""The one exception family of loadkit.

Modules raise these; only the CLI turns them into exit codes (``EXIT_CODES`` in ``loadkit.cli``).
Every message names what was wrong (file, key, value) and what to do about it.
"""


class LoadkitError(Exception):
    """Root of every error loadkit reports to its user."""


class ConfigError(LoadkitError):
    """A configuration file or option is invalid (exit 2)."""


class InputError(LoadkitError):
    """An input file (results, logs, sources) cannot be read or is not what it claims (exit 2)."""


class TargetUnreachableError(LoadkitError):
    """The target could not be reached before the run started (exit 3)."""


class InvalidRunError(LoadkitError):
    """A run produced numbers nobody should gate on: generator overloaded, run aborted (exit 4)."""


class CriteriaNotMetError(LoadkitError):
    """The run completed and was measured, but did not meet what was asked of it (exit 1)."""


class ServiceStartError(LoadkitError):
    """The bundled service could not be started or never became healthy (exit 3)."""

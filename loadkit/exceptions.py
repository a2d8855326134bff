"""The one exception family of loadkit.

Modules raise these; only the CLI turns them into exit codes (``EXIT_CODES`` in ``loadkit.cli``).
Every message names what was wrong (file, key, value) and what to do about it.

    LoadkitError
    ├── ConfigError                 2  a configuration file or option is invalid
    ├── InputError                  2  an input file cannot be read or is not what it claims
    ├── TargetUnreachableError      3  nobody answers at the target before the run
    ├── ServiceStartError           3  the bundled service did not start
    ├── InvalidRunError             4  numbers nobody should gate on
    │   ├── InvalidLoadRunError     4  a load run completed invalid; its results were written
    │   ├── GeneratorCrashedError   4  the load generator died during the run
    │   └── WorkersNotConnectedError 4  a master gave up waiting for its workers; nothing ran
    └── CriteriaNotMetError         1  measured, and not good enough
    KeyboardInterrupt             130
    └── LoadInterrupted           130  Ctrl-C or SIGTERM; partial results were written

The errors of a run carry the results it stopped with: the results are a type of ``measure``,
named here for the type checker only (nothing is imported at run time, as httpx's errors name
its Request).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from loadkit.measure.results import LoadResults


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


class InvalidLoadRunError(InvalidRunError):
    """A load run completed but its numbers must not be gated on; the results file says why."""

    def __init__(self, results: LoadResults, path: Path) -> None:
        reasons = "; ".join(map(str, results.invalid_reasons)) or "marked invalid"
        super().__init__(f"the load run is invalid: {reasons} (results: {path})")
        self.results = results
        self.path = path


class GeneratorStartError(ConfigError):
    """The load generator (Locust) could not be started at all: the installation is broken
    (exit 2)."""


class GeneratorCrashedError(InvalidRunError):
    """The load generator (Locust) died or hung during a run, though its locustfile loads.

    Not a configuration error: the scenario loaded and the run began. ``results`` are what the
    run left (when it wrote nothing, the empty results marked ``generator_crashed`` that loadkit
    wrote in their place), ``log_tail`` the generator's last lines of output.
    """

    def __init__(
        self,
        message: str,
        *,
        log_tail: str = "",
        exit_code: int | None = None,
        results: LoadResults | None = None,
        path: Path | None = None,
    ) -> None:
        super().__init__(f"{message}; its last lines:\n{log_tail}" if log_tail else message)
        self.log_tail = log_tail
        self.exit_code = exit_code
        """The generator's exit code as ``Popen.returncode`` gives it (None: not known)."""
        self.results = results
        self.path = path


class WorkersNotConnectedError(InvalidRunError):
    """A master gave up waiting for its ``--expect-workers`` workers: nothing was run (exit 4)."""

    @classmethod
    def waited(
        cls, *, expect: int, address: str, wait_s: float, connected: int | None = None
    ) -> WorkersNotConnectedError:
        """The error after ``wait_s`` seconds on ``address`` (host:port) with ``connected`` of
        ``expect`` workers (None: not known)."""
        have = f"only {connected} of {expect}" if connected is not None else f"not all {expect}"
        host, _, port = address.rpartition(":")
        # A wildcard bind is no address to give a worker: the master's own name or address is.
        where = "MASTER_ADDRESS" if host in ("0.0.0.0", "::", "[::]", "") else host
        return cls(
            f"--expect-workers {expect}: {have} workers connected to {address} within "
            f"--expect-workers-max-wait {wait_s:g} s; start `loadkit load --worker --master-host "
            f"{where} --master-port {port}` on each worker machine (the same engine, scenario "
            "and loadkit as the master), check that they can reach that address, or wait longer"
        )


class CriteriaNotMetError(LoadkitError):
    """The run completed and was measured, but did not meet what was asked of it (exit 1)."""


class ServiceStartError(LoadkitError):
    """The bundled service could not be started or never became healthy (exit 3)."""


class LoadInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM stopped a run; its partial results, marked aborted, were written.

    A KeyboardInterrupt, so that callers that do not care exit 130 as for any Ctrl-C.
    """

    def __init__(self, results: LoadResults | None, path: Path | None) -> None:
        super().__init__("interrupted")
        self.results = results
        self.path = path

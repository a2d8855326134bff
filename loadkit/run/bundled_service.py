"""Start and stop the bundled API service as a child process on a free loopback port.

Used by ``loadkit accept`` when no ``--host`` is given, and by the tests. The service runs as
``python -m service`` in its own process (loadkit never imports ``service``), with a fresh SQLite
database, and is stopped by its own process handle: SIGTERM first (graceful), SIGKILL if it lingers.
``loadkit serve`` runs the same command in place.

The bundled service is the one that runs, whatever ``service`` package the user has: the folder
that holds it (``loadkit.run.bundle``) goes first on the child's ``PYTHONPATH``, and ``-P`` keeps
the working directory off its ``sys.path``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import IO

import httpx

from loadkit.defaults import LOOPBACK
from loadkit.exceptions import ServiceStartError
from loadkit.files import open_for_append
from loadkit.run.bundle import bundle_dir

DEFAULT_START_TIMEOUT_S = 30.0
DEFAULT_STOP_TIMEOUT_S = 15.0
TRACE_FILE_ENV = "ENGINES_TRACE_FILE"
"""The service's setting for its span file (one OTLP-JSON record per line)."""
SAMPLER_ENV = "OTEL_TRACES_SAMPLER"


def span_recording_env(trace_file: Path) -> dict[str, str]:
    """The settings that make the bundled service record the spans of every request to
    ``trace_file``: ``always_on``, because where the time went is summed over every request,
    which a sampled share of them could not give exactly."""
    return {TRACE_FILE_ENV: str(trace_file), SAMPLER_ENV: "always_on"}


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port that was free on ``host`` a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def service_command(*, host: str, port: int) -> list[str]:
    """The command line that runs the bundled service on ``host:port``."""
    # -P: without it, `-m` puts the working directory first on sys.path, and a user's own
    # `service` package there would run instead of ours.
    return [sys.executable, "-P", "-m", "service", "--host", host, "--port", str(port)]


def service_environment(base: Mapping[str, str]) -> dict[str, str]:
    """``base`` with the bundled packages' folder first on ``PYTHONPATH``."""
    env = dict(base)
    inherited = env.get("PYTHONPATH")
    env["PYTHONPATH"] = os.pathsep.join([str(bundle_dir()), *([inherited] if inherited else [])])
    return env


class BundledService:
    """The bundled service in a child process; a context manager that always stops it."""

    def __init__(
        self,
        *,
        workdir: Path,
        env: dict[str, str] | None = None,
        host: str = LOOPBACK,
        port: int | None = None,
        start_timeout_s: float = DEFAULT_START_TIMEOUT_S,
    ) -> None:
        """``workdir`` holds the SQLite database and ``service.log``; ``env`` adds ENGINES_*
        settings (faults, limits) on top of the current environment."""
        # Absolute: the child runs inside workdir, so a relative database path would resolve twice.
        self.workdir = workdir.resolve()
        self.host = host
        self.port = port or free_port(host)
        self.start_timeout_s = start_timeout_s
        self.log_path = self.workdir / "service.log"
        self.database_path = self.workdir / "engines.db"
        self._env = env or {}
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        """The service's base URL."""
        return f"http://{self.host}:{self.port}"

    @property
    def process(self) -> subprocess.Popen[bytes]:
        """The running child process."""
        if self._process is None:
            raise ServiceStartError("the bundled service has not been started")
        return self._process

    def start(self) -> BundledService:
        """Start the service and wait until ``/health`` answers 200."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        env = service_environment(os.environ)
        env.setdefault("ENGINES_DATABASE_URL", f"sqlite+aiosqlite:///{self.database_path}")
        env.update(self._env)
        self._log = open_for_append(self.log_path)
        self._process = subprocess.Popen(
            service_command(host=self.host, port=self.port),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=self.workdir,
        )
        try:
            self._wait_healthy()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + self.start_timeout_s
        last_problem = "no answer yet"
        with httpx.Client(timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise ServiceStartError(
                        f"the bundled service exited with code {self.process.returncode} during "
                        f"start-up; its log: {self.log_path}\n{self.log_tail()}"
                    )
                try:
                    response = client.get(f"{self.url}/health")
                    if response.status_code == 200:
                        return
                    last_problem = f"/health answered {response.status_code}"
                except httpx.HTTPError as exc:
                    last_problem = type(exc).__name__
                time.sleep(0.1)
        raise ServiceStartError(
            f"the bundled service at {self.url} was not healthy within "
            f"{self.start_timeout_s:g} s ({last_problem}); its log: {self.log_path}"
        )

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of the service's log (for error messages)."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout_s: float = DEFAULT_STOP_TIMEOUT_S) -> int | None:
        """SIGTERM, wait up to ``timeout_s``, then SIGKILL. Returns the exit code."""
        process = self._process
        code: int | None = None
        if process is not None:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=timeout_s)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            code = process.returncode
        if self._log is not None:
            self._log.close()
            self._log = None
        return code

    def __enter__(self) -> BundledService:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

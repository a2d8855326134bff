"""A throwaway PostgreSQL cluster for the tests: ``initdb`` into a temporary directory, ``pg_ctl``
on a free loopback port, stopped (``pg_ctl stop -m fast``) and deleted afterwards.

It never uses a system service (the Debian ``postgresql`` cluster may or may not be running): it
runs its own server from the newest ``/usr/lib/postgresql/*/bin``. initdb refuses to run as root,
so as root the cluster is made and run by the ``postgres`` system user (``runuser``) in a
directory that user owns.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

SUPERUSER = "postgres"
"""The cluster's superuser (``initdb -U``), whatever OS user runs it."""

START_TIMEOUT_S = 60


class PostgresUnavailable(Exception):
    """No PostgreSQL server binaries here (or no way to run them): the tests skip."""


def find_bindir() -> Path:
    """The directory holding initdb and pg_ctl: the newest /usr/lib/postgresql/*/bin, else
    ``pg_config --bindir``, else wherever ``initdb`` is on PATH."""

    def version(path: str) -> tuple[int, ...]:
        return tuple(int(x) for x in re.findall(r"\d+", Path(path).parent.name))

    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version, reverse=True)
    pg_config = shutil.which("pg_config")
    if pg_config is not None:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True
            )
            candidates.append(out.stdout.strip())
    initdb = shutil.which("initdb")
    if initdb is not None:
        candidates.append(str(Path(initdb).resolve().parent))
    for candidate in candidates:
        bindir = Path(candidate)
        if (bindir / "initdb").is_file() and (bindir / "pg_ctl").is_file():
            return bindir
    raise PostgresUnavailable(
        "PostgreSQL server binaries (initdb, pg_ctl) not found in /usr/lib/postgresql/*/bin, "
        "pg_config --bindir or PATH: install them (Debian: apt-get install postgresql) or set "
        "ENGINES_TEST_POSTGRES_URL to a server"
    )


def free_port() -> int:
    """A TCP port nobody listens on at 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PostgresCluster:
    """One cluster in its own temporary directory; ``start()`` then ``stop()`` (idempotent)."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.run_as: list[str] = []
        self.owner: pwd.struct_passwd | None = None
        if os.geteuid() == 0:
            runuser = shutil.which("runuser")
            try:
                self.owner = pwd.getpwnam("postgres")
            except KeyError:
                self.owner = None
            if runuser is None or self.owner is None:
                raise PostgresUnavailable(
                    "running as root, and initdb refuses root: needs the 'postgres' system "
                    "user and runuser to run the test cluster as that user"
                )
            self.run_as = [runuser, "-u", "postgres", "--"]
        self.root = Path(tempfile.mkdtemp(prefix="loadkit-pg-"))
        if self.owner is not None:
            os.chown(self.root, self.owner.pw_uid, self.owner.pw_gid)
        self.datadir = self.root / "data"
        self.socketdir = self.root
        self.logfile = self.root / "server.log"
        self.port = 0
        self._started = False

    def _run(self, *args: str | Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        command: Sequence[str] = [*self.run_as, *(str(a) for a in args)]
        # cwd: the postgres user may not be allowed into the caller's working directory.
        result = subprocess.run(
            command,
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"{' '.join(command)} failed ({result.returncode}):\n"
                f"{result.stdout}{result.stderr}{self.server_log()}"
            )
        return result

    def server_log(self) -> str:
        """The server's log so far (for failure messages)."""
        try:
            return "\n--- server log ---\n" + self.logfile.read_text(errors="replace")
        except OSError:
            return ""

    def start(self) -> None:
        """initdb, configure (loopback TCP on a free port, sockets in the temp dir, no fsync),
        and start the server, waiting until it accepts connections."""
        self._run(
            self.bindir / "initdb",
            "-D",
            self.datadir,
            "-U",
            SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--no-locale",
            "--no-sync",
        )
        for attempt in range(3):
            self.port = free_port()
            settings = {
                "listen_addresses": "'127.0.0.1'",
                "port": str(self.port),
                "unix_socket_directories": f"'{self.socketdir}'",
                "fsync": "off",
                "synchronous_commit": "off",
                "full_page_writes": "off",
                "shared_buffers": "32MB",
                "max_connections": "100",
                "log_min_messages": "warning",
            }
            conf = "".join(f"{name} = {value}\n" for name, value in settings.items())
            auto = self.datadir / "postgresql.auto.conf"
            auto.write_text("# loadkit test cluster\n" + conf)
            if self.owner is not None:
                os.chown(auto, self.owner.pw_uid, self.owner.pw_gid)
            try:
                self._started = True  # from here on, stop() must try pg_ctl stop
                self._run(
                    self.bindir / "pg_ctl",
                    "start",
                    "-D",
                    self.datadir,
                    "-l",
                    self.logfile,
                    "-w",
                    "-t",
                    str(START_TIMEOUT_S),
                    timeout=START_TIMEOUT_S + 30,
                )
                return
            except RuntimeError:
                self._pg_ctl_stop()
                self._started = False
                # Most likely the port was taken between free_port() and the bind: retry.
                if attempt == 2:
                    raise

    def url(self, database: str = "postgres") -> str:
        """The SQLAlchemy asyncpg URL of ``database`` on this cluster."""
        return f"postgresql+asyncpg://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def _pg_ctl_stop(self) -> None:
        if not (self.datadir / "postmaster.pid").exists():
            return
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            self._run(self.bindir / "pg_ctl", "stop", "-D", self.datadir, "-m", "fast", "-w")

    def stop(self) -> None:
        """Stop the server (fast shutdown) and delete the cluster's directory."""
        if self._started:
            self._pg_ctl_stop()
            self._started = False
        shutil.rmtree(self.root, ignore_errors=True)


def asyncpg_connect_kwargs(url: str) -> dict[str, Any]:
    """``asyncpg.connect`` arguments for a SQLAlchemy ``postgresql+asyncpg://`` URL."""
    parsed = make_url(url)
    return {
        "host": parsed.host,
        "port": parsed.port,
        "user": parsed.username,
        "password": parsed.password,
        "database": parsed.database,
    }


async def admin_execute(server_url: str, statement: str) -> None:
    """Run one statement on the server's maintenance database (outside any transaction)."""
    import asyncpg  # the dev extra installs it; imported here so SQLite-only runs need not

    connection = await asyncpg.connect(**asyncpg_connect_kwargs(server_url))
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


async def create_database(server_url: str, name: str) -> str:
    """Create database ``name`` on the server; returns its asyncpg URL."""
    await admin_execute(server_url, f'CREATE DATABASE "{name}"')
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


async def drop_database(server_url: str, name: str) -> None:
    """Drop database ``name`` if it exists, disconnecting whoever uses it."""
    await admin_execute(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

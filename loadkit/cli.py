"""The loadkit command line: declares commands and hands work to plain functions.

This is the only module that turns errors into exit codes (DESIGN.md, "Exit codes"). Imports of
anything heavy happen inside the commands, so that ``loadkit --help`` and ``loadkit smoke`` stay
fast and never import Locust (which monkey-patches the process with gevent).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer

from loadkit.exceptions import (
    ConfigError,
    CriteriaNotMetError,
    InputError,
    InvalidRunError,
    LoadkitError,
    ServiceStartError,
    TargetUnreachableError,
)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
EXIT_INVALID_RUN = 4
EXIT_INTERRUPTED = 130

EXIT_CODES: dict[type[LoadkitError], int] = {
    CriteriaNotMetError: EXIT_FAILED,
    ConfigError: EXIT_USAGE,
    InputError: EXIT_USAGE,
    TargetUnreachableError: EXIT_UNREACHABLE,
    ServiceStartError: EXIT_UNREACHABLE,
    InvalidRunError: EXIT_INVALID_RUN,
}

DEFAULT_CONFIG = Path("acceptance.toml")

app = typer.Typer(
    name="loadkit",
    help=(
        "Load-testing and acceptance harness for HTTP APIs: exact HDR latencies, an honest gate, "
        "errors explained by kind, endpoint and trace id."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def exit_code_for(error: LoadkitError) -> int:
    """The exit code for an error, by the most specific class that has one."""
    for cls in type(error).__mro__:
        if cls in EXIT_CODES:
            return EXIT_CODES[cls]
    return EXIT_USAGE


@contextlib.contextmanager
def exit_on_error() -> Iterator[None]:
    """Print a loadkit error as one line on stderr and exit with its code; Ctrl-C exits 130."""
    try:
        yield
    except LoadkitError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(code=exit_code_for(error)) from None
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        raise typer.Exit(code=EXIT_INTERRUPTED) from None


ConfigOption = Annotated[
    Path,
    typer.Option("--config", help="The acceptance file: criteria, smoke checks, load profiles."),
]


# --- serve -------------------------------------------------------------------------------------


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to bind (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port to listen on.")] = 8000,
    database_url: Annotated[
        str | None,
        typer.Option(
            help=(
                "SQLAlchemy async URL, e.g. sqlite+aiosqlite:///./engines.db or "
                "postgresql+asyncpg://user:pw@127.0.0.1/engines (default: ENGINES_DATABASE_URL "
                "or ./engines.db)."
            )
        ),
    ] = None,
) -> None:
    """Run the bundled API service (the "engines" API) under uvicorn.

    Settings come from ENGINES_* environment variables (see README); the options here override
    them. The service runs as `python -m service` in this same process (exec), so signals such as
    SIGTERM reach uvicorn directly and shut it down gracefully.
    """
    env = dict(os.environ)
    if database_url is not None:
        env["ENGINES_DATABASE_URL"] = database_url
    argv = [sys.executable, "-m", "service", "--host", host, "--port", str(port)]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, argv, env)


# --- smoke -------------------------------------------------------------------------------------

# --- load / ui ---------------------------------------------------------------------------------

# --- gate / accept / compare -------------------------------------------------------------------

# --- audit-locks -------------------------------------------------------------------------------

# --- errors ------------------------------------------------------------------------------------


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()

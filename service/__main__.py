"""``python -m service [--host H] [--port P]``: run the service under uvicorn (``service.server``).

Settings come from ``ENGINES_*`` variables; they are validated before uvicorn starts, so a bad
setting is one clear line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import sys

from pydantic import ValidationError

from service.app import create_app
from service.server import build_server
from service.settings import Settings
from service.tracing import TracingConfigError

EXIT_STARTUP_FAILED = 3
"""As ``uvicorn.run``: the lifespan start-up failed (e.g. the database could not be opened)."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line: where to listen."""
    parser = argparse.ArgumentParser(
        prog="python -m service", description="Run the engines API service."
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (loopback default)")
    parser.add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")
    return parser.parse_args(argv)


def _setting_problem(loc: tuple[int | str, ...], message: str) -> str:
    """One line naming the ENGINES_* variable at fault (the whole settings when none is)."""
    message = message.removeprefix("Value error, ")
    if loc and str(loc[0]) in Settings.model_fields:
        return f"invalid setting ENGINES_{str(loc[0]).upper()}: {message}"
    return f"invalid settings: {message}"


def main(argv: list[str] | None = None) -> int:
    """Validate settings, then serve until SIGINT/SIGTERM; returns the exit code."""
    args = parse_args(argv)
    try:
        settings = Settings()
    except ValidationError as error:
        for problem in error.errors():
            print(f"error: {_setting_problem(problem['loc'], problem['msg'])}", file=sys.stderr)
        return 2
    try:
        app = create_app(settings)
    except TracingConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    server = build_server(app, settings, host=args.host, port=args.port)
    server.run()
    return 0 if server.started else EXIT_STARTUP_FAILED


if __name__ == "__main__":
    sys.exit(main())

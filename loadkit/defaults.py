"""Every default loadkit's commands share: where the service is, where results go, which ports.

One home, so that a default changed here changes everywhere (the CLI's options, the runners, and
the Locust plugin, which imports this module inside Locust's process). It imports nothing: the
bottom of the layering (docs/architecture.md).
"""

from __future__ import annotations

from pathlib import Path

LOOPBACK = "127.0.0.1"
"""What loadkit listens on unless told otherwise (the service, the web UI, a Locust master)."""
SERVE_PORT = 8000
"""The bundled service's port under ``loadkit serve`` (the service's own default too)."""
DEFAULT_TARGET = f"http://{LOOPBACK}:{SERVE_PORT}"
"""The API under test when no ``--host`` is given: the bundled service, as ``loadkit serve``
runs it."""

DEFAULT_CONFIG = Path("acceptance.toml")
"""The acceptance file looked for in the working directory."""
DEFAULT_PROFILE = "default"
"""The load profile run when none is named; built in when the acceptance file has none."""

DEFAULT_LOAD_OUT = Path("results/load.json")
"""Where ``loadkit load`` (and the plugin in a plain headless Locust run) writes its results."""
DEFAULT_UI_DIR = Path("results")
"""Where each test started from the web UI writes ``ui-<time>.json``."""
DEFAULT_REPORTS_DIR = Path("reports")
"""Where ``loadkit accept`` creates its timestamped report folder."""

DEFAULT_WEB_PORT = 8089
"""The Locust web UI's port (Locust's own default)."""
DEFAULT_MASTER_PORT = 5557
"""The port a Locust master listens on for its workers (Locust's own default)."""
DEFAULT_WORKERS_WAIT_S = 60
"""How long a ``--master`` waits for its ``--expect-workers`` before it gives up (exit 4)."""

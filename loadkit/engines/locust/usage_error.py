"""How the plugin refuses a run at Locust's ``init``, and how the launcher recognises it.

The plugin runs inside Locust's process and cannot raise loadkit's errors across it: it writes one
line, ``loadkit: error: <what, and what to do>``, on stderr and ends Locust with exit 2 (argparse's
code for a usage error); ``loadkit load`` finds that line and says it as its own usage error.
"""

from __future__ import annotations

import sys
from typing import NoReturn

ERROR_PREFIX = "loadkit: error: "
USAGE_EXIT_CODE = 2


def refuse(message: str) -> NoReturn:
    """End Locust now with a usage error the launcher recognises (one line, exit 2).

    SystemExit passes through Locust's event dispatch (it catches Exception only), so Locust ends
    here, before its runner starts a test."""
    sys.stderr.write(f"{ERROR_PREFIX}{message}\n")
    sys.stderr.flush()
    raise SystemExit(USAGE_EXIT_CODE)

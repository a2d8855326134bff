"""Whether Locust can load a locustfile, asked of Locust itself in a process of its own.

When Locust ends without results, this tells a locustfile that cannot be loaded (a syntax error,
a failed import, no User class: the user's input is wrong, exit 2) from a generator that died
while running (exit 4). It loads the file with Locust's own loader, in the same interpreter,
working directory and environment Locust had, so its answer is Locust's; Locust is imported in
that child process only (it monkey-patches whatever imports it). It runs only after a failure:
a run that ends well pays nothing.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

CHECK_TIMEOUT_S = 60.0
VERDICT = "loadkit-locustfile:"
"""Prefix of the child's one-line verdict on stdout (a locustfile may print on import too)."""

_EXITED = "it exited with code"

# Run as `python -c _CHECK <path> <VERDICT> <_EXITED>`: Locust's own loader, as Locust runs it
# (merge_locustfiles_content also finds pytest-style users, and refuses duplicate User names).
_CHECK = """
import os, sys, traceback
path, prefix, exited = sys.argv[1:4]

def verdict(text):
    print(prefix, text.replace("\\n", " "), flush=True)
    os._exit(0)

try:
    from locust.main import merge_locustfiles_content
    users = merge_locustfiles_content([path])[0]
except SyntaxError as exc:
    verdict(f"{type(exc).__name__}: {exc}")
except SystemExit as exc:
    if exc.code is None or isinstance(exc.code, int):
        verdict(f"{exited} {exc.code or 0} while loading")
    verdict(f"{exited} 1 while loading: {exc.code}")  # sys.exit("why"), as Python exits
except BaseException as exc:
    frames = traceback.extract_tb(exc.__traceback__)
    frames = [frame for frame in frames if not frame.filename.startswith("<frozen")]
    where = ""
    if frames:
        where = f" ({os.path.basename(frames[-1].filename)}, line {frames[-1].lineno})"
    verdict(f"{type(exc).__name__}: {exc}{where}")
verdict("ok" if users else "no User class in it (Locust needs at least one)")
"""


def locustfile_problem(path: Path) -> str | None:
    """Why Locust cannot load the locustfile at ``path``, in one line; None when it loads."""
    try:
        done = subprocess.run(
            [sys.executable, "-c", _CHECK, str(path), VERDICT, _EXITED],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=CHECK_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        return f"it did not finish loading within {CHECK_TIMEOUT_S:.0f} s"
    verdicts = [line for line in done.stdout.splitlines() if line.startswith(VERDICT)]
    if not verdicts:
        # The process died while importing it (os._exit, a signal, a crash in C code).
        return f"Python exited with code {done.returncode} while loading it"
    verdict = verdicts[-1].removeprefix(VERDICT).strip()
    if verdict.startswith(_EXITED) and verdict.endswith("while loading"):
        # Whoever exited said why on stderr (Locust: duplicate User class names, ...).
        said = [line for line in done.stderr.splitlines() if line.strip()]
        return f"{verdict}: {said[-1].strip()}" if said else verdict
    return None if verdict == "ok" else verdict

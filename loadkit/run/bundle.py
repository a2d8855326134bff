"""Where the service and scenarios shipped with loadkit live.

In a wheel they sit in loadkit's own folder, ``loadkit/_bundled/{service,scenarios}``
(pyproject.toml maps the repository's folders there), which is on nobody's ``sys.path``: an
installed loadkit neither shadows a user's own ``service`` or ``scenarios`` package nor is
shadowed by one. In a checkout or an editable install they are the repository's top-level
folders, next to ``loadkit/``. Only the child process that runs the bundled service gets that
folder on its path (``loadkit.run.bundled_service``); scenarios are reached by path, as Locust
reaches any locustfile.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1]
INSTALLED_BUNDLE_DIR = PACKAGE_DIR / "_bundled"
"""Where a wheel puts the bundled packages (absent from a checkout)."""


def bundle_dir() -> Path:
    """The folder that holds the bundled ``service`` and ``scenarios`` packages."""
    if INSTALLED_BUNDLE_DIR.is_dir():
        return INSTALLED_BUNDLE_DIR
    return PACKAGE_DIR.parent


def bundled_scenarios_dir() -> Path:
    """The folder of the scenarios shipped with loadkit (``login``, ``api``, ``url``)."""
    return bundle_dir() / "scenarios"

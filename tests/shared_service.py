"""One bundled service per test module, for modules whose tests only need a healthy service.

Starting the service costs about a second (and stopping it half as much); a module whose tests
each register fresh accounts (the ``login`` and ``api`` scenarios name theirs with a uuid) and
never change the service's settings can share one. Tests that need a fresh database or other
settings keep the function-scoped ``service``/``start_service`` fixtures of ``tests/conftest.py``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from loadkit.run.bundled_service import BundledService


def module_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BundledService]:
    """Start the bundled service with the suite's default settings (low bcrypt rounds), yield it,
    and stop it by its process handle, also when a test of the module failed."""
    workdir = tmp_path_factory.mktemp("module-service")
    with BundledService(workdir=workdir, env={"ENGINES_BCRYPT_ROUNDS": "4"}) as service:
        yield service

"""Start-up stays lean: ``loadkit --help`` and ``loadkit smoke`` never import Locust or gevent
(Locust monkey-patches the whole process with gevent on import, DESIGN.md), and the classifier
the Locust side reuses never imports httpx."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import loadkit
from tests.loadkit.misbehaving_servers import closed_port

HEAVY = ("locust", "gevent", "geventhttpclient", "zmq", "flask")


def modules_after(code: str) -> set[str]:
    """The top-level modules loaded after running ``code`` in a fresh interpreter."""
    script = textwrap.dedent(code) + textwrap.dedent(
        """
        import sys
        print(" ".join(sorted({name.partition(".")[0] for name in sys.modules})))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    return set(done.stdout.split())


def test_help_does_not_import_locust_or_gevent() -> None:
    loaded = modules_after(
        """
        from typer.testing import CliRunner
        from loadkit.cli import app
        result = CliRunner().invoke(app, ["--help"])
        assert result.exit_code == 0, result.output
        result = CliRunner().invoke(app, ["smoke", "--help"])
        assert result.exit_code == 0, result.output
        """
    )
    assert not loaded & set(HEAVY)


def test_smoke_run_does_not_import_locust_or_gevent() -> None:
    # The whole command path: config, runner, preflight (refused), error reporting.
    loaded = modules_after(
        f"""
        from typer.testing import CliRunner
        from loadkit.cli import app
        import loadkit.engines.smoke, loadkit.report.smoke
        result = CliRunner().invoke(app, ["smoke", "--host", "{closed_port()}"])
        assert result.exit_code == 3, result.output
        """
    )
    assert "httpx" in loaded  # the smoke runner did run
    assert not loaded & set(HEAVY)


def test_classifier_does_not_import_httpx() -> None:
    loaded = modules_after("import loadkit.measure.classify")
    assert "httpx" not in loaded
    assert not loaded & set(HEAVY)


PACKAGE = Path(loadkit.__file__).parent
LOCUST_SIDE = ("loadkit.engines.locust.loadkit_plugin", "loadkit.engines.locust.plugin")
"""Modules that run only inside Locust's process (loadkit/engines/locust/__init__.py)."""


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_locust_side(name: str) -> bool:
    return any(name == side or name.startswith(f"{side}.") for side in LOCUST_SIDE)


def test_only_locust_side_modules_import_the_locust_side() -> None:
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        name = module_name(path)
        if is_locust_side(name):
            continue
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                imported = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            else:
                continue
            offenders += [f"{name} imports {i}" for i in imported if is_locust_side(i)]
    assert not offenders, offenders


def test_every_module_outside_the_locust_side_imports_without_locust_or_gevent() -> None:
    names = [
        module_name(path)
        for path in sorted(PACKAGE.rglob("*.py"))
        if not is_locust_side(module_name(path)) and module_name(path) != "loadkit.__main__"
    ]
    loaded = modules_after("\n".join(f"import {name}" for name in names))
    assert not loaded & set(HEAVY)

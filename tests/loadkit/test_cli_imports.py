"""Start-up stays lean: ``loadkit --help`` and ``loadkit smoke`` never import Locust or gevent
(Locust monkey-patches the whole process with gevent on import, DESIGN.md), and the classifier
the Locust side reuses never imports httpx."""

from __future__ import annotations

import subprocess
import sys
import textwrap

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

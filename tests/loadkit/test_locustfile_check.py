"""Whether Locust can load a locustfile, asked of Locust in a child process: what tells a
broken scenario (exit 2) from a generator that crashed (exit 4)."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadkit.engines.locust.locustfile import locustfile_problem

pytestmark = pytest.mark.slow  # each check starts Python and imports Locust

USER = "from locust import HttpUser, task\nclass U(HttpUser):\n    @task\n    def t(self): pass\n"


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        (USER, None),
        (
            "from locust import HttpUser\nclass U(HttpUser)\n",
            "SyntaxError: expected ':' (m.py, line 2)",
        ),
        (
            "import os\n\nimport loadkit_nope\n",
            "ModuleNotFoundError: No module named 'loadkit_nope' (m.py, line 3)",
        ),
        (USER + "raise ValueError('bad\\nvalue')\n", "ValueError: bad value (m.py, line 5)"),
        ("TIMEOUT = 3\n", "no User class in it (Locust needs at least one)"),
        (
            "import sys\nsys.exit('no data file')\n",
            "it exited with code 1 while loading: no data file",
        ),
        (
            "import sys\nprint('oops', file=sys.stderr)\nsys.exit(3)\n",
            "it exited with code 3 while loading: oops",
        ),
        ("import os\nos._exit(7)\n", "Python exited with code 7 while loading it"),
    ],
    ids=["loads", "syntax", "import", "raises", "no user", "exit why", "exit code", "os._exit"],
)
def test_the_problem_is_named_in_one_line(tmp_path: Path, source: str, problem: str | None) -> None:
    locustfile = tmp_path / "m.py"
    locustfile.write_text(source)
    assert locustfile_problem(locustfile) == problem


def test_a_locustfile_printing_on_import_does_not_confuse_the_verdict(tmp_path: Path) -> None:
    locustfile = tmp_path / "m.py"
    locustfile.write_text("print('loadkit-locustfile: ok')\nimport loadkit_nope\n")
    problem = locustfile_problem(locustfile)
    assert problem is not None and problem.startswith("ModuleNotFoundError")

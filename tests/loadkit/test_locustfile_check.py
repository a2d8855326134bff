"""Whether Locust can load a locustfile, asked of Locust in a child process: what tells a
broken scenario (exit 2) from a generator that crashed (exit 4)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from loadkit.engines.locust.locustfile import locustfile_problem

pytestmark = pytest.mark.slow  # each check starts Python and imports Locust

USER = "from locust import HttpUser, task\nclass U(HttpUser):\n    @task\n    def t(self): pass\n"


CASES: dict[str, tuple[str, str | None]] = {
    "loads": (USER, None),
    "syntax": (
        "from locust import HttpUser\nclass U(HttpUser)\n",
        "SyntaxError: expected ':' (m.py, line 2)",
    ),
    "import": (
        "import os\n\nimport loadkit_nope\n",
        "ModuleNotFoundError: No module named 'loadkit_nope' (m.py, line 3)",
    ),
    "raises": (USER + "raise ValueError('bad\\nvalue')\n", "ValueError: bad value (m.py, line 5)"),
    "no user": ("TIMEOUT = 3\n", "no User class in it (Locust needs at least one)"),
    "exit why": (
        "import sys\nsys.exit('no data file')\n",
        "it exited with code 1 while loading: no data file",
    ),
    "exit code": (
        "import sys\nprint('oops', file=sys.stderr)\nsys.exit(3)\n",
        "it exited with code 3 while loading: oops",
    ),
    "os._exit": ("import os\nos._exit(7)\n", "Python exited with code 7 while loading it"),
}
"""Each locustfile's source and the verdict on it (None: it loads)."""


def test_the_problem_is_named_in_one_line(tmp_path: Path) -> None:
    # The checks run at once, each a Python start-up importing Locust (one after another they
    # cost half a second each, the file with no User class 3 s).
    def check(name: str) -> str | None:
        folder = tmp_path / name.replace(" ", "_").replace(".", "_")
        folder.mkdir()
        locustfile = folder / "m.py"
        locustfile.write_text(CASES[name][0])
        return locustfile_problem(locustfile)

    with ThreadPoolExecutor(max_workers=4) as pool:
        verdicts = dict(zip(CASES, pool.map(check, CASES), strict=True))
    assert verdicts == {name: problem for name, (_source, problem) in CASES.items()}


def test_a_locustfile_printing_on_import_does_not_confuse_the_verdict(tmp_path: Path) -> None:
    locustfile = tmp_path / "m.py"
    locustfile.write_text("print('loadkit-locustfile: ok')\nimport loadkit_nope\n")
    problem = locustfile_problem(locustfile)
    assert problem is not None and problem.startswith("ModuleNotFoundError")

"""An installed loadkit in a project that has packages of its own named `service` and `scenarios`.

The wheel is built from this checkout and installed, with its dependencies, into a fresh venv;
the project's own packages sit in its working directory and on PYTHONPATH, as a user's would.
`loadkit accept --profile ci` run from there with that venv's loadkit must pass on the bundled
service, while `import service` there still gives the project's own package: an installed
loadkit neither shadows a user's package nor is shadowed by one.

Building takes ~3 s; the dependencies are linked from this checkout's venv rather than resolved
and downloaded again (see ``venv``); the load is kept
short and bcrypt at its cheapest cost, as in test_accept_e2e, since what is tested is which code
runs, not this machine's speed.
"""

from __future__ import annotations

import email
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from junitparser import JUnitXml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = (
    "lock_audit.json",
    "smoke.json",
    "load.json",
    "gate.md",
    "junit.xml",
    "verdict.json",
    "report.html",
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def run(command: list[str], *, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run ``command``; its output comes back with the result (for assertion messages)."""
    return subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=240, check=False
    )


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without this checkout's venv or PYTHONPATH, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return {**env, **extra}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built from this checkout."""
    dist = tmp_path_factory.mktemp("dist")
    built = run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", str(dist), str(ROOT)],
        cwd=dist,
        env=clean_env(),
    )
    assert built.returncode == 0, built.stdout + built.stderr
    (path,) = dist.glob("loadkit-*.whl")
    return path


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel and exactly its run-time dependencies; its bin/ folder.

    The dependencies are those the wheel declares (``Requires-Dist``, with their extras and
    markers), and theirs, linked from this checkout's venv where they are installed already:
    a dependency the wheel forgot to declare is missing there, as it would be for a user, and
    no package index is asked (pip's resolving and downloading cost half a minute)."""
    root = tmp_path_factory.mktemp("venv")
    created = run(
        [sys.executable, "-m", "venv", "--without-pip", str(root)], cwd=root, env=clean_env()
    )
    assert created.returncode == 0, created.stdout + created.stderr
    python = root / "bin" / "python"
    site = Path(
        run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            cwd=root, env=clean_env()).stdout.strip()
    )  # fmt: skip
    for entry in sorted(_runtime_entries(wheel)):
        (site / entry.name).symlink_to(entry)
    # This venv's pip installs the wheel alone into the new one (--python: no pip there).
    installed = run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-compile",
         "--no-deps", "--no-index", str(wheel)],
        cwd=root,
        env=clean_env(),
    )  # fmt: skip
    assert installed.returncode == 0, installed.stdout + installed.stderr
    return root / "bin"


def _runtime_entries(wheel: Path) -> set[Path]:
    """The top-level files and folders of this venv's site-packages that make up the
    distributions the wheel needs at run time (its requirements without extras of its own,
    with the extras it asks of them, recursively)."""
    with zipfile.ZipFile(wheel) as archive:
        (metadata,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        declared = email.message_from_bytes(archive.read(metadata)).get_all("Requires-Dist")
    wanted: list[tuple[str, frozenset[str]]] = []
    for line in declared or ():
        requirement = Requirement(line)
        if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
            wanted.append((requirement.name, frozenset(requirement.extras)))
    seen: set[tuple[str, frozenset[str]]] = set()
    entries: set[Path] = set()
    while wanted:
        name, extras = wanted.pop()
        if (canonicalize_name(name), extras) in seen:
            continue
        seen.add((canonicalize_name(name), extras))
        dist = importlib.metadata.distribution(name)
        base = Path(str(dist.locate_file("")))
        for file in dist.files or ():
            top = file.parts[0]
            if top != ".." and not top.endswith(".pth") and top != "__pycache__":
                entries.add(base / top)
        for line in dist.requires or ():
            requirement = Requirement(line)
            marker = requirement.marker
            if marker is None or any(marker.evaluate({"extra": e}) for e in ("", *extras)):
                wanted.append((requirement.name, frozenset(requirement.extras)))
    return entries


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A user's project: the acceptance file, and packages named `service` and `scenarios`."""
    folder = tmp_path / "project"
    for name in ("service", "scenarios"):
        (folder / name).mkdir(parents=True)
        (folder / name / "__init__.py").write_text('ORIGIN = "user"\n')
    (folder / "service" / "__main__.py").write_text(
        "raise SystemExit(\"the project's own service ran, not loadkit's bundled one\")\n"
    )
    shutil.copy(ROOT / "acceptance.toml", folder / "acceptance.toml")
    return folder


def test_the_wheel_ships_service_and_scenarios_inside_loadkit_only(
    wheel: Path, venv: Path, tmp_path: Path
) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert "loadkit/_bundled/service/__main__.py" in names
    assert "loadkit/_bundled/scenarios/login.py" in names
    assert not [n for n in names if n.startswith(("service/", "scenarios/"))]
    probe = "import importlib.util as u; print(u.find_spec('service'), u.find_spec('scenarios'))"
    found = run([str(venv / "python"), "-c", probe], cwd=tmp_path, env=clean_env())
    assert found.stdout.split() == ["None", "None"], found.stdout + found.stderr
    # Only what the wheel declares is there: the development tools of this checkout are not.
    probe = "import importlib.util as u; print(u.find_spec('junitparser'), u.find_spec('mypy'))"
    found = run([str(venv / "python"), "-c", probe], cwd=tmp_path, env=clean_env())
    assert found.stdout.split() == ["None", "None"], found.stdout + found.stderr


def test_accept_passes_beside_a_users_own_service_package(venv: Path, project: Path) -> None:
    env = clean_env(PYTHONPATH=str(project))
    probe = (
        "import loadkit, service, scenarios; "
        "print(loadkit.__file__, service.ORIGIN, scenarios.ORIGIN)"
    )
    imported = run([str(venv / "python"), "-c", probe], cwd=project, env=env)
    loadkit_file, service_origin, scenarios_origin = imported.stdout.split()
    assert Path(loadkit_file).is_relative_to(venv.parent), "the installed loadkit must run"
    assert (service_origin, scenarios_origin) == ("user", "user")

    accepted = run(
        [
            str(venv / "loadkit"),
            "accept",
            "--profile",
            "ci",
            "--duration",
            "2",
            "--service-env",
            "ENGINES_BCRYPT_ROUNDS=4",
        ],
        cwd=project,
        env=env,
    )
    output = accepted.stdout + accepted.stderr
    assert accepted.returncode == 0, output
    # What a passing accept leaves (the healthy service's accept, as a user runs it): every
    # stage said, every report written, 9 JUnit cases passed, the Markdown verdict.
    assert "PASSED: 9 of 9 criteria met" in output
    for stage in ("lock audit", "bundled service", "smoke", "load", "gate"):
        assert stage in output
    (folder,) = (project / "reports").iterdir()
    assert json.loads((folder / "verdict.json").read_text())["outcome"] == "passed"
    for name in ARTIFACTS:
        assert (folder / name).is_file(), name
    assert (folder / "service" / "service.log").is_file()
    cases = [case for suite in JUnitXml.fromfile(str(folder / "junit.xml")) for case in suite]
    assert len(cases) == 9 and all(case.is_passed for case in cases)
    assert (folder / "gate.md").read_text().startswith("## Acceptance gate: ✅ PASSED")
    # The HTML report, its BokehJS inlined from the installed wheel's own dependency.
    last = accepted.stdout.rstrip().splitlines()[-1]
    assert last == f"HTML report: {(folder / 'report.html').relative_to(project)}"
    page = (folder / "report.html").read_text()
    assert '<section id="verdict" data-outcome="passed">' in page
    assert "Bokeh" in page and not re.search(r"""\s(?:src|href)=["']?(?:[a-z]+:)?//""", page)

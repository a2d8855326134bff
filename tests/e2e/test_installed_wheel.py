"""An installed loadkit in a project that has packages of its own named `service` and `scenarios`.

The wheel is built from this checkout and installed, with its dependencies, into a fresh venv;
the project's own packages sit in its working directory and on PYTHONPATH, as a user's would.
`loadkit accept --profile ci` run from there with that venv's loadkit must pass on the bundled
service, while `import service` there still gives the project's own package: an installed
loadkit neither shadows a user's package nor is shadowed by one.

The slowest test of the suite's packaging (building and installing take ~30 s); the load is kept
short and bcrypt at its cheapest cost, as in test_accept_e2e, since what is tested is which code
runs, not this machine's speed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

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
    """A fresh venv with the wheel and its dependencies installed; its bin/ folder."""
    root = tmp_path_factory.mktemp("venv")
    created = run(
        [sys.executable, "-m", "venv", "--without-pip", str(root)], cwd=root, env=clean_env()
    )
    assert created.returncode == 0, created.stdout + created.stderr
    # This venv's pip installs into the new one (--python): no pip bootstrapped there.
    python = root / "bin" / "python"
    installed = run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--no-compile",
            str(wheel),
        ],
        cwd=root,
        env=clean_env(),
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    return root / "bin"


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
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    (verdict,) = (project / "reports").glob("*/verdict.json")
    assert json.loads(verdict.read_text())["outcome"] == "passed"

"""The bundled service as a child process: what `loadkit accept` and the tests stand on."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from loadkit.exceptions import ServiceStartError
from loadkit.run import bundle
from loadkit.run.bundled_service import BundledService, free_port

REPOSITORY = Path(__file__).resolve().parents[2]


def write_users_own_service(folder: Path) -> None:
    """A user's package named ``service`` in ``folder``; running it fails loudly."""
    package = folder / "service"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text('ORIGIN = "user"\n')
    (package / "__main__.py").write_text('raise SystemExit("the user\'s own service ran")\n')


def with_pythonpath_first(folder: Path) -> str:
    """PYTHONPATH with ``folder`` ahead of what it is now."""
    inherited = os.environ.get("PYTHONPATH")
    return os.pathsep.join([str(folder), *([inherited] if inherited else [])])


def test_a_relative_workdir_serves_from_a_database_inside_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`loadkit accept` passes reports/<ts>/service, relative to where the user stands."""
    monkeypatch.chdir(tmp_path)
    with BundledService(
        workdir=Path("reports/run/service"), env={"ENGINES_BCRYPT_ROUNDS": "4"}
    ) as s:
        assert httpx.get(f"{s.url}/health").status_code == 200
        process = s.process
    assert process.returncode == 0, "SIGTERM must stop the service gracefully"
    assert (tmp_path / "reports/run/service/engines.db").exists()
    assert (tmp_path / "reports/run/service/service.log").stat().st_size > 0


def test_a_service_that_cannot_start_is_an_error_naming_its_log(tmp_path: Path) -> None:
    service = BundledService(workdir=tmp_path, env={"ENGINES_JWT_SECRET": "short"})
    with pytest.raises(ServiceStartError, match=r"service\.log"):
        service.start()
    assert service.process.returncode is not None, "the failed child must not be left running"


def test_in_a_checkout_the_bundle_is_the_repositorys_own_folders() -> None:
    assert not bundle.INSTALLED_BUNDLE_DIR.exists()
    assert bundle.bundle_dir() == REPOSITORY
    assert (bundle.bundled_scenarios_dir() / "login.py").is_file()


def test_an_installed_bundle_is_preferred_to_the_checkout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    installed = tmp_path / "loadkit" / "_bundled"
    installed.mkdir(parents=True)
    monkeypatch.setattr(bundle, "INSTALLED_BUNDLE_DIR", installed)
    assert bundle.bundle_dir() == installed
    assert bundle.bundled_scenarios_dir() == installed / "scenarios"


def test_a_users_own_service_package_does_not_replace_the_bundled_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Neither on PYTHONPATH nor in the service's working directory."""
    users = tmp_path / "project"
    write_users_own_service(users)
    monkeypatch.setenv("PYTHONPATH", with_pythonpath_first(users))
    write_users_own_service(tmp_path / "workdir")
    with BundledService(workdir=tmp_path / "workdir", env={"ENGINES_BCRYPT_ROUNDS": "4"}) as s:
        assert httpx.get(f"{s.url}/version").status_code == 200


def test_serve_runs_the_bundled_service_where_a_user_has_a_service_package(
    tmp_path: Path,
) -> None:
    write_users_own_service(tmp_path)
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": with_pythonpath_first(tmp_path),
        "ENGINES_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'engines.db'}",
    }
    command = [sys.executable, "-m", "loadkit", "serve", "--port", str(port)]
    process = subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 30
        while process.poll() is None and time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/version").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        assert process.poll() is None, process.communicate()[0].decode(errors="replace")
        assert httpx.get(f"http://127.0.0.1:{port}/version").status_code == 200
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=15)

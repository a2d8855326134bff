"""The bundled service as a child process: what `loadkit accept` and the tests stand on."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from loadkit.exceptions import ServiceStartError
from loadkit.run.bundled_service import BundledService


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

"""`loadkit accept` without a load run: options, configuration errors, an unreachable target,
report folders, and the bundled service stopped when a stage fails or Ctrl-C arrives.

The full runs (healthy service passes, faults fail) are in tests/e2e/test_accept_e2e.py.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar, NoReturn, TypedDict

import pytest
from typer.testing import CliRunner

from loadkit.cli import app
from loadkit.exceptions import TargetUnreachableError
from loadkit.measure.results import LoadResults, SmokeResults, read_results, write_results
from loadkit.run import accept as accept_module
from loadkit.run.accept import report_folder, run_acceptance
from loadkit.run.bundled_service import BundledService, free_port
from loadkit.run.load_plan import LoadPlan
from tests.loadkit.crafted import crafted_load, crafted_smoke, overloaded
from tests.loadkit.misbehaving_servers import hangs, serve

CRITERIA = """
[[criteria]]
metric = "load.p95_ms"
op = "<"
threshold = 1000

[[criteria]]
metric = "lock_audit.lock_violations"
op = "=="
threshold = 0
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """An acceptance file whose lock audit covers one small, clean source folder."""
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "app.py").write_text("def handler() -> int:\n    return 1\n")
    config = tmp_path / "acceptance.toml"
    config.write_text(
        CRITERIA
        + '\n[lock_audit]\npaths = ["src"]\n'
        + "\n[profiles.quick]\nconcurrency = 2\nduration_s = 2\n"
    )
    return config


def accept(*args: str | Path) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["accept", *map(str, args)])
    return result.exit_code, result.output


def test_report_folders_are_timestamped_and_never_reused(tmp_path: Path) -> None:
    now = datetime(2026, 11, 28, 12, 30, 5, tzinfo=UTC)
    first = report_folder(tmp_path / "reports", now=now)
    second = report_folder(tmp_path / "reports", now=now)
    assert first.name == "20261128T123005Z"
    assert second.name == "20261128T123005Z-2"
    assert first.is_dir() and second.is_dir()


def test_missing_config_is_exit_2(tmp_path: Path) -> None:
    code, output = accept("--config", tmp_path / "none.toml", "--out-dir", tmp_path)
    assert code == 2
    assert "none.toml: no such file" in output


def test_unknown_profile_is_exit_2(project: Path, tmp_path: Path) -> None:
    code, output = accept("--config", project, "--profile", "nope", "--out-dir", tmp_path / "r")
    assert code == 2
    assert "no load profile 'nope'" in output
    assert not (tmp_path / "r").exists()  # nothing started, nothing written


def test_bad_duration_and_service_env_are_exit_2(project: Path, tmp_path: Path) -> None:
    code, output = accept(
        "--config", project, "--profile", "quick", "--duration", "-1", "--out-dir", tmp_path
    )
    assert code == 2
    assert "--duration -1" in output
    code, output = accept("--config", project, "--service-env", "NO_EQUALS", "--out-dir", tmp_path)
    assert code == 2
    assert "--service-env 'NO_EQUALS' must look like KEY=VALUE" in output


def test_edge_timeout_without_loadkits_http2_edge_is_exit_2(project: Path, tmp_path: Path) -> None:
    out = tmp_path / "r"
    code, output = accept("--config", project, "--edge-timeout", "1", "--out-dir", out)
    assert (
        code == 2
        and "--edge-timeout is about the bundled service's HTTP/2 edge: add --http2" in output
    )
    code, output = accept(
        "--config", project, "--http2", "--edge-timeout", "1", "--host", "http://127.0.0.1:1",
        "--out-dir", out,
    )  # fmt: skip
    assert code == 2 and "--host is served by its own edge" in output
    assert not out.exists()  # refused before anything ran


def test_lock_audit_scope_that_does_not_exist_is_exit_2(tmp_path: Path) -> None:
    config = tmp_path / "acceptance.toml"
    config.write_text(CRITERIA + '\n[lock_audit]\npaths = ["missing"]\n')
    code, output = accept("--config", config, "--out-dir", tmp_path / "r")
    assert code == 2
    assert "missing: no such file or directory to audit" in output


def test_unreachable_host_is_exit_3_after_the_lock_audit(project: Path, tmp_path: Path) -> None:
    host = f"http://127.0.0.1:{free_port()}"
    code, output = accept(
        "--config", project, "--host", host, "--profile", "quick", "--out-dir", tmp_path / "r"
    )
    assert code == 3, output
    assert "[1/4] lock audit: 0 violation(s) in 1 files" in output
    (folder,) = (tmp_path / "r").iterdir()
    assert (folder / "lock_audit.json").is_file()
    assert not (folder / "load.json").exists()
    # What was done, plus why it stopped: smoke marked aborted, the gate's reports saying so.
    smoke = read_results(folder / "smoke.json")
    assert isinstance(smoke, SmokeResults) and smoke.aborted
    verdict = json.loads((folder / "verdict.json").read_text())
    assert verdict["outcome"] == "error"
    assert "[2/4] smoke against" in verdict["headline"] and "cannot" in verdict["headline"]


class _Recording(BundledService):
    started: ClassVar[list[BundledService]] = []

    def start(self) -> BundledService:
        _Recording.started.append(self)
        return super().start()


@pytest.fixture
def recorded_services(monkeypatch: pytest.MonkeyPatch) -> list[BundledService]:
    _Recording.started = []
    monkeypatch.setattr(accept_module, "BundledService", _Recording)
    return _Recording.started


@pytest.mark.parametrize("error", [KeyboardInterrupt(), TargetUnreachableError("gone")])
def test_the_bundled_service_is_stopped_when_a_stage_fails(
    project: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    recorded_services: list[BundledService],
    error: BaseException,
) -> None:
    def failing_smoke(*_args: object, **_kwargs: object) -> NoReturn:
        (service,) = recorded_services
        assert service.process.poll() is None  # it was running during the stage
        raise error

    monkeypatch.setattr(accept_module, "_smoke", failing_smoke)
    with pytest.raises(type(error)):
        run_acceptance(
            config_path=project,
            profile="quick",
            out_dir=tmp_path / "r",
            service_env={"ENGINES_BCRYPT_ROUNDS": "4"},
        )
    (service,) = recorded_services
    assert service.process.poll() is not None  # stopped by its handle


def test_ctrl_c_is_exit_130_and_stops_the_service(
    project: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    recorded_services: list[BundledService],
) -> None:
    def interrupted(*_args: object, **_kwargs: object) -> NoReturn:
        raise KeyboardInterrupt

    monkeypatch.setattr(accept_module, "_smoke", interrupted)
    code, output = accept(
        "--config",
        project,
        "--profile",
        "quick",
        "--service-env",
        "ENGINES_BCRYPT_ROUNDS=4",
        "--out-dir",
        tmp_path / "r",
    )
    assert code == 130, output
    assert "[2/5] bundled service: healthy at http://127.0.0.1:" in output
    (service,) = recorded_services
    assert service.process.poll() is not None
    assert service._env["ENGINES_BCRYPT_ROUNDS"] == "4"
    assert str(tmp_path / "r") in service._env["ENGINES_DATABASE_URL"]  # a fresh database


class StubbedRuns(TypedDict):
    """What the stand-ins of smoke and load return; a test may replace either."""

    smoke: SmokeResults
    load: LoadResults


@pytest.fixture
def stubbed_runs(monkeypatch: pytest.MonkeyPatch) -> StubbedRuns:
    """Smoke and load replaced by crafted results: the orchestration and gate, without traffic."""
    runs: StubbedRuns = {"smoke": crafted_smoke(), "load": crafted_load()}
    monkeypatch.setattr(accept_module, "_smoke", lambda *_a, **_k: runs["smoke"])

    def load(_plan: LoadPlan, _target: str, out: Path, **_kwargs: object) -> LoadResults:
        # run_load's contract: the results are also written to `out`.
        write_results(out, runs["load"])
        return runs["load"]

    monkeypatch.setattr(accept_module, "_load", load)
    return runs


def test_every_artifact_is_written_to_one_folder(
    project: Path, tmp_path: Path, stubbed_runs: StubbedRuns
) -> None:
    summary = tmp_path / "summary.md"
    result = CliRunner().invoke(
        app,
        [
            "accept",
            "--config",
            str(project),
            "--host",
            "http://127.0.0.1:9",
            "--profile",
            "quick",
            "--out-dir",
            str(tmp_path / "r"),
        ],
        env={"GITHUB_STEP_SUMMARY": str(summary)},
    )
    assert result.exit_code == 0, result.output
    (folder,) = (tmp_path / "r").iterdir()
    names = {p.name for p in folder.iterdir()}
    assert names == {
        "lock_audit.json",
        "smoke.json",
        "load.json",
        "gate.md",
        "junit.xml",
        "verdict.json",
        "report.html",
    }
    assert f"reports: {folder}" in result.output
    assert "PASSED: 2 of 2 criteria met" in result.output
    assert summary.read_text().startswith("## Acceptance gate: ✅ PASSED")
    # The HTML report is named on the terminal's last line and shows the gate's verdict.
    assert result.output.rstrip().splitlines()[-1] == f"HTML report: {folder / 'report.html'}"
    page = (folder / "report.html").read_text()
    assert 'data-outcome="passed"' in page
    assert 'data-criterion="load.p95_ms"' in page


def test_an_invalid_load_run_is_gated_as_invalid_with_its_reports(
    project: Path, tmp_path: Path, stubbed_runs: StubbedRuns
) -> None:
    from loadkit.measure.results import GeneratorHealth

    stubbed_runs["load"] = overloaded(
        stubbed_runs["load"], GeneratorHealth(overloaded=True, cpu_warnings=1)
    )
    code, output = accept(
        "--config",
        project,
        "--host",
        "http://127.0.0.1:9",
        "--profile",
        "quick",
        "--out-dir",
        tmp_path / "r",
    )
    assert code == 4, output
    assert "INVALID RUN" in output
    assert "generator_overloaded: a load generator process ran above 90 % CPU" in output
    (folder,) = (tmp_path / "r").iterdir()
    verdict = (folder / "verdict.json").read_text()
    assert '"outcome": "invalid"' in verdict


def test_a_gate_that_cannot_judge_still_writes_its_reports(
    project: Path, tmp_path: Path, stubbed_runs: StubbedRuns
) -> None:
    from junitparser import Error, JUnitXml

    from loadkit.measure.results import LatencySummary

    # A run with no latency figure: the gate refuses (exit 2), and says so in every report.
    stubbed_runs["load"] = stubbed_runs["load"].model_copy(
        update={"latency_ms": LatencySummary(count=0)}
    )
    code, output = accept(
        "--config",
        project,
        "--host",
        "http://127.0.0.1:9",
        "--profile",
        "quick",
        "--out-dir",
        tmp_path / "r",
    )
    assert code == 2, output
    assert "no measurement of load.p95_ms" in output
    (folder,) = (tmp_path / "r").iterdir()
    verdict = json.loads((folder / "verdict.json").read_text())
    assert verdict["outcome"] == "error"
    assert "no measurement of load.p95_ms" in verdict["headline"]
    assert "ERROR" in (folder / "gate.md").read_text()
    (case,) = list(next(iter(JUnitXml.fromfile(str(folder / "junit.xml")))))
    assert isinstance(case.result[0], Error)


# --- a failed acceptance leaves what was done and why, never an empty folder ----------------------


def test_a_failed_first_stage_leaves_the_reason_in_the_folder(tmp_path: Path) -> None:
    sources = tmp_path / "src"
    sources.mkdir()
    (sources / "broken.py").write_text("def f(:\n")
    config = tmp_path / "acceptance.toml"
    config.write_text(
        '[lock_audit]\npaths = ["src"]\n\n'
        '[[criteria]]\nmetric = "lock_audit.lock_violations"\nop = "=="\nthreshold = 0\n'
    )
    code, output = accept(
        "--config", config, "--host", "http://127.0.0.1:9", "--out-dir", tmp_path / "r"
    )
    assert code == 2, output
    (folder,) = (tmp_path / "r").iterdir()
    assert {p.name for p in folder.iterdir()} == {"gate.md", "junit.xml", "verdict.json"}
    verdict = json.loads((folder / "verdict.json").read_text())
    assert verdict["outcome"] == "error"
    assert "acceptance stopped at [1/4] lock audit" in verdict["headline"]
    assert "broken.py" in verdict["headline"]


def test_a_folder_nothing_could_be_written_to_is_removed(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing_audit(*_args: object) -> NoReturn:
        raise TargetUnreachableError("stand-in for a stage that fails first")

    def no_room(*_args: object) -> NoReturn:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(accept_module, "_lock_audit", failing_audit)
    monkeypatch.setattr(accept_module, "_write_gate_error_reports", no_room)
    with pytest.raises(TargetUnreachableError):
        run_acceptance(config_path=project, profile="quick", host="http://127.0.0.1:9",
                       out_dir=tmp_path / "r")  # fmt: skip
    assert list((tmp_path / "r").iterdir()) == []


@pytest.mark.slow
def test_sigterm_during_smoke_leaves_an_aborted_smoke_file_and_the_reason(
    project: Path, tmp_path: Path
) -> None:
    with serve(hangs) as url:
        process = subprocess.Popen(
            [sys.executable, "-m", "loadkit", "accept", "--config", str(project), "--host", url,
             "--profile", "quick", "--out-dir", str(tmp_path / "r")],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            assert process.stdout is not None
            for line in process.stdout:
                if "smoke against" in line:
                    break
            time.sleep(0.5)  # smoke waits on a server that never answers
            process.send_signal(signal.SIGTERM)
            _out, stderr = process.communicate(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert process.returncode == 130, stderr
    (folder,) = (tmp_path / "r").iterdir()
    smoke = read_results(folder / "smoke.json")
    assert isinstance(smoke, SmokeResults) and smoke.aborted and not smoke.valid
    verdict = json.loads((folder / "verdict.json").read_text())
    assert verdict["outcome"] == "error"
    assert "[2/4] smoke against" in verdict["headline"] and "interrupted" in verdict["headline"]
    assert not (folder / "load.json").exists()

"""``loadkit audit-locks`` end to end through typer's CliRunner: exit codes, formats, --out."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from loadkit.cli import app
from loadkit.measure.results import LockAuditResults, read_results

FIXTURES = Path(__file__).parent / "fixtures" / "lockaudit"
REPO = Path(__file__).resolve().parents[2]

runner = CliRunner()


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory with a clean ``service/`` package and the original bug in ``bad/``."""
    (tmp_path / "service").mkdir()
    shutil.copy(FIXTURES / "reacquire.py", tmp_path / "service" / "storage.py")
    (tmp_path / "bad").mkdir()
    shutil.copy(FIXTURES / "original_bug.py", tmp_path / "bad" / "login.py")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def audit(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["audit-locks", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output


def test_clean_code_exits_0_with_a_summary(project: Path) -> None:
    code, output = audit("service")
    assert code == 0, output
    assert output.strip() == "No lock-safety violations (1 file checked)."


def test_findings_exit_1_one_line_each_like_ruff(project: Path) -> None:
    code, output = audit("bad")
    assert code == 1, output
    lines = output.strip().splitlines()
    assert lines[-1] == "Found 3 lock-safety violations in 1 file (1 file checked)."
    assert lines[0].startswith("bad/login.py:14:5: LK003 `async with storage_lock`")
    assert (
        "bad/login.py:21:16: LK001 bcrypt.checkpw() called while holding lock `storage_lock` "
        "(acquired at line 14)"
    ) in lines


def test_paths_default_to_the_configured_ones_and_no_config_means_defaults(project: Path) -> None:
    # No acceptance.toml here: the built-in default paths ("service") apply.
    code, output = audit()
    assert code == 0, output
    (project / "acceptance.toml").write_text('[lock_audit]\npaths = ["service", "bad"]\n')
    code, output = audit()
    assert code == 1, output
    assert "(2 files checked)" in output


def test_configured_paths_are_relative_to_the_config_file(project: Path) -> None:
    (project / "ci").mkdir()
    (project / "ci" / "acceptance.toml").write_text('[lock_audit]\npaths = ["../bad"]\n')
    code, output = audit("--config", "ci/acceptance.toml")
    assert code == 1, output
    assert "ci/../bad/login.py:21:16: LK001" in output


def test_an_explicit_config_that_is_missing_exits_2(project: Path) -> None:
    code, output = audit("--config", "missing.toml")
    assert code == 2
    assert "missing.toml: no such file" in output


@pytest.mark.parametrize(
    ("section", "key"),
    [
        ("lock_patternz = ['*lock*']", "lock_audit.lock_patternz: unknown key"),
        ("paths = []", "lock_audit.paths"),
        ("slow_call_patterns = ['']", "lock_audit.slow_call_patterns: entry [0] is empty"),
        ("await_allow = 'asyncio.sleep'", "lock_audit.await_allow"),
    ],
)
def test_a_bad_config_exits_2_naming_the_key(project: Path, section: str, key: str) -> None:
    (project / "acceptance.toml").write_text(f"[lock_audit]\n{section}\n")
    code, output = audit("service")
    assert code == 2, output
    assert key in output


def test_a_file_that_does_not_parse_exits_2_naming_it(project: Path) -> None:
    (project / "service" / "broken.py").write_text("def broken(:\n    pass\n")
    code, output = audit("service")
    assert code == 2, output
    assert "service/broken.py:1:" in output
    assert "cannot parse" in output


def test_a_missing_path_exits_2(project: Path) -> None:
    code, output = audit("nowhere")
    assert code == 2
    assert "nowhere: no such file or directory" in output


def test_an_unknown_format_exits_2(project: Path) -> None:
    code, output = audit("service", "--format", "xml")
    assert code == 2
    assert "text, json, github" in output


def test_directories_are_walked_for_python_files_skipping_venv_and_caches(project: Path) -> None:
    for skipped in (".venv/lib", "service/__pycache__"):
        (project / skipped).mkdir(parents=True)
        shutil.copy(FIXTURES / "original_bug.py", project / skipped / "bad.py")
    (project / "service" / "notes.txt").write_text("async with storage_lock: pass\n")
    code, output = audit(".", "--format", "json")
    assert code == 1, output
    document = json.loads(output)
    assert document["files_checked"] == 2
    assert {f["path"] for f in document["findings"]} == {"bad/login.py"}


def test_json_format(project: Path) -> None:
    code, output = audit("bad", "service", "--format", "json")
    assert code == 1
    document = json.loads(output)
    assert document["violations"] == 3
    assert document["files_checked"] == 2
    assert document["suppressed"] == 0
    first = document["findings"][0]
    assert first == {
        "path": "bad/login.py",
        "line": 14,
        "col": 5,
        "code": "LK003",
        "message": first["message"],
        "lock_line": None,
    }
    assert [f["lock_line"] for f in document["findings"][1:]] == [14, 14]


def test_github_format_writes_workflow_annotations(project: Path) -> None:
    code, output = audit("bad", "--format", "github")
    assert code == 1
    annotations = [line for line in output.splitlines() if line.startswith("::error ")]
    assert len(annotations) == 3
    assert annotations[2].startswith(
        "::error file=bad/login.py,line=21,col=16,title=lockaudit LK001::LK001 bcrypt.checkpw()"
    )


def test_out_writes_a_results_file_the_gate_reads(project: Path) -> None:
    code, output = audit("bad", "service", "--out", "reports/locks.json")
    assert code == 1, output
    results = read_results(project / "reports" / "locks.json")
    assert isinstance(results, LockAuditResults)
    assert results.kind == "lock_audit"
    assert results.violations == 3
    assert results.files_checked == 2
    assert results.target == "bad service"
    assert [(f.path, f.line, f.code) for f in results.findings] == [
        ("bad/login.py", 14, "LK003"),
        ("bad/login.py", 18, "LK001"),
        ("bad/login.py", 21, "LK001"),
    ]
    assert results.findings[2].lock_line == 14


def test_out_is_written_for_a_clean_run_too(project: Path) -> None:
    code, _ = audit("service", "--out", "locks.json")
    assert code == 0
    results = read_results(project / "locks.json")
    assert isinstance(results, LockAuditResults)
    assert results.violations == 0


def test_out_to_an_unwritable_place_exits_2(project: Path) -> None:
    (project / "taken").write_text("a file, not a folder")
    code, output = audit("service", "--out", "taken/locks.json")
    assert code == 2, output
    assert "--out taken/locks.json: cannot write" in output


@pytest.mark.skipif(not (REPO / "service" / "storage.py").exists(), reason="no bundled service")
def test_the_bundled_service_is_clean(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    code, output = audit("service")
    assert code == 0, output


def test_a_scope_without_python_files_is_exit_2_not_clean(tmp_path: Path) -> None:
    # 0 violations in 0 files would pass lock_audit.lock_violations == 0 for a mistyped scope.
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no code here")
    result = CliRunner().invoke(app, ["audit-locks", str(empty)])
    assert result.exit_code == 2, result.output
    assert "no Python file to audit" in result.output


def test_a_file_that_does_not_parse_leaves_an_aborted_results_file(tmp_path: Path) -> None:
    # A clean locks.json of an earlier run must not stay behind for the gate to pass.
    source = tmp_path / "app.py"
    source.write_text("def handler() -> int:\n    return 1\n")
    out = tmp_path / "locks.json"
    assert CliRunner().invoke(app, ["audit-locks", str(source), "--out", str(out)]).exit_code == 0
    source.write_text("def handler(:\n")
    result = CliRunner().invoke(app, ["audit-locks", str(source), "--out", str(out)])
    assert result.exit_code == 2, result.output
    results = read_results(out)
    assert isinstance(results, LockAuditResults)
    assert results.aborted and not results.valid
    (reason,) = results.invalid_reasons
    assert reason.code == "aborted" and "cannot parse" in reason.detail

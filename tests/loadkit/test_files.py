"""Every file loadkit writes: atomic, never through a symlink at the path, mode 0666 & ~umask.

Each writer a user can point somewhere (``--out``, ``--markdown``, ``--junit``, ``--json``,
``$GITHUB_STEP_SUMMARY``...) is tried with a symlink planted at its path: the file the link
points to must stay as it was and the link must be replaced by the output. The source is
scanned too: nothing in ``loadkit/`` but ``loadkit/files.py`` opens a file for writing.
"""

from __future__ import annotations

import ast
import os
import re
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

import loadkit
from loadkit.cli import app
from loadkit.files import append_file, open_for_append, write_file
from loadkit.measure.live_status import LiveStatus, read_status, write_status
from loadkit.measure.results import LoadResults, SmokeResults, read_results, write_results
from loadkit.run.bundled_service import BundledService
from tests.loadkit.crafted import crafted_load
from tests.loadkit.crafted_errors import request
from tests.loadkit.misbehaving_servers import answers, closed_port, serve

PACKAGE = Path(loadkit.__file__).parent
THE_WRITER = PACKAGE / "files.py"
PRECIOUS = b"a file the link points to; loadkit must never write here\n"


@pytest.fixture
def planted(tmp_path: Path) -> Callable[[Path], Path]:
    """Plant a symlink at an output path, pointing to a precious file; returns the precious file."""

    def plant(output: Path) -> Path:
        precious = tmp_path / "precious" / f"{output.name}.target"
        precious.parent.mkdir(exist_ok=True)
        precious.write_bytes(PRECIOUS)
        output.parent.mkdir(parents=True, exist_ok=True)
        output.symlink_to(precious)
        return precious

    return plant


def assert_replaced(output: Path, precious: Path) -> None:
    assert precious.read_bytes() == PRECIOUS, f"{precious} was written through the link"
    assert not output.is_symlink(), f"the link at {output} is still there"
    assert output.is_file() and output.stat().st_size > 0


@pytest.fixture
def umask() -> Iterator[Callable[[int], int]]:
    """``os.umask`` for the test: the umask it had comes back after it."""
    old = os.umask(0o022)
    yield os.umask
    os.umask(old)


# --- the one writer -----------------------------------------------------------------------------


def test_write_file_replaces_a_symlink_and_leaves_its_target(
    tmp_path: Path, planted: Callable[[Path], Path]
) -> None:
    out = tmp_path / "out.json"
    precious = planted(out)
    write_file(out, b"new\n")
    assert_replaced(out, precious)
    assert out.read_bytes() == b"new\n"
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_a_dangling_symlink_is_replaced_too(tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    out.symlink_to(tmp_path / "nowhere" / "target.json")
    write_file(out, b"new\n")
    assert not out.is_symlink() and out.read_bytes() == b"new\n"
    assert not (tmp_path / "nowhere").exists()


def test_append_replaces_a_symlink_then_appends(
    tmp_path: Path, planted: Callable[[Path], Path]
) -> None:
    out = tmp_path / "summary.md"
    precious = planted(out)
    append_file(out, b"one\n")
    append_file(out, b"two\n")
    assert_replaced(out, precious)
    assert out.read_bytes() == b"one\ntwo\n"


def test_a_failed_write_leaves_the_old_file_and_no_temp_file(tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    out.write_bytes(b"old\n")

    with pytest.raises(TypeError):
        write_file(out, "not bytes")  # type: ignore[arg-type]
    assert out.read_bytes() == b"old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


@pytest.mark.parametrize("mask", [0o022, 0o007])
def test_new_files_honour_the_umask(tmp_path: Path, umask: Callable[[int], int], mask: int) -> None:
    umask(mask)
    written = write_file(tmp_path / "results.json", b"{}\n")
    appended = append_file(tmp_path / "service.log", b"line\n")
    with open_for_append(tmp_path / "locust.log") as handle:
        handle.write(b"line\n")
    expected = 0o666 & ~mask
    for path in (written, appended, tmp_path / "locust.log"):
        assert stat.S_IMODE(path.stat().st_mode) == expected, path


@pytest.mark.parametrize("mask", [0o022, 0o002])
def test_a_cli_output_file_honours_the_umask(
    tmp_path: Path, umask: Callable[[int], int], mask: int
) -> None:
    # Through a command, as a user gets it: 0644 with umask 022, 0664 with 002 (never 0600).
    umask(mask)
    before, after = tmp_path / "before.json", tmp_path / "after.json"
    write_results(before, crafted_load())
    write_results(after, crafted_load())
    markdown = tmp_path / "compare.md"
    result = CliRunner().invoke(
        app, ["compare", str(before), str(after), "--markdown", str(markdown)]
    )
    assert result.exit_code == 0, result.output
    for path in (before, markdown):
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask, path


# --- every writer, with a link planted at its path ---------------------------------------------


def test_gate_reports_and_the_step_summary_replace_links(
    tmp_path: Path, planted: Callable[[Path], Path]
) -> None:
    load = write_results(tmp_path / "load.json", crafted_load())
    config = tmp_path / "acceptance.toml"
    config.write_text('[[criteria]]\nmetric = "load.p95_ms"\nop = "<"\nthreshold = 1000\n')
    outputs = {
        "--markdown": tmp_path / "out" / "gate.md",
        "--junit": tmp_path / "out" / "junit.xml",
        "--json": tmp_path / "out" / "verdict.json",
    }
    summary = tmp_path / "ci" / "step_summary.md"
    targets = {path: planted(path) for path in [*outputs.values(), summary]}
    args = ["gate", str(load), "--config", str(config)]
    for option, path in outputs.items():
        args += [option, str(path)]
    result = CliRunner().invoke(app, args, env={"GITHUB_STEP_SUMMARY": str(summary)})
    assert result.exit_code == 0, result.output
    for path, precious in targets.items():
        assert_replaced(path, precious)
    assert summary.read_text().startswith("## Acceptance gate")


def test_compare_markdown_replaces_a_link(tmp_path: Path, planted: Callable[[Path], Path]) -> None:
    before = write_results(tmp_path / "before.json", crafted_load())
    markdown = tmp_path / "compare.md"
    precious = planted(markdown)
    result = CliRunner().invoke(
        app, ["compare", str(before), str(before), "--markdown", str(markdown)]
    )
    assert result.exit_code == 0, result.output
    assert_replaced(markdown, precious)


def test_errors_out_replaces_a_link(tmp_path: Path, planted: Callable[[Path], Path]) -> None:
    log = tmp_path / "service.log"
    log.write_bytes(orjson.dumps(request("/api/items", status=503, kind="overloaded")) + b"\n")
    out = tmp_path / "errors.md"
    precious = planted(out)
    result = CliRunner().invoke(
        app, ["errors", str(log), "--format", "markdown", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert_replaced(out, precious)


def test_audit_locks_out_replaces_a_link(tmp_path: Path, planted: Callable[[Path], Path]) -> None:
    source = tmp_path / "src" / "clean.py"
    source.parent.mkdir()
    source.write_text("x = 1\n")
    out = tmp_path / "locks.json"
    precious = planted(out)
    result = CliRunner().invoke(app, ["audit-locks", str(source), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert_replaced(out, precious)


def test_smoke_out_replaces_a_link(tmp_path: Path, planted: Callable[[Path], Path]) -> None:
    out = tmp_path / "smoke.json"
    precious = planted(out)
    result = CliRunner().invoke(app, ["smoke", "--host", closed_port(), "--out", str(out)])
    assert result.exit_code == 3, (
        result.output
    )  # unreachable: an aborted file, still not via the link
    assert_replaced(out, precious)
    assert isinstance(read_results(out), SmokeResults)


def test_the_plugins_status_file_replaces_a_link(
    tmp_path: Path, planted: Callable[[Path], Path]
) -> None:
    path = tmp_path / "status.json"
    precious = planted(path)
    status = LiveStatus("running", 1.0, 2, 3, 4.0, 0.0, None)
    write_status(path, status)
    assert_replaced(path, precious)
    assert read_status(path) == status


def test_the_bundled_services_log_replaces_a_link(
    tmp_path: Path, planted: Callable[[Path], Path]
) -> None:
    service = BundledService(workdir=tmp_path / "service")
    precious = planted(service.log_path)
    with service:
        pass
    assert_replaced(service.log_path, precious)


@pytest.mark.slow
def test_load_out_replaces_a_link_instead_of_writing_through_it(
    tmp_path: Path, planted: Callable[[Path], Path]
) -> None:
    # The defect of issue 13: the path was resolved first, so Locust's plugin wrote the results
    # into the file the link pointed to.
    out = tmp_path / "load.json"
    precious = planted(out)
    with serve(answers(200, b"{}")) as url:
        command = [
            sys.executable, "-m", "loadkit", "load", f"{url}/", "--engine", "locust",
            "--concurrency", "1",
            "--duration", "1", "--out", str(out), "--quiet",
        ]  # fmt: skip
        completed = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert completed.returncode == 0, completed.stderr
    assert_replaced(out, precious)
    assert isinstance(read_results(out), LoadResults)


# --- the source: one writer ---------------------------------------------------------------------

WRITING_CALLS = {
    "write_text", "write_bytes", "mkstemp", "NamedTemporaryFile", "TemporaryFile",
    "SpooledTemporaryFile", "fdopen", "rename", "symlink_to", "hardlink_to", "touch",
    "copy", "copy2", "copyfile", "copyfileobj", "copytree", "move",
}  # fmt: skip
OS_WRITES = {"open", "replace", "rename", "link", "symlink", "truncate", "ftruncate"}
MODE = re.compile(r"^[rwxabt+]+$")


def writes_outside_the_writer(path: Path) -> list[str]:
    """The calls in a module that write a file by any means but ``loadkit.files``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        owner = func.value.id if isinstance(func, ast.Attribute) and isinstance(
            func.value, ast.Name
        ) else None  # fmt: skip
        where = f"{_shown(path)}:{node.lineno} {ast.unparse(func)}"
        if (owner == "os" and name in OS_WRITES) or name in WRITING_CALLS:
            found.append(where)
        elif name == "replace" and isinstance(func, ast.Attribute) and len(node.args) == 1:
            found.append(where)  # Path.replace(target); str.replace takes two arguments
        elif name == "open" and _opens_for_writing(node):
            found.append(where)
    return found


def _shown(path: Path) -> str:
    return str(path.relative_to(PACKAGE.parent)) if path.is_relative_to(PACKAGE) else path.name


def _opens_for_writing(call: ast.Call) -> bool:
    """Whether an ``open(...)``/``path.open(...)``/``gzip.open(...)`` call may write: a mode with
    w, a, x or +, or a mode that is not a literal (which cannot be checked here)."""
    modes = [kw.value for kw in call.keywords if kw.arg == "mode"]
    modes += [arg for arg in call.args[:2] if _looks_like_mode(arg)]
    for mode in modes:
        if not (isinstance(mode, ast.Constant) and isinstance(mode.value, str)):
            return True
        if set(mode.value) & set("wax+"):
            return True
    return False


def _looks_like_mode(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, str) and bool(
        MODE.match(node.value)
    )  # fmt: skip


def test_nothing_in_loadkit_writes_a_file_but_the_one_writer() -> None:
    found = [
        call
        for path in sorted(PACKAGE.rglob("*.py"))
        if path != THE_WRITER
        for call in writes_outside_the_writer(path)
    ]
    assert not found, "write through loadkit.files instead:\n" + "\n".join(found)


def test_the_scan_sees_every_way_of_writing(tmp_path: Path) -> None:
    module = tmp_path / "probe.py"
    source = (
        "import os, shutil, tempfile\n"
        "p.write_text('x')\nopen(p, 'w')\np.open('ab')\nopen(p, mode=m)\nos.replace(a, b)\n"
        "tempfile.mkstemp()\nshutil.copyfile(a, b)\np.replace(q)\nos.open(p, flags)\n"
        # reads and string replaces are fine
        "open(p)\np.open('rb')\ns.replace('a', 'b')\np.read_text()\n"
    )
    module.write_text(source)
    found = writes_outside_the_writer(module)
    assert [line.split(":")[1].split()[0] for line in found] == [str(n) for n in range(2, 11)], (
        found
    )

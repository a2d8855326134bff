"""The package's import direction (docs/architecture.md), checked on the source itself.

A part may import only the parts below it; a cycle or an upward import is a design bug, and it
fails here before it grows. Imports inside functions count too: a lazy import is still a
dependency.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

import loadkit

PACKAGE = Path(loadkit.__file__).parent

# The leaves every part above ``config`` may import.
BASE = {"exceptions", "defaults", "stages", "windows", "url_credentials", "files", "config"}
# part -> the parts it may import (besides itself). Top-level modules are parts of their own.
ALLOWED: dict[str, set[str]] = {
    "exceptions": set(),
    "defaults": set(),
    "stages": set(),
    "windows": set(),
    "url_credentials": set(),
    "files": {"exceptions"},
    "config": {"exceptions", "defaults", "stages", "windows"},
    "measure": BASE,
    "lockaudit": BASE | {"measure"},
    "logs": BASE | {"measure"},
    "traces": {"exceptions"},
    # traces: a latency criterion's evidence can be where the time went (gate.trace_evidence).
    "gate": BASE | {"measure", "traces"},
    "report": BASE | {"measure", "gate", "logs", "lockaudit", "traces"},
    # gate: the Locust plugin judges abort-on-fail criteria as the gate reads them (gate.abort).
    "engines": BASE | {"measure", "gate", "report", "traces"},
    "run": BASE | {"measure", "gate", "logs", "lockaudit", "report", "engines", "traces"},
    # cli_options: the commands' option declarations (typer aliases), under cli alone.
    "cli_options": {"defaults"},
    # cli_load_plan: `loadkit load`'s options bundled, checked and resolved into its run.
    "cli_load_plan": BASE | {"gate", "engines", "run"},
    "cli": BASE
    | {"measure", "gate", "logs", "lockaudit", "report", "engines", "run", "traces"}
    | {"cli_options", "cli_load_plan"},
    "__main__": {"cli"},
    "__init__": set(),
}

# part -> the parts it may name under ``if TYPE_CHECKING:`` only (never imported at run time).
TYPE_ONLY: dict[str, set[str]] = {
    # A run's errors carry the results they stopped with (as httpx's errors carry the Request).
    "exceptions": {"measure"},
}
TYPE_CHECKING_TESTS = {"TYPE_CHECKING", "typing.TYPE_CHECKING"}


def part_of(path: Path) -> str:
    """The part a module belongs to: its first folder under loadkit/, or its own name."""
    relative = path.relative_to(PACKAGE)
    return relative.parts[0] if len(relative.parts) > 1 else relative.stem


def loadkit_imports(path: Path, *, type_only: bool = False) -> set[str]:
    """The loadkit parts a module imports, anywhere in it; with ``type_only``, only the parts it
    names under ``if TYPE_CHECKING:`` and nowhere else."""
    tree = ast.parse(path.read_text(), filename=str(path))
    checking = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and ast.unparse(node.test) in TYPE_CHECKING_TESTS
        for statement in node.body
        for inner in ast.walk(statement)
    }
    runtime = _parts(node for node in ast.walk(tree) if id(node) not in checking)
    typed = _parts(node for node in ast.walk(tree) if id(node) in checking)
    return typed - runtime if type_only else runtime | typed


def _parts(nodes: Iterable[ast.AST]) -> set[str]:
    parts: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
            if node.module == "loadkit":
                names = [f"loadkit.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            pieces = name.split(".")
            if pieces[0] == "loadkit" and len(pieces) > 1:
                parts.add(pieces[1])
    return parts


def test_every_part_of_the_package_is_placed_in_the_layering() -> None:
    parts = {part_of(path) for path in PACKAGE.rglob("*.py")}
    assert parts <= set(ALLOWED), f"add {sorted(parts - set(ALLOWED))} to ALLOWED and the docs"


def test_parts_import_only_the_parts_below_them() -> None:
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        part = part_of(path)
        allowed = ALLOWED[part] | (
            TYPE_ONLY.get(part, set()) & loadkit_imports(path, type_only=True)
        )
        for imported in loadkit_imports(path) - {part}:
            if imported not in allowed:
                upward.append(f"{path.relative_to(PACKAGE.parent)} ({part}) imports {imported}")
    assert not upward, "imports against the layering:\n" + "\n".join(upward)


def test_the_checker_sees_lazy_and_from_package_imports(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text(
        "def f():\n    from loadkit.run.load import run_load\n"
        "from loadkit import cli\nimport loadkit.gate.evaluate\n"
    )
    assert loadkit_imports(module) == {"run", "cli", "gate"}


def test_renderers_are_named_for_their_thing_and_format() -> None:
    # One convention across report/: render_<thing> (given a format) or render_<thing>_<format>,
    # the thing being the module's name, so a renderer is found by its name alone.
    misnamed = []
    for path in sorted((PACKAGE / "report").glob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        renderers = [
            node.name
            for node in tree.body
            if isinstance(node, ast.FunctionDef) and node.name.startswith("render")
        ]
        misnamed += [
            f"{path.name}: {name}"
            for name in renderers
            if not (name + "_").startswith(f"render_{path.stem}_")
        ]
    assert not misnamed, "renderers not named render_<module>[_<format>]: " + ", ".join(misnamed)


def test_the_checker_tells_type_only_imports_from_runtime_ones(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text(
        "from typing import TYPE_CHECKING\nimport loadkit.config\n"
        "if TYPE_CHECKING:\n    from loadkit.measure.results import LoadResults\n"
        "    import loadkit.config\n"
    )
    assert loadkit_imports(module) == {"config", "measure"}
    assert loadkit_imports(module, type_only=True) == {"measure"}  # config is a runtime import

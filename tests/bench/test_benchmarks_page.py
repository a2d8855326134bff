"""bench/benchmarks_page.py: each benchmark rewrites its own section of docs/benchmarks.md only."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

MODULE = Path(__file__).resolve().parents[2] / "bench" / "benchmarks_page.py"

PAGE = """# Benchmarks

Intro.

## First (bench/a.py)

old a

## Second (bench/b.py)

old b
| table | row |

## Third (bench/c.py)

c
"""


def benchmarks_page() -> ModuleType:
    """The module as the bench scripts import it (bench/ is no package: load it by path)."""
    spec = importlib.util.spec_from_file_location("benchmarks_page", MODULE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_section_is_replaced_and_the_others_are_kept(tmp_path: Path) -> None:
    page = tmp_path / "benchmarks.md"
    page.write_text(PAGE)
    benchmarks_page().write_section("## Second (bench/b.py)\n\nnew b\n", page=page)
    expected = PAGE.replace("old b\n| table | row |\n", "new b\n")
    assert page.read_text() == expected


def test_the_last_section_is_replaced_and_a_new_one_appended(tmp_path: Path) -> None:
    page = tmp_path / "benchmarks.md"
    page.write_text(PAGE)
    write_section = benchmarks_page().write_section
    write_section("## Third (bench/c.py)\n\nnew c", page=page)
    write_section("## Fourth (bench/d.py)\n\nd\n", page=page)
    expected = PAGE.replace("\nc\n", "\nnew c\n") + "\n## Fourth (bench/d.py)\n\nd\n"
    assert page.read_text() == expected


def test_a_missing_page_is_created(tmp_path: Path) -> None:
    page = tmp_path / "docs" / "benchmarks.md"
    benchmarks_page().write_section("## First (bench/a.py)\n\na\n", page=page)
    assert page.read_text() == "# Benchmarks\n\n## First (bench/a.py)\n\na\n"


def test_a_text_without_its_heading_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="heading"):
        benchmarks_page().write_section("no heading\n", page=tmp_path / "benchmarks.md")

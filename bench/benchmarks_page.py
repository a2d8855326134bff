"""docs/benchmarks.md: each benchmark script owns one ``## `` section of it and rewrites only that.

The scripts run as ``python bench/<name>.py``, which puts this folder first on ``sys.path``; they
import this module by its bare name.
"""

from __future__ import annotations

import re
from pathlib import Path

PAGE = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def write_section(text: str, *, page: Path = PAGE) -> None:
    """Replace the section of ``page`` headed by ``text``'s first line with ``text``.

    Other sections are kept as they are; a section not yet on the page is appended to it.
    """
    heading = text.split("\n", 1)[0]
    if not heading.startswith("## "):
        raise ValueError(f"a benchmark section starts with its '## ' heading, not {heading!r}")
    current = page.read_text() if page.exists() else "# Benchmarks\n"
    # A blank line between this section and whatever section follows it.
    section = text.rstrip() + "\n\n"
    pattern = re.compile(rf"^{re.escape(heading)}\n.*?(?=^## |\Z)", re.M | re.S)
    if pattern.search(current):
        updated = pattern.sub(lambda _: section, current)
    else:
        updated = current.rstrip() + "\n\n" + section
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(updated.rstrip() + "\n")

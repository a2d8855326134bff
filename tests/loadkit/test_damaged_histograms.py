"""A results file with one damaged histogram: ``gate``, ``compare`` and ``errors`` refuse it as
``report`` does (exit 2), naming the file, the histogram's key and the endpoint or the second
it measures, and what to do; never a pass, nor a bare "cannot be decoded" from deep inside."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from loadkit.cli import app
from loadkit.measure.results import write_results
from tests.loadkit.crafted import ITEMS, crafted_load

GARBAGE = "SElTVEZBQUFBR2FyYmFnZQ=="
"""Base64 of bytes that are no HdrHistogram encoding."""
CRITERIA = """
[[criteria]]
metric = "load.p95_ms"
op = "<"
threshold = 1000
"""


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A sound results file, the same with one endpoint's and one second's histogram damaged,
    and criteria that a sound file passes without decoding a histogram."""
    folder = tmp_path_factory.mktemp("damaged")
    sound = write_results(folder / "sound.json", crafted_load())
    made = {"sound": sound}
    for key in ("endpoints", "timeline"):
        data = orjson.loads(sound.read_bytes())
        data[key][1]["histogram"]["data"] = GARBAGE
        made[key] = folder / f"bad_{key}.json"
        made[key].write_bytes(orjson.dumps(data))
    made["config"] = folder / "acceptance.toml"
    made["config"].write_text(CRITERIA, encoding="utf-8")
    return made


def _refused(args: list[str], damaged: Path, key: str, what: str) -> None:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert f"{damaged}: {key} ({what}): histogram data cannot be decoded" in result.output
    assert "the file is damaged: run again" in result.output


def test_gate_names_the_damaged_second(files: dict[str, Path]) -> None:
    sound = CliRunner().invoke(app, ["gate", str(files["sound"]), "--config", str(files["config"])])
    assert sound.exit_code == 0, sound.output
    _refused(
        ["gate", str(files["timeline"]), "--config", str(files["config"])],
        files["timeline"],
        "timeline[1].histogram",
        "second 1 of the timeline",
    )


def test_gate_names_a_damaged_baseline(files: dict[str, Path]) -> None:
    args = ["gate", str(files["sound"]), "--config", str(files["config"])]
    _refused(
        [*args, "--baseline", str(files["endpoints"])],
        files["endpoints"],
        "endpoints[1].histogram",
        f"endpoint {ITEMS!r}",
    )


def test_compare_names_the_damaged_endpoint(files: dict[str, Path]) -> None:
    _refused(
        ["compare", str(files["sound"]), str(files["endpoints"])],
        files["endpoints"],
        "endpoints[1].histogram",
        f"endpoint {ITEMS!r}",
    )


def test_errors_names_the_damaged_second(files: dict[str, Path]) -> None:
    _refused(
        ["errors", "--results", str(files["timeline"])],
        files["timeline"],
        "timeline[1].histogram",
        "second 1 of the timeline",
    )

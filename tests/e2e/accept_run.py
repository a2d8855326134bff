"""`loadkit accept` run as a user runs it: the real CLI in a process of its own, in a fresh
folder, on the repository's acceptance.toml, with the bundled service at its cheapest bcrypt
cost. Shared by the end-to-end tests of accept."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "acceptance.toml"
FAST_HASHING = "ENGINES_BCRYPT_ROUNDS=4"


@dataclass
class Accepted:
    """One `loadkit accept` run: exit code, output, and the verdict it wrote."""

    code: int
    output: str
    folder: Path
    verdict: dict[str, Any]

    def status(self, metric: str) -> str:
        (criterion,) = [c for c in self.verdict["criteria"] if c["metric"] == metric]
        return str(criterion["status"])

    def failed(self) -> set[str]:
        return {c["metric"] for c in self.verdict["criteria"] if c["status"] == "failed"}


def run_accept(
    tmp_path: Path,
    *,
    duration_s: float,
    env: tuple[str, ...] = (),
    host: str | None = None,
    config: Path = CONFIG,
) -> Accepted:
    """``loadkit accept --profile default`` in ``tmp_path``, ``duration_s`` of load, extra service
    settings ``env`` (``NAME=value``), against ``host`` or the bundled service, with ``config``
    (the repository's acceptance.toml by default); its one report folder must hold a verdict."""
    out_dir = tmp_path / "reports"
    args = [
        sys.executable,
        "-m",
        "loadkit",
        "accept",
        "--config",
        str(config),
        "--profile",
        "default",
        "--duration",
        f"{duration_s:g}",
        # Relative, as a user's default `reports/` is: the service's database lives under it.
        "--out-dir",
        "reports",
        "--service-env",
        FAST_HASHING,
    ]
    for setting in env:
        args += ["--service-env", setting]
    if host is not None:
        args += ["--host", host]
    environ = {k: v for k, v in os.environ.items() if not k.startswith("ENGINES_")}
    environ.pop("GITHUB_STEP_SUMMARY", None)
    done = subprocess.run(
        args, cwd=tmp_path, env=environ, capture_output=True, text=True, timeout=150, check=False
    )
    output = done.stdout + done.stderr
    folders = list(out_dir.iterdir()) if out_dir.exists() else []
    assert len(folders) == 1, output
    verdict_path = folders[0] / "verdict.json"
    assert verdict_path.is_file(), output
    return Accepted(
        code=done.returncode,
        output=output,
        folder=folders[0],
        verdict=json.loads(verdict_path.read_text()),
    )

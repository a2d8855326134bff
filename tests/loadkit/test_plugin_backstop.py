"""The plugin's backstop: a headless test whose users were told to stop ends, and Locust with
it, a short grace later, even when the stop never got through (run in a child process: the
plugin's modules import Locust)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson

PROBE = Path(__file__).with_name("plugin_backstop_probe.py")


def test_a_stop_cut_short_is_finished_by_the_plugin_then_locust_is_shut_down(
    tmp_path: Path,
) -> None:
    done = subprocess.run(
        [sys.executable, str(PROBE), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    findings = orjson.loads(done.stdout)
    # The timer's stop() and quit() never got through: quit again, then the results written
    # with what was recorded, and Locust's own greenlets ended so that its main shuts down.
    timer = findings["timer"]
    assert timer["calls"] == ["stop", "quit", "stop", "quit", "stop"]
    assert timer["killed"] and timer["valid"] and timer["stopped_by"] is None
    assert "had not ended" in done.stderr and "did not stop the test" in done.stderr
    # A locustfile's quit() killed part-way: still a run it stopped, valid.
    stopped = findings["locustfile"]
    assert stopped["calls"] == ["stop", "quit", "stop"] and stopped["killed"]
    assert stopped["valid"] and stopped["stopped_by"] == "locustfile"
    # Users stopped, test_stop's hooks still running: Locust waits for them, so does loadkit.
    assert findings["in_hooks"] == {"calls": ["stop", "quit", "stop"], "killed": False}

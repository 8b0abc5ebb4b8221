"""bench/compare.py end to end on tiny settings: every comparison writes its JSON, CSV and plot."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parent.parent / "bench" / "compare.py"


@pytest.mark.parametrize("command", ["methods", "tau", "ssl-shape", "rd", "multirate", "early-stop", "budget",
                                     "schedules", "target"])
def test_comparison_writes_tables_and_plot(tmp_path, command):
    proc = subprocess.run([sys.executable, str(SCRIPT), command, "--iterations", "2", "--long-iterations", "3",
                           "--targets", "0.5", "--crop", "64", "--check-every", "1", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    stem = tmp_path / f"compare-{command}"
    for suffix in (".json", ".csv", ".png"):
        assert stem.with_suffix(suffix).stat().st_size > 0
    report = json.loads(stem.with_suffix(".json").read_text())
    assert report["images"] == ["astronaut", "coffee"] and report["rows"]
    if command == "rd":
        assert set(report["bd"]) == {"ssl vs atanh", "ssl vs base", "atanh vs base"}

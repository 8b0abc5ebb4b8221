"""bench/defaults.py end to end on tiny settings: the presets table holds what the choice of the default reads
(each setting's loss per image against the paper preset's), and the side-by-side with the paper's loop is timed
against that loop."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parent.parent / "bench" / "defaults.py"


def run(tmp_path, *args):
    proc = subprocess.run([sys.executable, str(SCRIPT), *args, "--crop", "64", "--iterations-scale", "0.01",
                           "--architectures", "mbt2018-mean", "--repeats", "1", "--device", "cpu", "--out",
                           str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads((tmp_path / f"defaults-{args[0]}.json").read_text())


def test_presets_are_compared_with_the_paper_preset_per_image(tmp_path):
    report = run(tmp_path, "presets", "--images", "astronaut", "coffee", "--settings", "paper", "fast")
    paper, fast = report["rows"]
    assert (paper["preset"], paper["iterations"], fast["preset"], fast["iterations"]) == ("paper", 20, "fast", 5)
    assert paper["vs_paper_percent"] == [0.0, 0.0] and paper["within_tolerance"]
    expected = [100 * (mine / theirs - 1) for mine, theirs in zip(fast["loss"], paper["loss"])]
    assert fast["vs_paper_percent"] == pytest.approx(expected)
    assert all(loss < base for loss, base in zip(paper["loss"], paper["base_loss"]))
    assert (tmp_path / "defaults-presets.md").read_text().count("| mbt2018-mean |") == 2


def test_the_paper_loop_is_the_yardstick_of_the_side_by_side(tmp_path):
    report = run(tmp_path, "paper-loop", "--images", "coffee")
    loop, *presets = report["rows"]
    assert loop["run"] == "the paper's loop" and loop["iterations"] == 20 and loop["time_vs_paper_loop"] == 1
    assert {row["run"] for row in presets} >= {"sgaplus, preset paper", "sgaplus, preset fast"}
    for row in presets:
        assert row["seconds"] > 0 and row["time_vs_paper_loop"] == pytest.approx(row["seconds"] / loop["seconds"])
    base = run(tmp_path, "presets", "--images", "coffee", "--settings", "paper")["rows"][0]["base_loss"][0]
    assert loop["loss"] < base and all(row["loss"] <= base for row in presets)  # the same image, refined


def test_unknown_settings_are_refused(tmp_path):
    proc = subprocess.run([sys.executable, str(SCRIPT), "presets", "--settings", "fastest"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2 and "invalid choice: 'fastest'" in proc.stderr

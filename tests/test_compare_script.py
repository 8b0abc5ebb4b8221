"""bench/compare.py end to end on tiny settings: every comparison writes its JSON, CSV and plot."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parent.parent / "bench" / "compare.py"


@pytest.mark.parametrize("command", ["methods", "tau", "ssl-shape", "rd", "multirate", "early-stop", "budget",
                                     "schedules", "target", "architectures"])
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
    if command == "methods":  # every method starts from the codec's own latents; base does not move from them
        base = {row["method"]: row for row in report["rows"]}["base"]
        assert all(row["base_loss"] == base["base_loss"] == row["history"][0]["loss"] for row in report["rows"])
        assert base["loss"] == base["base_loss"] and len(report["rows"]) == 10
    if command == "rd":
        assert set(report["bd"]) == {"ssl vs atanh", "ssl vs base", "atanh vs base", "base vs jpeg", "ssl vs jpeg",
                                     "ssl vs webp"}
        assert {row["variant"] for row in report["rows"]} == {"base", "atanh", "ssl", "jpeg", "webp"}


def test_a_comparison_runs_on_any_codec(tmp_path):
    """--checkpoint (here a context model with random weights) instead of the default bundled model; the results
    are named after it."""
    from compressai.models import JointAutoregressiveHierarchicalPriors

    from sgaplus.files.checkpoints import save_checkpoint
    save_checkpoint(JointAutoregressiveHierarchicalPriors(32, 32), tmp_path / "ctx.pt", "mbt2018", 32, 32,
                    {"lmbda": 0.01})
    proc = subprocess.run([sys.executable, str(SCRIPT), "methods", "--checkpoint", str(tmp_path / "ctx.pt"),
                           "--iterations", "2", "--crop", "64", "--check-every", "1", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads((tmp_path / "compare-methods-ctx.json").read_text())
    assert report["codec"].startswith("file:") and len(report["rows"]) == 10


def test_the_rd_comparison_on_ms_ssim(tmp_path):
    """--metric ms-ssim: the models refined for MS-SSIM, curves and BD metrics on MS-SSIM in dB, Pillow's too."""
    proc = subprocess.run([sys.executable, str(SCRIPT), "rd", "--metric", "ms-ssim", "--images", "astronaut",
                           "--iterations", "2", "--crop", "192", "--check-every", "1", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads((tmp_path / "compare-rd.json").read_text())
    assert report["metric"] == "ms-ssim" and report["quality"] == "MS-SSIM (dB)"
    assert all(row["ms_ssim_db"] > 5 for row in report["rows"])
    assert set(report["bd"]["ssl vs base"]) == {"bd_ms_ssim_db", "bd_rate_percent"}
    refused = subprocess.run([sys.executable, str(SCRIPT), "rd", "--metric", "ms-ssim", "--crop", "64"],
                             capture_output=True, text=True, timeout=600)
    assert refused.returncode == 1 and "needs --crop 161 or more" in refused.stderr

"""bench/compare.py end to end on tiny settings: every comparison writes its JSON, CSV and plot. The script runs in
this process, as its command line runs it (its imports are paid once, not once per comparison)."""
import functools
import importlib.util
import json
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parent.parent / "bench" / "compare.py"


@functools.lru_cache(maxsize=None)
def compare_module():
    sys.path.insert(0, str(SCRIPT.parent))  # the script imports its neighbours (machine.py)
    spec = importlib.util.spec_from_file_location("bench_compare", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def compare(monkeypatch, *words):
    """`python bench/compare.py WORDS...`; a refusal raises SystemExit with its message."""
    monkeypatch.setattr(sys, "argv", [str(SCRIPT), *map(str, words)])
    compare_module().main()


@pytest.mark.parametrize("command", ["methods", "tau", "ssl-shape", "rd", "multirate", "early-stop", "budget",
                                     "schedules", "target", "architectures"])
def test_comparison_writes_tables_and_plot(tmp_path, monkeypatch, command):
    compare(monkeypatch, command, "--iterations", 2, "--long-iterations", 3, "--targets", 0.5, "--crop", 64,
            "--check-every", 1, "--out", tmp_path)
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


def test_a_comparison_runs_on_any_codec(tmp_path, monkeypatch):
    """--checkpoint (here a context model with random weights) instead of the default bundled model; the results
    are named after it."""
    from compressai.models import JointAutoregressiveHierarchicalPriors

    from sgaplus.files.checkpoints import save_checkpoint
    save_checkpoint(JointAutoregressiveHierarchicalPriors(32, 32), tmp_path / "ctx.pt", "mbt2018", 32, 32,
                    {"lmbda": 0.01})
    compare(monkeypatch, "methods", "--checkpoint", tmp_path / "ctx.pt", "--iterations", 2, "--crop", 64,
            "--check-every", 1, "--out", tmp_path)
    report = json.loads((tmp_path / "compare-methods-ctx.json").read_text())
    assert report["codec"].startswith("file:") and len(report["rows"]) == 10


def test_the_rd_comparison_on_ms_ssim(tmp_path, monkeypatch):
    """--metric ms-ssim: the models refined for MS-SSIM, curves and BD metrics on MS-SSIM in dB, Pillow's too."""
    compare(monkeypatch, "rd", "--metric", "ms-ssim", "--images", "astronaut", "--iterations", 2, "--crop", 192,
            "--check-every", 1, "--out", tmp_path)
    report = json.loads((tmp_path / "compare-rd.json").read_text())
    assert report["metric"] == "ms-ssim" and report["quality"] == "MS-SSIM (dB)"
    assert all(row["ms_ssim_db"] > 5 for row in report["rows"])
    assert set(report["bd"]["ssl vs base"]) == {"bd_ms_ssim_db", "bd_rate_percent"}
    with pytest.raises(SystemExit, match="needs --crop 161 or more"):
        compare(monkeypatch, "rd", "--metric", "ms-ssim", "--crop", 64)

"""bench/refine_throughput.py end to end on tiny settings: baseline, variants, JSON and plot."""
import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).parent.parent / "bench" / "refine_throughput.py"


def run(tmp_path, *args):
    return subprocess.run([sys.executable, str(SCRIPT), "--images", "2", "--baseline-images", "1", "--iterations",
                           "2", "--height", "64", "--width", "64", "--batch", "2", "--device", "cpu", "--out",
                           str(tmp_path), *args], capture_output=True, text=True, timeout=600)


def test_variants_are_timed_against_the_baseline(tmp_path):
    proc = run(tmp_path, "--variants", "batched,bf16-cl")
    assert proc.returncode == 0, proc.stderr[-2000:]
    (path,) = tmp_path.glob("refine-throughput-cpu-*.json")  # named after the CPU model and threads
    report = json.loads(path.read_text())
    assert list(report["variants"]) == ["batched", "bf16-cl"]
    assert report["variants"]["bf16-cl"]["switches"] == {"autocast": "bfloat16", "channels_last": True}
    for row in report["variants"].values():
        assert row["seconds"] > 0 and row["speedup"] > 0 and row["mean_true_loss"] > 0
    assert report["baseline"]["images_timed"] == 1 and report["baseline"]["mean_true_loss"] > 0
    assert path.with_suffix(".png").stat().st_size > 0


def test_graph_variants_are_refused_without_cuda(tmp_path):
    proc = run(tmp_path, "--variants", "tf32-graphs")
    assert proc.returncode == 2 and "need --device cuda" in proc.stderr
    proc = run(tmp_path, "--variants", "fastest")
    assert proc.returncode == 2 and "unknown variant(s) fastest" in proc.stderr

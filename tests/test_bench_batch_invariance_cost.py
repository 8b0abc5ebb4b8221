"""bench/batch_invariance_cost.py end to end on tiny settings: every way timed, its symbols compared with alone,
the JSON and the table written."""
import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).parent.parent / "bench" / "batch_invariance_cost.py"


def test_every_way_is_timed_and_compared_with_alone(tmp_path):
    proc = subprocess.run([sys.executable, str(SCRIPT), "--architectures", "mbt2018-mean", "--side", "64",
                           "--iterations", "2", "--repeats", "1", "--threads", "1", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (path,) = tmp_path.glob("batch-invariance-cost-cpu-*.json")  # named after the CPU model and threads
    ways = json.loads(path.read_text())["models"]["mbt2018-mean"]
    assert list(ways) == ["batch, oneDNN on", "batch, oneDNN off", "one at a time, oneDNN on",
                          "one at a time, oneDNN off"]
    for way in ways.values():
        assert len(way["seconds"]) == 1 and way["seconds_per_step"] > 0 and len(way["y_hat_bitwise_alone"]) == 4
    assert ways["batch, oneDNN off"]["y_hat_bitwise_alone"] == [True] * 4  # PyTorch's own convolutions
    assert "| mbt2018-mean | batch, oneDNN on |" in path.with_suffix(".md").read_text()

"""bench/context_check.py end to end on tiny settings: every bundled context model timed, JSON and table."""
import json
import subprocess
import sys
from pathlib import Path

from sgaplus.codecs import registry
from sgaplus.files.loading import bundled_architectures

SCRIPT = Path(__file__).parent.parent / "bench" / "context_check.py"


def test_checks_of_every_bundled_context_model_are_timed(tmp_path):
    proc = subprocess.run([sys.executable, str(SCRIPT), "--sizes", "64", "--repeats", "1", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads((tmp_path / "context-check-cpu.json").read_text())
    context = [a for a in bundled_architectures() if registry.adapter(a).context_model]
    assert context and [row["codec"].split(":")[1] for row in report["rows"]] == context
    for row in report["rows"]:
        assert row["check_cold_s"] > 0 and row["serial_s"] > 0 and 1 <= row["sweeps_warm"] <= row["sweeps_cold"]
    assert (tmp_path / "context-check-cpu.md").read_text().count("\n") == 4 + len(context)

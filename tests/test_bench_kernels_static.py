"""bench/kernels_static.py on one configuration family: compiled for sm_90 without a GPU, its SASS read back."""
import json
import os
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench"


def test_static_report_reads_the_compiled_kernels(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}  # the real compiler
    run = subprocess.run([sys.executable, str(BENCH / "kernels_static.py"), "--arch", "90", "-k", "ssl-2 forward",
                          "--out", str(tmp_path)], env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout + run.stderr
    report = json.loads((tmp_path / "kernels-static.json").read_text())
    rows = {r["config"]: r for r in report["kernels"]}
    assert set(rows) == {"ssl-2 forward float32", "ssl-2 forward float32 hard", "ssl-2 forward float32 means-float32",
                         "ssl-2 forward float32 hard means-float32"}
    soft, hard = rows["ssl-2 forward float32"], rows["ssl-2 forward float32 hard"]
    for row in rows.values():
        assert row["registers"] > 0 and row["sass_per_element"] > 0 and row["binding"] in ("issue", "mufu", "memory")
    # the counts follow the code: the hard forward skips the sigmoid (an exp and a reciprocal per element)
    assert hard["mufu_per_element"] == soft["mufu_per_element"] - 2
    assert rows["ssl-2 forward float32 means-float32"]["bytes_per_element"] == soft["bytes_per_element"] + 4 == 12
    assert "| ssl-2 forward float32 |" in (tmp_path / "kernels-static.md").read_text()

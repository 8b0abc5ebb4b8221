"""tools/gpu.sh's dry run: the GPU call's stages on the CPU with tiny sizes, so that the first GPU run spends its
minutes measuring, not debugging the script. One stage is given a one-second limit: it is stopped, the later
stages still run, the call fails, and every file the stages wrote comes back in $OUT (at most 8, with names the
device call returns)."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_dry_run_runs_every_stage_within_its_limit_and_delivers_the_files(tmp_path):
    out, results = tmp_path / "out", tmp_path / "results"
    out.mkdir()
    env = dict(os.environ, OUT=str(out), GPU_RESULTS=str(results), GPU_LIMIT_TESTS="1", PYTHON=sys.executable)
    run = subprocess.run(["bash", str(ROOT / "tools" / "gpu.sh"), "--dry-run"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=900)
    assert run.returncode == 1, run.stderr[-2000:]  # the stage stopped at its limit fails the call
    report = json.loads((out / "gpu-stages.json").read_text())
    statuses = {stage["stage"]: stage["status"] for stage in report["stages"]}
    assert statuses == {"env": 0, "tests": 124, "op": 0, "step": 0, "throughput": 0, "evaluate": 0}, report
    assert report["env"]["device"] == "cpu" and report["env"]["torch"]
    files = sorted(path.name for path in out.iterdir())
    assert len(files) <= 8 and all(re.fullmatch(r"[A-Za-z0-9._-]+", name) for name in files), files
    [op] = [name for name in files if name.startswith("cpu-") and name.endswith(".json")]
    benchmarks = json.loads((out / op).read_text())["pytest_benchmark"]["benchmarks"]
    suites = {bench["extra_info"]["suite"] for bench in benchmarks}
    assert suites == {"op", "refine-step"}, suites  # the step stage merged into the op report
    assert any(name.startswith("refine-throughput-") and name.endswith(".png") for name in files)
    assert any(name.startswith("evaluate-throughput-") and name.endswith(".json") for name in files)
    assert "=== throughput" in (out / "gpu-run.log").read_text()


def test_the_script_refuses_unknown_arguments():
    run = subprocess.run(["bash", str(ROOT / "tools" / "gpu.sh"), "--fast"], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 2 and "usage" in run.stderr

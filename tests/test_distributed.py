"""torchrun shards `sgaplus refine` across processes (gloo on CPU): the same bitstreams as one process, byte for
byte; PNGs within one grey level and metrics to float precision (the decoder's and the loss's convolutions
depend on the thread count, and torchrun sets OMP_NUM_THREADS=1), as the README states. `sgaplus evaluate` under
torchrun (python -m sgaplus): the outputs of one process, at any --batch-size; a rank's failure, and a resume on
another number of processes."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from compressai.utils.plot.__main__ import parse_json_file
from helpers import sample_crop
from PIL import Image
from test_cli import save_png

from sgaplus.cli import main
from sgaplus.evaluate import run as evaluation


def test_two_processes_give_the_single_process_outputs(tmp_path):
    images = [save_png(tmp_path / "a.png"), save_png(tmp_path / "b.png", sample_crop((64, 96), top=150)),
              save_png(tmp_path / "c.png", sample_crop((64, 64), left=200))]
    common = ["--iterations", "3", "--batch-size", "1", "--check-every", "1"]
    assert main(["refine", *map(str, images), "--out", str(tmp_path / "single"), *common]) == 0
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           "-m", "sgaplus.cli", "refine", *map(str, images), "--out", str(tmp_path / "multi"),
                           *common], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "(2 processes)" in proc.stdout
    for stem in ("a", "b", "c"):
        assert (tmp_path / "multi" / f"{stem}.bin").read_bytes() == (tmp_path / "single" / f"{stem}.bin").read_bytes()
        pngs = [np.asarray(Image.open(tmp_path / run / f"{stem}.png"), dtype=np.int16) for run in ("multi", "single")]
        assert np.abs(pngs[0] - pngs[1]).max() <= 1
    single = json.loads((tmp_path / "single" / "metrics.json").read_text())
    multi = json.loads((tmp_path / "multi" / "metrics.json").read_text())
    # metrics agree to float precision (thread counts differ between the runs, so the last bits may)
    for m, s in zip(multi["images"], single["images"]):
        assert m["image"] == s["image"] and m["file_bytes"] == s["file_bytes"] and m["best_step"] == s["best_step"]
        for key in ("base", "refined"):
            assert m[key].keys() == s[key].keys()
            for field, value in s[key].items():  # MS-SSIM is None on images too small for it
                assert m[key][field] == (value if value is None else pytest.approx(value, rel=1e-5)), field


EVALUATE = ["--qualities", "1", "2", "--iterations", "3", "--check-every", "1", "--no-compile"]
FAILING = """import os, sys
from sgaplus.evaluate import run as evaluation
from sgaplus.cli import main
code_unit, calls = evaluation.code_unit, []
def failing(*args):
    calls.append(args[-1])
    if os.environ["RANK"] == "1" and len(calls) == 2:
        raise RuntimeError("planted failure")
    return code_unit(*args)
evaluation.code_unit = failing
sys.exit(main(sys.argv[1:]))
"""


def torchrun(*command, timeout=300):
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           *command], capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
                          timeout=timeout)


def comparable(out):
    """An evaluation's outputs, the timings aside: the curves, BD metrics and every pair."""
    found = {name: json.loads((out / name).read_text()) for name in ("base.json", "refined.json", "bd.json")}
    for name in ("base.json", "refined.json"):
        found[name]["results"].pop("encoding_time")
    found["pairs"] = json.loads((out / "pairs.json").read_text())["pairs"]
    for row in found["pairs"]:
        for kind in ("base", "refined"):
            row[kind].pop("encoding_time")
    found["bitstreams"] = {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*.bin")}
    return found


def test_evaluate_on_two_processes_a_failure_and_a_resume_on_one(tmp_path, monkeypatch, capsys):
    """Four same-size images and two of another size at two qualities: on a CPU each (point, batch) unit is one image
    (docs/cli.md, "Batches"), units 0-11, rank 1 takes the odd ones. Two processes write what one does (one process
    at --batch-size 1 what it does at 8: test_batch_invariance.py); a rank's failure is one line naming it and its
    pair, its finished pairs are kept, and one process resumes from them to the same outputs."""
    images = [str(save_png(tmp_path / f"a{i}.png", sample_crop(64, top=40 * i, left=30 * i))) for i in range(4)]
    images += [str(save_png(tmp_path / f"w{i}.png", sample_crop((64, 96), name="coffee", top=50 * i))) for i in (0, 1)]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as torchrun's processes: the same float convolutions
    try:
        assert main(["evaluate", *images, "--out", str(tmp_path / "single"), *EVALUATE]) == 0
        proc = torchrun("-m", "sgaplus", "evaluate", *images, "--out", str(tmp_path / "multi"), *EVALUATE)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert "(2 processes)" in proc.stdout
        assert comparable(tmp_path / "multi") == comparable(tmp_path / "single")
        script = tmp_path / "failing.py"
        script.write_text(FAILING)
        part = tmp_path / "part"
        proc = torchrun(str(script), "evaluate", *images, "--out", str(part), *EVALUATE)
        assert proc.returncode != 0
        [line] = [line for line in proc.stderr.splitlines() if "sgaplus: error:" in line]  # after rank 0's bar
        assert line.endswith("sgaplus: error: rank 1 of 2 failed on q1 x a3.png: RuntimeError: planted failure"), \
            proc.stderr[-3000:]
        kept = json.loads((part / "pairs-rank1.json").read_text())["pairs"]
        assert [(row["point"], row["image"]) for row in kept] == [("q1", "a1.png")]
        refined = []
        code_unit = evaluation.code_unit
        monkeypatch.setattr(evaluation, "code_unit", lambda *args: refined.append(args[-1]) or code_unit(*args))
        assert main(["evaluate", *images, "--out", str(part), *EVALUATE, "--resume"]) == 0
    finally:
        torch.set_num_threads(threads)
    assert ("q1", ["a1.png"]) not in [(u.point.label, [n for _, n, _ in u.batch]) for u in refined]
    assert comparable(part) == comparable(tmp_path / "single")
    assert not list(part.glob("pairs-rank*.json"))
    assert parse_json_file(part / "refined.json", "psnr")["xs"] == comparable(part)["refined.json"]["results"]["bpp"]

"""torchrun shards `sgaplus refine` across processes (gloo on CPU): the same bitstreams as one process, byte for
byte; PNGs within one grey level and metrics to float precision (the decoder's and the loss's convolutions
depend on the thread count, and torchrun sets OMP_NUM_THREADS=1), as the README states."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from helpers import sample_crop
from PIL import Image
from test_cli import save_png

from sgaplus.cli import main


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

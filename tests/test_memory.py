"""The memory estimate protects runs: it bounds the measured peak of a relaxed step (measured in a fresh process,
as the peak of the bytes torch's allocator holds during the step, summed from its profiler's allocation events:
resident memory is no measure where the machine swaps), and a batch that would not fit the free memory is refined
in smaller batches, with the synthesis checkpointed, or refused in one line before any work."""
import functools
import json
import subprocess
import sys

import pytest
import torch
from helpers import bundled_codec, sample_crop

from sgaplus.cli import main
from sgaplus.errors import UsageError
from sgaplus.refine import memory
from sgaplus.refine.refiner import LatentRefiner

LARGE = (768, 1152)  # the image whose peak is measured

MEASURE = """
import json, sys, warnings
import torch
from torch.profiler import ProfilerActivity, profile
warnings.filterwarnings("ignore")
torch.set_num_threads(1)
from sgaplus.refine import memory
from sgaplus.files.loading import load_codec
from sgaplus.refine.refiner import LatentRefiner
architecture, height, width, checkpoint = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1"
refiner = LatentRefiner(load_codec(bundled=architecture), "ssl", iterations=1, checkpoint_synthesis=checkpoint)
estimate = memory.probe(refiner, "cpu").peak(height * width)
x = torch.rand(1, 3, height, width)
with torch.no_grad():
    y = refiner.codec.analysis(x)
    z = refiner.codec.hyper_analysis(y)
y = y.requires_grad_()
z = None if z is None else z.requires_grad_()
with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as trace:
    refiner.relaxed_loss(x, y, z, 0.5)[0].sum().backward()
events = sorted((event.start_ns(), event.nbytes()) for event in trace.profiler.kineto_results.events()
                if event.name() == "[memory]")
held = peak = 0
for _, size in events:
    held += size
    peak = max(peak, held)
print(json.dumps({"estimate": estimate, "measured": peak}))
"""


@functools.lru_cache(maxsize=None)
def measured_and_estimated(architecture, height, width, checkpoint=False):
    """{estimate, measured} bytes of one refinement in a fresh process (each configuration measured once)."""
    run = subprocess.run([sys.executable, "-c", MEASURE, architecture, str(height), str(width), str(int(checkpoint))],
                         capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-2000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("architecture,checkpoint", [("mbt2018-mean", False), ("cheng2020-anchor", False),
                                                     ("elic2022-chandelier", False), ("cheng2020-anchor", True)])
def test_the_estimate_bounds_the_measured_peak(architecture, checkpoint):
    """A 768 x 1152 refinement (the probes are 128 and 256 pixels square: 13 to 54 times fewer pixels): the peak
    bytes allocated are below the estimate, and the estimate is not more than 2.5 times the peak (it must not refuse
    what fits)."""
    figures = measured_and_estimated(architecture, *LARGE, checkpoint)
    assert 0 < figures["measured"] <= figures["estimate"] <= 2.5 * figures["measured"], figures


def test_checkpointing_the_synthesis_lowers_the_peak_where_the_estimate_says_so():
    plain = measured_and_estimated("cheng2020-anchor", *LARGE, False)
    checkpointed = measured_and_estimated("cheng2020-anchor", *LARGE, True)
    assert checkpointed["estimate"] < 0.8 * plain["estimate"] and checkpointed["measured"] < 0.9 * plain["measured"]


def test_checkpointing_the_synthesis_changes_no_result():
    x = sample_crop(64)
    plain = LatentRefiner(bundled_codec(), "ssl", iterations=20).refine(x)
    checkpointed = LatentRefiner(bundled_codec(), "ssl", iterations=20, checkpoint_synthesis=True).refine(x)
    assert torch.equal(plain.y_hat, checkpointed.y_hat) and plain.best.loss == checkpointed.best.loss


def test_the_plan_shrinks_batches_then_checkpoints_then_refuses(monkeypatch):
    refiner = LatentRefiner(bundled_codec(architecture="cheng2020-anchor"), "ssl")
    step = memory.probe(refiner, "cpu")
    pixels = 512 * 768
    size, one = (512, 768), step.peak(pixels)
    assert memory.plan(refiner, [size], 8, "cpu", free=100 * one) == {size: 1}  # on a CPU, one image a batch
    monkeypatch.setattr(memory, "ONE_IMAGE_DEVICES", ())  # the memory's part, measured on the CPU at hand
    assert memory.plan(refiner, [size], 8, "cpu", free=100 * one) == {size: 8}
    budget = 3.5 * one
    [batch] = memory.plan(refiner, [size], 8, "cpu", free=budget / memory.USABLE_SHARE).values()
    assert 1 < batch < 8 and step.peak(batch * pixels) <= budget < step.peak((batch + 1) * pixels)
    assert not refiner.checkpoint_synthesis
    [batch] = memory.plan(refiner, [size], 8, "cpu", free=0.95 * one / memory.USABLE_SHARE).values()
    assert refiner.checkpoint_synthesis and batch >= 1  # one image fits only with the synthesis recomputed
    assert memory.probe(refiner, "cpu").peak(batch * pixels) <= 0.95 * one
    with pytest.raises(UsageError, match=r"a 768x512 image needs about .* GB to refine .* images up to about "):
        memory.plan(LatentRefiner(bundled_codec(), "ssl"), [size], 8, "cpu", free=one / 4)


def test_an_image_too_large_for_the_memory_is_refused_before_any_work(tmp_path, capsys, monkeypatch):
    from PIL import Image
    picture, out = tmp_path / "big.png", tmp_path / "out"
    Image.fromarray(sample_crop(256)[0].mul(255).round().byte().permute(1, 2, 0).numpy()).save(picture)
    monkeypatch.setattr(memory, "free_bytes", lambda device: 10 << 20)
    assert main(["refine", str(picture), "--out", str(out), "--iterations", "1"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "needs about" in err and "10 MB" not in err
    assert not out.exists() or not any(out.iterdir())

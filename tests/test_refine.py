"""LatentRefiner with the bundled model: refinement lowers the true loss, baselines, lambda, padding."""
import copy
import math

import pytest
import torch
from helpers import PoisonedCodec, bundled_codec, sample_crop

import sgaplus
from sgaplus.files import bitstream
from sgaplus.files.loading import load_codec
from sgaplus.refine.refiner import LatentRefiner


def refine(x, method="ssl", iterations=40, **kwargs):
    return LatentRefiner(bundled_codec(), method, iterations=iterations, **kwargs).refine(x)


@pytest.mark.parametrize("method,classes", [("ssl", 2), ("atanh", 2), ("linear", 3)])
def test_refinement_lowers_the_true_loss(method, classes):
    x = sample_crop(128, top=100, left=180)
    result = LatentRefiner(bundled_codec(), method, classes, iterations=60).refine(x)
    assert result.best.loss[0] < 0.99 * result.base.loss[0], (result.base.loss, result.best.loss)
    assert result.best_step[0] > 0
    checked = [h["loss"][0] for h in result.history]
    assert min(checked) == result.best.loss[0] and result.history[0]["step"] == 0


def test_base_does_not_refine():
    base = refine(sample_crop(64), "base")
    assert base.best.loss == base.base.loss and len(base.history) == 1


@pytest.mark.parametrize("method", ["ste", "uniform"])
def test_baselines_refine(method):
    """STE and uniform noise move the latents and lower the true loss (a no-op would keep the base)."""
    x = sample_crop(128, top=100, left=180)
    result = refine(x, method, iterations=40)
    assert len(result.history) == 5 and math.isfinite(result.best.loss[0])
    assert result.best.loss[0] < 0.99 * result.base.loss[0] and result.best_step[0] > 0


def test_higher_lambda_gives_higher_rate_and_quality():
    """Semi-multi-rate: one model refined toward two points of the RD curve."""
    x = sample_crop(128, top=200, left=200)
    low = refine(x, lmbda=0.002, iterations=80)
    high = refine(x, lmbda=0.03, iterations=80)
    assert high.best.bpp[0] > low.best.bpp[0]
    assert high.best.psnr[0] > low.best.psnr[0]


def test_batch_refines_each_image_like_alone():
    """An image refined in a batch follows the trajectory it follows alone: the loss is a sum over images and Adam
    is elementwise, so nothing couples the rows. With a noise-free method (straight-through rounding) the two runs
    agree to float rounding at every check: metrics, best step, latents."""
    a, b = sample_crop(64, top=0, left=0), sample_crop(64, top=300, left=300)
    batch = refine(torch.cat([a, b]), "ste", iterations=30, check_every=5, lr=2e-2)
    alone = refine(b, "ste", iterations=30, check_every=5, lr=2e-2)
    for entry, single in zip(batch.history, alone.history):
        for name in ("loss", "bpp", "psnr"):
            assert entry[name][1] == pytest.approx(single[name][0], rel=1e-4), (entry["step"], name)
    assert batch.best_step[1] == alone.best_step[0] > 0 and batch.best.loss[1] < batch.base.loss[1]
    assert (batch.y_hat[1] - alone.y_hat[0]).abs().max() < 1e-4  # the same symbols, means equal to float rounding
    assert batch.best.loss[0] != pytest.approx(batch.best.loss[1], rel=1e-2)  # two different images


def test_any_image_size_is_padded_and_cropped_back():
    """A 100 x 70 image is padded to the codec's multiple for refinement and cropped back: the result is the
    image's size, it is refined, and its file decodes to the reported reconstruction."""
    x = sample_crop((100, 70), top=150, left=200)
    result = refine(x, iterations=20)
    assert result.x_hat.shape == x.shape and result.y_hat.shape[-2:] == (8, 8)  # padded to 128 x 128; y at 1/16
    assert result.best.loss[0] < result.base.loss[0]
    [stream] = bitstream.encode(bundled_codec(), result.y_hat, result.z_hat, (100, 70))
    x_hat, _ = bitstream.decode(stream, lambda model_id: bundled_codec())
    assert x_hat.shape == x.shape and (x_hat - result.x_hat).abs().max() < 1e-5
    mse = ((result.x_hat - x) ** 2).mean().item()
    assert result.best.psnr[0] == pytest.approx(10 * math.log10(1 / mse), abs=1e-4)


@pytest.mark.parametrize("kwargs,message", [
    (dict(method="round"), "unknown method"),
    (dict(method="atanh", classes=3), "valid methods"),
    (dict(lmbda=-1.0), "lmbda must be a finite number > 0"),
    (dict(iterations=-5), "iterations must be an integer"),
    (dict(lr=0.0), "lr must be a finite number > 0"),
    (dict(check_every=0), "check_every"),
    (dict(tf32="yes"), "tf32 must be True, False or None"),
    (dict(cuda_graphs=True, compile="aot_eager"), "cuda_graphs compiles with inductor"),
])
def test_bad_refiner_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LatentRefiner(bundled_codec(), **kwargs)


def test_speed_switches_reach_about_the_same_true_loss():
    """bfloat16 autocast, channels_last and a compiled relaxed loss versus the plain float32 loop."""
    x = sample_crop(64, top=100, left=180)
    plain = refine(x, iterations=40)
    fast = refine(x, iterations=40, autocast="bfloat16", channels_last=True, compile="aot_eager")
    assert fast.best.loss[0] < 0.99 * fast.base.loss[0]
    assert fast.best.loss[0] == pytest.approx(plain.best.loss[0], rel=0.02)
    assert fast.base.loss[0] == pytest.approx(plain.base.loss[0], rel=1e-4)  # checks run in float32


def test_bad_autocast_is_refused():
    with pytest.raises(ValueError, match="autocast must be one of"):
        LatentRefiner(bundled_codec(), autocast="int8")


@pytest.mark.parametrize("tf32", [True, False])
def test_tf32_switch_holds_for_the_relaxed_steps_only(tf32):
    """The relaxed steps run under the asked float32 precision; checks and the caller keep theirs."""
    codec = bundled_codec()
    seen = {}
    synthesis = codec.synthesis

    def spy(y_hat):
        seen.setdefault(torch.is_grad_enabled(), set()).add(torch.backends.cudnn.conv.fp32_precision)
        return synthesis(y_hat)

    codec.synthesis = spy
    before = (torch.backends.cudnn.conv.fp32_precision, torch.backends.cuda.matmul.fp32_precision)
    try:
        LatentRefiner(codec, iterations=3, check_every=1, tf32=tf32).refine(sample_crop(64))
    finally:
        del codec.synthesis
    assert seen[True] == {"tf32" if tf32 else "ieee"}  # relaxed steps
    assert seen[False] == {before[0]}  # true-loss checks (no grad)
    assert (torch.backends.cudnn.conv.fp32_precision, torch.backends.cuda.matmul.fp32_precision) == before


def test_a_codec_without_training_lambda_needs_one():
    codec = copy.copy(bundled_codec())
    codec.lmbda = None
    with pytest.raises(ValueError, match="lmbda is needed: the codec has no training lambda"):
        LatentRefiner(codec)
    assert LatentRefiner(codec, lmbda=0.01).lmbda == 0.01


def test_cuda_graphs_need_a_cuda_image():
    with pytest.raises(ValueError, match="cuda_graphs needs the image on a CUDA device"):
        LatentRefiner(bundled_codec(), iterations=2, cuda_graphs=True).refine(sample_crop(64))


@pytest.mark.cuda
@pytest.mark.parametrize("switches", [dict(cuda_graphs=True), dict(cuda_graphs=True, autocast="bfloat16", tf32=True)],
                         ids=["cuda-graphs", "cuda-graphs-bf16-tf32"])
def test_cuda_graphs_reach_about_the_same_true_loss(switches):
    x = sample_crop(128, top=100, left=180).cuda()
    codec = load_codec().to("cuda")  # not the shared CPU one
    plain = LatentRefiner(codec, iterations=60, tf32=False).refine(x)
    fast = LatentRefiner(codec, iterations=60, **switches).refine(x)
    assert fast.best.loss[0] < 0.99 * fast.base.loss[0]
    assert fast.best.loss[0] == pytest.approx(plain.best.loss[0], rel=0.02)


def test_a_non_finite_image_is_stopped_at_its_best_and_named():
    x = torch.cat([sample_crop(64, top=100, left=180), sample_crop(64, top=300, left=300)])
    codec = PoisonedCodec(bundled_codec(), victim=1, after=15)
    with pytest.warns(RuntimeWarning, match=r"b\.png: non-finite relaxed loss or latents between steps 11 and 20"):
        result = LatentRefiner(codec, "ssl", iterations=40).refine(x, names=["a.png", "b.png"])
    assert result.nonfinite_step == [None, 20]
    assert result.best_step[1] <= 10 and math.isfinite(result.best.loss[1])
    assert torch.isfinite(result.y_hat).all() and torch.isfinite(result.x_hat).all()
    assert result.best.loss[0] < result.base.loss[0] and result.best_step[0] > 20  # the other image went on
    # negative control: without the poison nothing is flagged
    clean = LatentRefiner(bundled_codec(), "ssl", iterations=40).refine(x)
    assert clean.nonfinite_step == [None, None]


def test_early_stopping_stops_images_independently_and_keeps_their_best():
    """Two images plateau at different checks: the first to plateau leaves the batch (stopped_step) while the
    other goes on, and each result is the best latents its checks saw."""
    textured = sample_crop(64, top=100, left=180)
    flat = torch.full_like(textured, 0.5)
    rule = sgaplus.EarlyStopping(patience=2, min_delta=0.01)
    result = LatentRefiner(bundled_codec(), "ssl", iterations=150, early_stopping=rule).refine(
        torch.cat([textured, flat]), names=["textured", "flat"])
    assert None not in result.stopped_step
    first, last = sorted(range(2), key=lambda i: result.stopped_step[i])
    assert result.stopped_step[first] < result.stopped_step[last] < 150
    assert result.history[-1]["step"] == result.stopped_step[last]  # the loop ended when the last image stopped
    assert result.nonfinite_step == [None, None]
    for i in range(2):
        assert result.best.loss[i] == min(h["loss"][i] for h in result.history)
    # after the first image stopped, its history entries repeat its best (it no longer refines)
    after = [h for h in result.history if h["step"] > result.stopped_step[first]]
    assert after and all(h["loss"][first] == result.best.loss[first] for h in after)
    with pytest.raises(TypeError, match="early_stopping must be an EarlyStopping"):
        LatentRefiner(bundled_codec(), early_stopping=5)

"""The generic adapter on the checkerboard family and on a model without g_a (tests/published_checkerboard.py):
each writes its own compress's strings, refines, and decodes with its own decompress; in a relaxed step every
rounding of a latent (masked copies, the likelihoods' whole group, a slice) gives one sample, and the gradient
reaches y through each; CompressAI's checkerboard model through the generic adapter agrees with its own."""
import functools
import math

import pytest
import torch
from helpers import bundled_codec, random_codec, sample_crop, train_briefly
from published_checkerboard import ElicStyle, MlicStyle, StfStyle, anchors, non_anchors

import sgaplus
from sgaplus.codecs.forward import ForwardCodec
from sgaplus.files.bitstream import decode, encode
from sgaplus.refine.refiner import LatentRefiner

STYLES = {"elic": ElicStyle, "mlic": MlicStyle, "stf": StfStyle}
SIZE = 64
TAU = 2.0  # a soft relaxation: few of its weights saturate, so most derivatives are not zero


@functools.lru_cache(maxsize=None)
def codec_of(style):
    torch.manual_seed(0)
    return sgaplus.codec_for(train_briefly(STYLES[style](), 20), lmbda=0.01)


def psnr(a, b):
    return 10 * math.log10(1 / ((a - b) ** 2).mean().item())


@pytest.mark.parametrize("style", STYLES)
def test_files_hold_the_models_own_strings_and_refined_ones_decode_with_its_decompress(style):
    codec, x = codec_of(style), sample_crop(SIZE, top=100, left=100)
    assert isinstance(codec, ForwardCodec) and codec.inline_analysis == (style == "stf")
    base = LatentRefiner(codec, "base").refine(x)
    with torch.no_grad():
        out = codec.model.compress(x)
    assert codec.compress(base.y_hat, base.z_hat) == [[strings[0] for strings in out["strings"]]]
    result = LatentRefiner(codec, "ssl", iterations=30, check_every=10, lr=2e-2).refine(x)
    assert result.best.loss[0] < 0.9 * result.base.loss[0]
    [stream] = encode(codec, result.y_hat, result.z_hat, (SIZE, SIZE))
    x_hat, _ = decode(stream, lambda model_id: codec)
    with torch.no_grad():
        theirs = codec.model.decompress([[s] for s in codec.compress(result.y_hat, result.z_hat)[0]],
                                        list(result.z_hat.shape[-2:]))["x_hat"]
    assert torch.equal(x_hat, theirs.clamp(0, 1))
    assert abs(psnr(x_hat, x) - result.best.psnr[0]) <= 1e-3


def decoder_spies(style, model, monkeypatch):
    """Records, per group or slice, the decoder's latents as each straight-through path rounded them: a list of
    (tensor, mask of the positions that path rounds)."""
    recorded, cls = [], type(model)
    if style == "stf":
        residual = cls.with_residual

        def slice_spy(self, i, means, decoded, y_hat_slice):
            recorded.append((y_hat_slice, torch.ones_like(y_hat_slice, dtype=torch.bool)))
            return residual(self, i, means, decoded, y_hat_slice)
        monkeypatch.setattr(cls, "with_residual", slice_spy)
        return recorded
    anchor_residual, residual = cls.with_anchor_residual, cls.with_residual

    def anchor_spy(self, i, support, y_hat_anchor):
        recorded.append((y_hat_anchor, anchors(torch.ones_like(y_hat_anchor)).bool()))
        return anchor_residual(self, i, support, y_hat_anchor)

    def non_anchor_spy(self, i, support, y_hat_anchor, y_hat_non_anchor):
        recorded.append((y_hat_non_anchor, non_anchors(torch.ones_like(y_hat_non_anchor)).bool()))
        return residual(self, i, support, y_hat_anchor, y_hat_non_anchor)
    monkeypatch.setattr(cls, "with_anchor_residual", anchor_spy)
    monkeypatch.setattr(cls, "with_residual", non_anchor_spy)
    return recorded


@pytest.mark.parametrize("style,classes", [("elic", 2), ("mlic", 2), ("stf", 2), ("elic", 3)])
def test_in_a_relaxed_step_every_rounding_of_a_latent_gives_one_sample_with_gradient_to_y(style, classes, monkeypatch):
    """The likelihoods' samples (the GaussianConditional's input, whole groups) and the decoder's latents (the
    straight-through roundings of masked copies or slices) hold the same relaxed value at every position, and the
    gradient of each reaches y at the positions it rounds (fails if a path is left hard, drawn separately, or
    detached; with three classes, if a masked copy's zeros are not kept zero)."""
    codec, x = codec_of(style), sample_crop(SIZE, top=100, left=100)
    refiner = LatentRefiner(codec, "ssl", classes, iterations=1)
    batch = refiner._start(x)
    decoder = decoder_spies(style, codec.model, monkeypatch)
    samples, likelihood = [], type(codec.model.gaussian_conditional)._likelihood

    def likelihood_spy(self, value, *args, **kwargs):
        samples.append(value)
        return likelihood(self, value, *args, **kwargs)
    monkeypatch.setattr(type(codec.model.gaussian_conditional), "_likelihood", likelihood_spy)
    z_hat = refiner._relaxed(batch.z, codec.z_offsets(), TAU, torch.tensor(3))
    y_hat, _, _ = codec.y_latents(batch.y, z_hat, lambda v, o, stream=0: refiner._relaxed(
        v, o, TAU, torch.tensor(5), stream))
    paths_per_sample = len(decoder) // len(samples)
    assert len(samples) == len(codec.model.groups if style != "stf" else range(codec.model.slices))
    assert torch.equal(torch.cat([s.detach() for s in samples], 1), y_hat)
    assert (y_hat - y_hat.round()).abs().max() > 0.1  # relaxed, not on a grid
    offset = 0
    for k, sample in enumerate(samples):
        parts = decoder[paths_per_sample * k: paths_per_sample * (k + 1)]
        channels = slice(offset, offset + sample.shape[1])
        offset += sample.shape[1]
        for tensor, mask in parts:
            assert torch.allclose(tensor[mask], sample[mask], atol=1e-5), (k, (tensor - sample)[mask].abs().max())
            assert torch.all(tensor[~mask] == 0), k  # a masked copy's other positions stay zero
            # at the positions a path rounds, its latents depend on y there only through the rounding: the same
            # derivative as the likelihoods' sample (SGA+'s, zero where its weights saturate), not zero, not 1
            [through_path] = torch.autograd.grad(tensor[mask].sum(), batch.y, retain_graph=True)
            [through_sample] = torch.autograd.grad(sample[mask].sum(), batch.y, retain_graph=True)
            through_path, through_sample = through_path[:, channels][mask], through_sample[:, channels][mask]
            assert torch.allclose(through_path, through_sample, atol=1e-6), k
            assert (through_sample != 0).float().mean() > 0.5 and (through_sample != 1).all(), k


def smooth(value, offsets, stream=0):
    """A deterministic, differentiable stand-in for a relaxed rounding: the two adapters draw SGA+'s noise
    differently, so it is with this that their relaxed losses and gradients can be compared exactly."""
    centred = value if offsets is None else value - offsets
    bent = centred + 0.3 * torch.sin(3 * centred)
    return bent if offsets is None else bent + offsets


def test_the_generic_adapter_on_compressais_checkerboard_model_agrees_with_its_own():
    dedicated = random_codec("cheng2020-anchor-checkerboard")
    generic = ForwardCodec(dedicated.model, "generic", dedicated.lmbda)
    x = sample_crop(SIZE, top=100, left=100)
    base, forced = (LatentRefiner(codec, "base").refine(x) for codec in (dedicated, generic))
    assert forced.base.loss[0] == pytest.approx(base.base.loss[0], rel=1e-6)
    assert generic.compress(forced.y_hat, forced.z_hat) == dedicated.compress(base.y_hat, base.z_hat)
    refined = [LatentRefiner(codec, "ste", iterations=20, check_every=10).refine(x).best.loss[0]
               for codec in (dedicated, generic)]
    assert refined[1] == pytest.approx(refined[0], rel=1e-4)  # straight-through rounding draws no noise
    relaxed = []
    for codec in (dedicated, generic):
        refiner = LatentRefiner(codec, "ssl", iterations=1)
        batch = refiner._start(x)
        y, z = batch.y.detach().requires_grad_(True), batch.z.detach().requires_grad_(True)
        z_hat = smooth(z, codec.z_offsets())
        y_hat, entropy, _ = codec.y_latents(y, z_hat, smooth)
        loss = refiner._rd_loss(x, x.shape[-2:], y_hat, z_hat, entropy)[0].sum()
        relaxed.append((loss.item(), *torch.autograd.grad(loss, (y, z))))
    assert relaxed[1][0] == pytest.approx(relaxed[0][0], rel=1e-6)
    for ours, theirs in zip(relaxed[1][1:], relaxed[0][1:]):
        assert torch.allclose(ours, theirs, rtol=1e-4, atol=1e-5 * theirs.abs().max())


def test_the_generic_adapter_on_compressais_elic_writes_its_strings():
    """Channel groups of checkerboards (its compress returns a list of shapes, which decompress gets back)."""
    dedicated = bundled_codec(architecture="elic2022-chandelier")
    generic = ForwardCodec(dedicated.model, "generic", dedicated.lmbda)
    x = sample_crop(SIZE, top=100, left=100)
    base, forced = (LatentRefiner(codec, "base").refine(x) for codec in (dedicated, generic))
    assert forced.base.loss[0] == pytest.approx(base.base.loss[0], rel=1e-6)
    assert generic.compress(forced.y_hat, forced.z_hat) == dedicated.compress(base.y_hat, base.z_hat)

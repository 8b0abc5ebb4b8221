"""Models in idioms of published code (tests/published_idioms.py) through sgaplus.codec_for with no adapter code: a
forward and decompress that do not clamp, a Cheng2020Anchor subclass with its own (invertible) analysis and
synthesis methods, a straight-through rounding as a helper object's method, an entropy model of the model's own
class with a compress that writes a file. Each writes its own compress's strings, refines, and decodes with its own
decompress; in a relaxed step every rounding of a latent gives one sample with gradient to y. And a quality-map
codec whose forward takes more than the image, with no g_a or h_a module (its latents found where it makes them)."""
import functools
import math

import pytest
import torch
from compressai.models import ScaleHyperprior
from helpers import sample_crop, train_briefly
from published_idioms import (
    FILE_CALLS,
    MAP_CALLS,
    HelperStraightThrough,
    InvertibleAnchor,
    OwnEntropyModel,
    QualityMapCodec,
    Quantizer,
    Unclamped,
)

import sgaplus
from sgaplus.codecs import CompressAIContext
from sgaplus.codecs.forward import ForwardCodec
from sgaplus.errors import ModelError, UsageError
from sgaplus.files.bitstream import decode, encode
from sgaplus.refine.refiner import LatentRefiner

STYLES = {"unclamped": Unclamped, "invertible": InvertibleAnchor, "helper-ste": HelperStraightThrough,
          "own-entropy-model": OwnEntropyModel, "quality-map": QualityMapCodec}
CALLS = {"own-entropy-model": FILE_CALLS, "quality-map": MAP_CALLS}
SIZE = 64
TAU = 2.0  # a soft relaxation: most derivatives are not zero


@functools.lru_cache(maxsize=None)
def codec_of(style):
    torch.manual_seed(0)
    model = STYLES[style]()
    model = train_briefly(model, 20, **({"qmap": torch.full((1, 1, 64, 64), 0.5)} if style == "quality-map" else {}))
    return sgaplus.codec_for(model, lmbda=0.01, **({"calls": CALLS[style]} if style in CALLS else {}))


def own_compress(codec, style, x):
    """The strings of x the model's own compress writes (one list per image)."""
    with torch.no_grad():
        out = CALLS[style].compress(codec.model, x) if style in CALLS else codec.model.compress(x)
    return [[strings[0] for strings in out["strings"]]]


def psnr(a, b):
    return 10 * math.log10(1 / ((a - b) ** 2).mean().item())


@pytest.mark.parametrize("style", STYLES)
def test_files_hold_the_models_own_strings_and_refined_ones_decode_with_its_decompress(style):
    codec, x = codec_of(style), sample_crop(SIZE, top=100, left=100)
    assert isinstance(codec, CompressAIContext if style == "invertible" else ForwardCodec)
    base = LatentRefiner(codec, "base").refine(x)
    assert codec.compress(base.y_hat, base.z_hat) == own_compress(codec, style, x)
    result = LatentRefiner(codec, "ssl", iterations=30, check_every=10, lr=2e-2).refine(x)
    assert result.best.loss[0] < result.base.loss[0]
    [stream] = encode(codec, result.y_hat, result.z_hat, (SIZE, SIZE))
    x_hat, _ = decode(stream, lambda model_id: codec)
    assert abs(psnr(x_hat, x) - result.best.psnr[0]) <= 1e-3


def test_a_reconstruction_outside_0_1_is_compared_like_for_like():
    """Neither the forward nor decompress clamps, and the reconstruction leaves [0, 1]: the probe takes it."""
    codec, x = codec_of("unclamped"), sample_crop(SIZE, top=100, left=100)
    with torch.no_grad():
        out = codec.model.compress(x)
        x_hat = codec.model.decompress(out["strings"], out["shape"])["x_hat"]
    assert x_hat.min() < 0 or x_hat.max() > 1


def relaxed_step(codec, x):
    refiner = LatentRefiner(codec, "ssl", iterations=1)
    batch = refiner._start(x)
    z_hat = refiner._relaxed(batch.z, codec.z_offsets(), TAU, torch.tensor(3))
    y_hat, entropy, _ = codec.y_latents(batch.y, z_hat, lambda v, o, stream=0: refiner._relaxed(
        v, o, TAU, torch.tensor(5), stream))
    return batch, z_hat, y_hat, entropy


def test_a_helper_objects_straight_through_method_gives_the_likelihoods_sample_with_its_gradient(monkeypatch):
    """The decoder's y (the helper's straight-through rounding of y - means, plus the means) is the entropy model's
    relaxed sample, and its derivative with respect to y is the sample's (not the identity's 1); the helper's
    rounding of z keeps the refiner's z sample."""
    codec, x = codec_of("helper-ste"), sample_crop(SIZE, top=100, left=100)
    rounded, quantize, decoder, samples = [], Quantizer.quantize, [], []

    def spy(self, value, mode):
        rounded.append(quantize(self, value, mode))
        return rounded[-1]
    monkeypatch.setattr(Quantizer, "quantize", spy)
    hooks = [codec.model.g_s.register_forward_pre_hook(lambda module, args: decoder.append(args[0])),
             codec.model.gaussian_conditional.register_forward_hook(lambda m, args, out: samples.append(out[0]))]
    try:
        batch, z_hat, y_hat, _ = relaxed_step(codec, x)
    finally:
        for hook in hooks:
            hook.remove()
    z_path = rounded[-2]  # the relaxed pass's (the hard passes finding y and z come first)
    assert torch.allclose(z_path + codec.z_offsets(), z_hat, atol=1e-5)
    assert torch.equal(samples[-1].detach(), y_hat) and torch.allclose(decoder[-1], y_hat, atol=1e-5)
    assert (y_hat - y_hat.round()).abs().max() > 0.1  # relaxed, not on a grid
    [through_path] = torch.autograd.grad(decoder[-1].sum(), batch.y, retain_graph=True)
    [through_sample] = torch.autograd.grad(samples[-1].sum(), batch.y, retain_graph=True)
    assert torch.allclose(through_path, through_sample, atol=1e-6)
    assert (through_sample != 0).float().mean() > 0.5 and (through_sample != 1).all()


@pytest.mark.parametrize("style", ["own-entropy-model", "quality-map"])
def test_the_gradient_reaches_y_through_the_rate_and_the_reconstruction(style):
    codec, x = codec_of(style), sample_crop(SIZE, top=100, left=100)
    assert codec.inline_analysis == (style == "quality-map")
    batch, z_hat, y_hat, entropy = relaxed_step(codec, x)
    assert (y_hat - y_hat.round()).abs().max() > 0.1
    rate = codec.bits(y_hat, z_hat, entropy).sum()
    distortion = ((entropy.x_hat - x) ** 2).sum()
    for loss in (rate, distortion):
        [grad] = torch.autograd.grad(loss, batch.y, retain_graph=True)
        assert grad.abs().sum() > 0


class OwnAnalysisScaleHyperprior(ScaleHyperprior):
    """A scale hyperprior (h_a takes |y|, not y) with its own analysis and synthesis methods: refused."""

    def __init__(self):
        super().__init__(16, 32)
        self.analysis_layers, self.synthesis_layers = self.g_a, self.g_s
        self.g_a = self.g_s = None


def test_a_subclass_whose_transforms_cannot_be_found_is_refused_in_one_line_and_the_advice_works():
    model = OwnAnalysisScaleHyperprior()
    with pytest.raises(ModelError, match="give it g_a and g_s modules") as refused:
        sgaplus.codec_for(model, lmbda=0.01)
    assert "\n" not in str(refused.value)
    model.g_a, model.g_s = model.analysis_layers, model.synthesis_layers  # the advice
    codec = sgaplus.codec_for(model, lmbda=0.01)
    assert codec.transforms is None and codec.analysis(torch.zeros(1, 3, 64, 64)).shape == (1, 32, 4, 4)


def test_calls_for_a_model_with_an_adapter_of_its_class_is_refused_in_one_line_and_the_advice_works():
    model = codec_of("invertible").model
    with pytest.raises(UsageError, match="leave calls out") as refused:
        sgaplus.codec_for(model, lmbda=0.01, calls=MAP_CALLS)
    assert "\n" not in str(refused.value)
    assert isinstance(sgaplus.codec_for(model, lmbda=0.01), CompressAIContext)


@pytest.mark.parametrize("style", [style for style in STYLES if style not in CALLS])
def test_each_idiom_refines_under_sgaplus_patch_with_no_adapter_code(style):
    """The idioms whose compress takes the image alone, through sgaplus.patch (what `sgaplus run` and an evaluation
    script use): unrefined, the model's own strings; refined, other strings its own decompress reads to a lower
    loss (patch checks each decoded string before returning it)."""
    model, x = codec_of(style).model, sample_crop(SIZE, top=100, left=100)
    with torch.no_grad():
        own = model.compress(x)
        with sgaplus.patch(model, lmbda=0.01, iterations=0):
            assert model.compress(x)["strings"] == own["strings"]
        with sgaplus.patch(model, lmbda=0.01, iterations=30, check_every=10, lr=2e-2):
            refined = model.compress(x)
        losses = []
        for out in (own, refined):
            x_hat = model.decompress(out["strings"], out["shape"])["x_hat"].clamp(0, 1)
            bits = sum(len(s[0]) for s in out["strings"]) * 8
            losses.append(0.01 * 255 ** 2 * ((x_hat - x) ** 2).mean().item() + bits / SIZE ** 2)
    assert refined["strings"] != own["strings"] and losses[1] < losses[0], losses

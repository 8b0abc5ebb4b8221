"""The generic adapter (sgaplus.codec_for on a model that is not one of CompressAI's classes): models written as
published codecs are (tests/published_models.py) refine through their own forward, write the strings their own
compress writes, and decode with their own decompress; the relaxation feeds one sample to the rate and the decoder;
models it cannot refine correctly are refused in one line before any work."""
import math

import pytest
import torch
from helpers import bundled_codec, sample_crop, trained_published
from published_models import (
    ChannelConditional,
    DecoderUnlikeForward,
    HiddenRounding,
    MeanScale,
    OwnStraightThrough,
    RasterScan,
    RateUnlikeForward,
)

import sgaplus
from sgaplus.codecs.forward import ForwardCodec, UnsupportedModel
from sgaplus.files.bitstream import decode, encode
from sgaplus.refine.refiner import LatentRefiner

STYLES = {"channel-conditional": ChannelConditional, "own-ste": OwnStraightThrough, "mean-scale": MeanScale}
SIZE = 128


def codec_of(style):
    return sgaplus.codec_for(trained_published(STYLES[style].__name__), lmbda=0.01)


def psnr(a, b):
    return 10 * math.log10(1 / ((a - b) ** 2).mean().item())


@pytest.mark.parametrize("style", STYLES)
def test_codec_for_takes_the_model_through_the_generic_adapter(style):
    codec = codec_of(style)
    assert isinstance(codec, ForwardCodec)
    assert codec.model_id.startswith(f"class:published_models.{STYLES[style].__name__}:")
    assert codec.strings_per_image == {"channel-conditional": 5, "own-ste": 3, "mean-scale": 2}[style]


@pytest.mark.parametrize("style", STYLES)
def test_unrefined_files_hold_the_models_own_strings(style):
    codec, x = codec_of(style), sample_crop(SIZE, top=100, left=100)
    result = LatentRefiner(codec, "base").refine(x)
    with torch.no_grad():
        out = codec.model.compress(x)
        theirs = codec.model.decompress(out["strings"], out["shape"])["x_hat"]
    assert codec.compress(result.y_hat, result.z_hat) == [[strings[0] for strings in out["strings"]]]
    [stream] = encode(codec, result.y_hat, result.z_hat, (SIZE, SIZE))
    x_hat, _ = decode(stream, lambda model_id: codec)
    assert torch.equal(x_hat, theirs)


@pytest.mark.parametrize("style", STYLES)
def test_refined_files_decode_with_the_models_own_decompress(style):
    codec, x = codec_of(style), sample_crop(SIZE, top=100, left=100)
    result = LatentRefiner(codec, "ssl", iterations=30, check_every=10, lr=2e-2).refine(x)
    assert result.best.loss[0] < result.base.loss[0]
    files = {}
    base = LatentRefiner(codec, "base").refine(x)
    for name, latents in (("base", base), ("refined", result)):
        [stream] = encode(codec, latents.y_hat, latents.z_hat, (SIZE, SIZE))
        x_hat, _ = decode(stream, lambda model_id: codec)
        files[name] = (8 * len(stream) / SIZE ** 2, x_hat)
    bpp, x_hat = files["refined"]
    assert abs(psnr(x_hat, x) - result.best.psnr[0]) <= 1e-3
    strings = codec.compress(result.y_hat, result.z_hat)[0]
    bits = 8 * sum(map(len, strings))
    assert abs(bits - result.best.bpp[0] * SIZE ** 2) <= 0.1 * bits + 64 * len(strings)
    rd = {name: 0.01 * 255 ** 2 * ((x_hat - x) ** 2).mean().item() + bpp for name, (bpp, x_hat) in files.items()}
    assert rd["refined"] < rd["base"], rd


def test_one_relaxed_sample_feeds_the_likelihoods_and_the_decoder(monkeypatch):
    """In a relaxed step the decoder's latents (what the latent residual prediction is added to) are the samples
    the likelihoods are computed on, relaxed (not integers around their means), and the gradient reaches y through
    both the rate and the distortion."""
    codec = codec_of("channel-conditional")
    x = sample_crop(SIZE, top=100, left=100)
    refiner = LatentRefiner(codec, "ssl", iterations=1)
    batch = refiner._start(x)
    decoder_latents, residual = [], ChannelConditional.with_residual

    def spy(model, i, means, decoded, y_hat_slice):
        decoder_latents.append(y_hat_slice)
        return residual(model, i, means, decoded, y_hat_slice)

    monkeypatch.setattr(ChannelConditional, "with_residual", spy)
    z_hat = refiner._relaxed(batch.z, codec.z_offsets(), 0.5, torch.tensor(3))
    y_hat, entropy, _ = codec.y_latents(batch.y, z_hat, lambda v, o, stream=0: refiner._relaxed(
        v, o, 0.5, torch.tensor(5), stream))
    assert len(decoder_latents) == 4
    for decoder, likelihood_input in zip(decoder_latents, y_hat.chunk(4, 1)):
        assert torch.allclose(decoder, likelihood_input, atol=1e-5)
    assert not torch.equal(y_hat, codec.encoder_y(batch.y, torch.round(z_hat))[0])  # relaxed, not hard
    rate = codec.bits(y_hat, z_hat, entropy).sum()
    distortion = ((entropy.x_hat - x) ** 2).sum()
    for loss in (rate, distortion):
        [grad] = torch.autograd.grad(loss, batch.y, retain_graph=True)
        assert grad.abs().sum() > 0


@pytest.mark.parametrize("architecture", ["mbt2018-mean"])
def test_the_generic_adapter_agrees_with_the_dedicated_one(architecture):
    dedicated = bundled_codec(architecture=architecture)
    generic = ForwardCodec(dedicated.model, "generic", dedicated.lmbda)
    x = sample_crop(SIZE, top=100, left=100)
    ours = {codec.model_id: LatentRefiner(codec, "base").refine(x) for codec in (dedicated, generic)}
    base, forced = ours[dedicated.model_id], ours["generic"]
    assert forced.base.loss[0] == pytest.approx(base.base.loss[0], rel=1e-6)
    assert generic.compress(forced.y_hat, forced.z_hat) == dedicated.compress(base.y_hat, base.z_hat)
    refined = [LatentRefiner(codec, "ssl", iterations=20, check_every=10, seed=2).refine(x).best.loss[0]
               for codec in (dedicated, generic)]
    assert refined[1] == pytest.approx(refined[0], rel=5e-3)


@pytest.mark.parametrize("model,message", [
    (DecoderUnlikeForward, "decodes to an image up to"),
    (RasterScan, "decodes to an image up to"),
    (RateUnlikeForward, "more than the"),
])
def test_models_it_cannot_refine_are_refused_before_any_work(model, message):
    torch.manual_seed(0)
    with pytest.raises(UnsupportedModel, match=message):
        ForwardCodec(model().eval(), "refused", lmbda=0.01)


def test_a_plain_torch_round_in_the_forward_is_relaxed_with_the_others():
    codec = ForwardCodec(HiddenRounding().eval(), "rounds-itself", lmbda=0.01)
    x = sample_crop(64, top=100, left=100)
    result = LatentRefiner(codec, "ssl", iterations=1).refine(x)
    assert result.best.loss[0] <= result.base.loss[0]


class NoHyperAnalysis(MeanScale):
    """Its hyper-analysis under another name: z is found where the forward produces it all the same."""

    def __init__(self):
        super().__init__()
        self.hyper_analysis = self.h_a
        del self.h_a

    def forward(self, x):
        y = self.g_a(x)
        z_hat, z_likelihoods = self.entropy_bottleneck(self.hyper_analysis(y))
        scales, means = self.h_s(z_hat).chunk(2, 1)
        y_hat, y_likelihoods = self.gaussian_conditional(y, scales, means=means)
        return {"x_hat": self.g_s(y_hat), "likelihoods": {"y": y_likelihoods, "z": z_likelihoods}}

    def compress(self, x):
        y = self.g_a(x)
        z = self.hyper_analysis(y)
        z_strings = self.entropy_bottleneck.compress(z)
        z_hat = self.entropy_bottleneck.decompress(z_strings, z.size()[-2:])
        scales, means = self.h_s(z_hat).chunk(2, 1)
        indexes = self.gaussian_conditional.build_indexes(scales)
        return {"strings": [self.gaussian_conditional.compress(y, indexes, means=means), z_strings],
                "shape": z.size()[-2:]}


def test_a_model_without_h_a_refines_and_codec_for_sends_latent_codec_models_to_their_adapter():
    torch.manual_seed(0)
    codec, x = ForwardCodec(NoHyperAnalysis().eval(), "no-h_a", 0.01), sample_crop(64, top=100, left=100)
    assert codec.forward_slots.z_op is not None and codec.h_a is None
    base = LatentRefiner(codec, "base").refine(x)
    with torch.no_grad():
        out = codec.model.compress(x)
    assert codec.compress(base.y_hat, base.z_hat) == [[strings[0] for strings in out["strings"]]]
    elic = bundled_codec(architecture="elic2022-chandelier")
    assert type(sgaplus.codec_for(elic.model, lmbda=elic.lmbda)) is type(elic)

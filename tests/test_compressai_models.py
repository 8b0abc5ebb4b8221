"""Every image model CompressAI registers, through sgaplus: unrefined latents code to exactly the strings
CompressAI's own compress writes; latent-codec models (ELIC, the checkerboard model, a user's composition) and the
variable-rate models refine into files the unchanged decoder reads; weights published as CompressAI state dicts
load; mistakes are one line each."""
import math

import pytest
import torch
import torch.nn as nn
from helpers import STAND_IN_LEVEL, bundled_codec, random_codec, random_model, sample_crop, train_briefly

from sgaplus.cli import main
from sgaplus.codecs import registry
from sgaplus.codecs.compressai import gaussian_bits
from sgaplus.codecs.vbr import VariableRateQuantizer
from sgaplus.files.bitstream import decode, encode
from sgaplus.files.checkpoints import CheckpointError, load_checkpoint, save_checkpoint
from sgaplus.files.loading import bundled_architectures, codec_for_id, load_codec
from sgaplus.refine.refiner import LatentRefiner

SIZE = (128, 192)  # a multiple of 64: CompressAI's compress takes the image as it is
LOADING_STEPS = 20  # stand-ins of tests about loading and coding weights, not about how well they fit


def image(size=SIZE, top=100, left=100):
    return sample_crop(size, top=top, left=left)


def codec_of(architecture):
    return bundled_codec(architecture=architecture) if architecture in bundled_architectures() else \
        random_codec(architecture)


def compressai_coding(codec, x, **rate):
    """(the strings, per image, that CompressAI's own compress writes for x, and its decompress of them)."""
    model = codec._cpu() if hasattr(codec, "_cpu") else codec.model
    with torch.no_grad():
        out = model.compress(x, **rate)
        x_hat = model.decompress(out["strings"], out["shape"], **rate)["x_hat"]
    return [[strings[i] for strings in out["strings"]] for i in range(x.shape[0])], x_hat


def rate_arguments(codec):
    return codec.rate.decoder_arguments() if codec.variable_rate else {}


def psnr(a, b):
    return 10 * math.log10(1 / ((a - b) ** 2).mean().item())


@pytest.mark.parametrize("architecture", registry.architectures())
def test_unrefined_latents_code_to_compressais_own_strings(architecture):
    """Iterations 0: sgaplus's file holds exactly the strings CompressAI's model.compress(x) writes (same bytes),
    and decodes to the image CompressAI's decompress makes of them. The strongest proof that the latents sgaplus
    optimizes are the ones coded."""
    codec = codec_of(architecture)
    x = image()
    result = LatentRefiner(codec, "base").refine(x)
    theirs, their_x_hat = compressai_coding(codec, x, **rate_arguments(codec))
    assert codec.compress(result.y_hat, result.z_hat) == theirs
    [stream] = encode(codec, result.y_hat, result.z_hat, SIZE)
    x_hat, _ = decode(stream, lambda model_id: codec)
    assert torch.equal(x_hat, their_x_hat)


def test_compressais_strings_differ_for_other_latents():
    """Negative control: the comparison above sees a one-step change of the latents."""
    codec = codec_of("elic2022-chandelier")
    x = image()
    result = LatentRefiner(codec, "base").refine(x)
    moved = result.y_hat.clone()
    moved[0, 0, 0, 0] += 1
    assert codec.compress(moved, result.z_hat) != compressai_coding(codec, x)[0]


@pytest.mark.parametrize("rate", [{"level": 2}, {"gain": 0.45}], ids=["level", "gain"])
@pytest.mark.parametrize("vr_z", [False, True], ids=["z-fixed-step", "z-variable-step"])
def test_variable_rate_strings_at_any_rate(rate, vr_z):
    """A variable-rate model at another level, at a gain between levels (CompressAI's inputscale), and with z coded
    at a rate-dependent step (as CompressAI's pretrained weights are): the same strings as its own compress."""
    adapter = registry.adapter("mbt2018-mean-vbr")
    codec = adapter(random_model("mbt2018-mean-vbr", vr_entbttlnck=vr_z), "x", **rate)
    x = image()
    result = LatentRefiner(codec, "base").refine(x)
    theirs, their_x_hat = compressai_coding(codec, x, **codec.rate.decoder_arguments())
    assert codec.compress(result.y_hat, result.z_hat) == theirs
    x_hat, _ = decode(encode(codec, result.y_hat, result.z_hat, SIZE)[0], lambda model_id: codec)
    assert torch.equal(x_hat, their_x_hat)


def test_the_relaxed_reconstruction_is_the_decoders_at_integers():
    """A variable-rate model's reconstruction sign(k)(|k| + o)/g + m (o = 0 where k = 0) at every integer, and
    linear between them: the relaxation's map agrees with the decoder where rounding is hard."""
    model = random_model("mbt2018-mean-vbr")
    gain = model.Gain[STAND_IN_LEVEL].detach().abs()
    quantizer = VariableRateQuantizer(lambda tensor: model, gain)
    k = torch.arange(-4.0, 5.0).reshape(1, 9, 1, 1)
    scales, means = torch.full_like(k, 0.7), torch.full_like(k, 0.3)
    with torch.no_grad():
        offsets = quantizer.offsets(scales)
        decoder = torch.sign(k) * (k.abs() + torch.where(k.abs() < 1e-4, 0, offsets)) * (1 / gain) + means
        assert torch.equal(quantizer.reconstruction(k, scales, means), decoder)
        assert offsets.abs().min() > 0  # the offsets matter here
        half = quantizer.reconstruction(k + 0.5, scales, means)
        ends = quantizer.reconstruction(k, scales, means), quantizer.reconstruction(k + 1, scales, means)
        assert torch.allclose(half, (ends[0] + ends[1]) / 2, atol=1e-6)
        assert torch.equal(quantizer.recovered_symbols(decoder, scales, means), k)


def composed_model(kind):
    """A user's own model, composed of CompressAI's latent codecs, of one of three kinds: y in two channel groups
    each with a checkerboard context ("checkerboard groups"); y with a raster-scan context ("raster scan"); both with
    z by a hyperprior; or y alone with an entropy bottleneck ("no hyperprior")."""
    from compressai.entropy_models import EntropyBottleneck
    from compressai.latent_codecs import (
        ChannelGroupsLatentCodec,
        CheckerboardLatentCodec,
        EntropyBottleneckLatentCodec,
        GaussianConditionalLatentCodec,
        HyperLatentCodec,
        HyperpriorLatentCodec,
        RasterScanLatentCodec,
    )
    from compressai.layers import CheckerboardMaskedConv2d, MaskedConv2d
    from compressai.models.base import SimpleVAECompressionModel

    def down(a, b):
        return nn.Conv2d(a, b, 5, stride=2, padding=2)

    def up(a, b):
        return nn.ConvTranspose2d(a, b, 5, stride=2, padding=2, output_padding=1)

    def checkerboard(side):
        return CheckerboardLatentCodec(latent_codec={"y": GaussianConditionalLatentCodec()},
                                       entropy_parameters=nn.Conv2d(32 + side, 32, 1),
                                       context_prediction=CheckerboardMaskedConv2d(16, 32, 5, padding=2))

    def y_codec():
        if kind == "raster scan":
            return RasterScanLatentCodec(GaussianConditionalLatentCodec().gaussian_conditional,
                                         nn.Conv2d(64 + 64, 64, 1), MaskedConv2d(32, 64, kernel_size=5, padding=2))
        return ChannelGroupsLatentCodec(groups=[16, 16], channel_context={"y1": nn.Conv2d(16, 32, 3, padding=1)},
                                        latent_codec={"y0": checkerboard(64), "y1": checkerboard(32 + 64)})

    class Composed(SimpleVAECompressionModel):
        def __init__(self):
            super().__init__()
            self.g_a = nn.Sequential(down(3, 32), nn.GELU(), down(32, 32), nn.GELU(), down(32, 32), nn.GELU(),
                                     down(32, 32))
            self.g_s = nn.Sequential(up(32, 32), nn.GELU(), up(32, 32), nn.GELU(), up(32, 32), nn.GELU(), up(32, 3))
            if kind == "no hyperprior":
                self.latent_codec = EntropyBottleneckLatentCodec(EntropyBottleneck(32))
                return
            hyper = HyperLatentCodec(EntropyBottleneck(32), nn.Sequential(down(32, 32), nn.GELU(), down(32, 32)),
                                     nn.Sequential(up(32, 64), nn.GELU(), up(64, 64)))
            self.latent_codec = HyperpriorLatentCodec({"y": y_codec(), "hyper": hyper})

    torch.manual_seed(0)
    return train_briefly(Composed(), 150)


@pytest.mark.parametrize("kind", ["checkerboard groups", "raster scan", "no hyperprior"])
def test_a_users_composed_model_refines_encodes_and_decodes(kind):
    """No adapter code: the registry finds the adapter by the model's class and the adapter walks its tree; the
    unrefined latents code to CompressAI's own strings, the refined ones to a file that decodes to them."""
    model = composed_model(kind)
    codec = registry.adapter_for_class(type(model))(model, "mine", 0.01)
    assert codec.context_model == (kind == "raster scan") and codec.has_z == (kind != "no hyperprior")
    x = image()
    base = LatentRefiner(codec, "base").refine(x)
    assert codec.compress(base.y_hat, base.z_hat) == compressai_coding(codec, x)[0]
    # the raster scan's loss first rises at this lr on this tiny model (with 0.8's noise: 65.0 -> 67.6 at step 20),
    # then falls below the base from step 40 on (62.2 at 60)
    iterations = 60 if codec.context_model else 30
    result = LatentRefiner(codec, "ssl", iterations=iterations, check_every=10, lr=2e-2).refine(x)
    assert result.best.loss[0] < result.base.loss[0]
    [stream] = encode(codec, result.y_hat, result.z_hat, SIZE)
    x_hat, _ = decode(stream, lambda model_id: codec)
    assert abs(psnr(x_hat, x) - result.best.psnr[0]) <= 1e-3
    if codec.context_model:
        assert max(entry["sweeps"] for entry in result.history) > 1  # the raster scan's fixed point ran


def test_a_latent_codec_sgaplus_cannot_walk_is_refused():
    from compressai.latent_codecs import GaussianConditionalLatentCodec
    from compressai.models.base import SimpleVAECompressionModel
    model = SimpleVAECompressionModel()
    model.g_a, model.g_s, model.latent_codec = nn.Identity(), nn.Identity(), GaussianConditionalLatentCodec()
    with pytest.raises(TypeError, match="without a hyperprior, y must be coded by an EntropyBottleneckLatentCodec"):
        registry.adapter_for_class(type(model))(model, "x")


def test_state_dicts_as_published_load_and_decode(tmp_path):
    """ELIC's weights as a plain CompressAI state dict (its channel groups read off the weights): --checkpoint FILE
    --model NAME refines into a file that decodes with the same file, and not with another."""
    path = tmp_path / "elic.pth.tar"
    torch.save({"state_dict": random_model("elic2022-chandelier", steps=LOADING_STEPS).state_dict()}, path)
    codec = load_codec("elic2022-chandelier", checkpoint=path)
    assert codec.model_id.startswith("file:elic2022-chandelier:") and codec.model.groups == [4, 4, 8, 8, 8]
    x = image()
    result = LatentRefiner(codec, "ssl", iterations=5, lmbda=0.01).refine(x)
    [stream] = encode(codec, result.y_hat, result.z_hat, SIZE)
    x_hat, model_id = decode(stream, lambda model_id: codec_for_id(model_id, path))
    assert abs(psnr(x_hat, x) - result.best.psnr[0]) <= 1e-3
    other = tmp_path / "other.pt"
    torch.save(random_model("elic2022-official", steps=0).state_dict(), other)
    with pytest.raises(CheckpointError, match="is not the checkpoint this bitstream was made with"):
        decode(stream, lambda model_id: codec_for_id(model_id, other))


def write_png(path, x):
    from PIL import Image
    Image.fromarray(x[0].mul(255).round().byte().permute(1, 2, 0).numpy()).save(path)


def one_line_error(capsys, argv, out):
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists() or not any(out.iterdir()), "nothing is written"
    return err


def test_mistakes_are_one_line_and_write_nothing(tmp_path, capsys):
    picture, out = tmp_path / "picture.png", tmp_path / "out"
    write_png(picture, image((64, 64)))
    weights = tmp_path / "mean.pt"
    torch.save(random_model("mbt2018-mean", steps=LOADING_STEPS).state_dict(), weights)
    refine = ["refine", str(picture), "--out", str(out), "--iterations", "1"]
    err = one_line_error(capsys, refine + ["--checkpoint", str(weights), "--model", "elic2022-chandelier"], out)
    assert "do not fit elic2022-chandelier" in err
    assert "zoo has no weights of elic2022-official" in one_line_error(capsys, refine + ["--model",
                                                                                        "elic2022-official"], out)
    vbr = tmp_path / "vbr.pt"
    torch.save(random_model("mbt2018-mean-vbr").state_dict(), vbr)
    err = one_line_error(capsys, refine + ["--checkpoint", str(vbr), "--model", "mbt2018-mean-vbr", "--level", "9"],
                         out)
    assert "levels 0 to 7; got 9" in err
    err = one_line_error(capsys, refine + ["--checkpoint", str(vbr), "--model", "mbt2018-mean-vbr", "--gain", "7"],
                         out)
    assert "the gain must lie within the model's gains" in err
    assert "codes at one rate" in one_line_error(capsys, refine + ["--level", "2"], out)


def test_an_elic_file_decoded_with_another_model_is_one_line(tmp_path, capsys):
    elic, other = tmp_path / "elic.pt", tmp_path / "other.pt"
    save_checkpoint(random_model("elic2022-chandelier", steps=LOADING_STEPS), elic, "elic2022-chandelier", 32, 32,
                    {"lmbda": 0.01}, {"groups": [4, 4, 8, 8, 8]})
    save_checkpoint(random_model("mbt2018-mean", steps=LOADING_STEPS), other, "mbt2018-mean", 32, 32, {"lmbda": 0.01})
    picture, out = tmp_path / "picture.png", tmp_path / "out"
    write_png(picture, image((64, 64)))
    assert main(["refine", str(picture), "--checkpoint", str(elic), "--iterations", "2", "--out", str(out)]) == 0
    capsys.readouterr()
    target = tmp_path / "decoded.png"
    assert main(["decode", str(out / "picture.bin"), "--checkpoint", str(other), "--out", str(target)]) == 1
    err = capsys.readouterr().err
    assert "is not the checkpoint this bitstream was made with" in err and err.count("\n") == 1
    assert not target.exists()
    assert main(["decode", str(out / "picture.bin"), "--checkpoint", str(elic), "--out", str(target)]) == 0


def test_a_variable_rate_model_starts_from_the_level_nearest_the_target(tmp_path, capsys):
    """--target-bpp with a variable-rate model and no --level: the level whose own file is nearest; --lmbda: the
    level whose training lambda is nearest; the chosen rate is in the model id of the file."""
    vbr = tmp_path / "vbr.pt"
    torch.save(random_model("mbt2018-mean-vbr").state_dict(), vbr)
    picture = tmp_path / "picture.png"
    write_png(picture, image((64, 64)))
    codec = load_codec("mbt2018-mean-vbr", checkpoint=vbr, level=0)
    low = LatentRefiner(codec, "base").refine(image((64, 64)))
    [stream] = encode(codec, low.y_hat, low.z_hat, (64, 64))
    target = 8 * len(stream) / 64 ** 2
    base = ["refine", str(picture), "--checkpoint", str(vbr), "--model", "mbt2018-mean-vbr", "--iterations", "2"]
    assert main(base + ["--target-bpp", f"{target:.4f}", "--out", str(tmp_path / "a")]) == 0
    assert "starting from level 0, the nearest to the target" in capsys.readouterr().err
    assert main(base + ["--lmbda", "0.18", "--out", str(tmp_path / "b")]) == 0
    assert "starting from level 7, the nearest to the lambda" in capsys.readouterr().err
    assert decode((tmp_path / "b" / "picture.bin").read_bytes(), lambda model_id: codec_for_id(model_id, vbr))[1] \
        .endswith(":level7")


def test_rate_options_are_checked():
    model, adapter = random_model("mbt2018-vbr"), registry.adapter("mbt2018-vbr")
    for bad in ({"level": -1}, {"level": 8}, {"level": True}, {"gain": 0.01}, {"level": 1, "gain": 0.5}):
        with pytest.raises(ValueError):
            adapter(model, "x", **bad)
    assert adapter(model, "x", level=3).model_id == "x:level3"
    assert adapter(model, "x", gain=0.5).model_id == "x:gain0.5"


def test_a_half_size_checkpoint_keeps_its_buffers_and_bounded_likelihoods(tmp_path):
    """Weights stored at half size keep the buffers exact: a float16 likelihood bound of 1e-9 is 0, and the relaxed
    rate of a latent far in the tail was then infinite (it stopped a bundled ELIC refinement at step 289)."""
    model = random_model("mbt2018-mean", steps=0)
    save_checkpoint(model, tmp_path / "half.pt", "mbt2018-mean", 32, 32, {"lmbda": 0.013}, half=True)
    stored = torch.load(tmp_path / "half.pt", weights_only=True)["state_dict"]
    parameters = {name for name, _ in model.named_parameters()}
    assert all((value.dtype == torch.float16) == (key in parameters) for key, value in stored.items()
               if value.is_floating_point())
    loaded, _ = load_checkpoint(tmp_path / "half.pt")
    far = torch.full((1, 1, 2, 2), 1e4)  # a latent whose likelihood underflows to 0 before the bound
    assert torch.isfinite(gaussian_bits(loaded.gaussian_conditional, far, torch.ones_like(far), torch.zeros_like(far)))
    for architecture in bundled_architectures():  # the shipped files, the ELIC's at half size among them
        bounds = [module.bound for module in load_codec(bundled=architecture).model.modules()
                  if type(module).__name__ == "LowerBound"]
        assert bounds and all(bound.item() > 0 for bound in bounds), architecture

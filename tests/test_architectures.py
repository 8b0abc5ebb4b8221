"""Every CompressAI image architecture: refine, encode, decode; the context models' exact encoder latents; and the
one-line errors when architectures, checkpoints or bitstreams are mixed up."""
import math

import pytest
import torch
from helpers import bundled_codec, random_codec, sample_crop

from sgaplus.cli import main
from sgaplus.codecs import fixed_point, registry
from sgaplus.decoded_files import DECODE_TOLERANCE
from sgaplus.files.bitstream import decode, encode, pack
from sgaplus.files.checkpoints import CheckpointError, load_checkpoint, save_checkpoint
from sgaplus.files.loading import bundled_architectures, codec_for_id
from sgaplus.refine.refiner import LatentRefiner

ARCHITECTURES = registry.architectures()


def test_every_compressai_image_model_is_registered():
    """The refinable architectures are CompressAI's registered models less its point-cloud and video ones."""
    from compressai.registry import MODELS
    from compressai.zoo.image import cfgs
    not_images = {name for name, cls in MODELS.items() if ".pointcloud." in cls.__module__ or
                  ".video." in cls.__module__}
    assert set(ARCHITECTURES) == set(MODELS) - not_images and len(ARCHITECTURES) == 13
    assert set(cfgs) < set(ARCHITECTURES) and {"elic2022-official", "elic2022-chandelier",
                                                "cheng2020-anchor-checkerboard", "mbt2018-vbr"} < set(ARCHITECTURES)
    assert not not_images & set(ARCHITECTURES) and {"ssf2020", "hrtzxf2022-pcc-rec"} <= not_images


def codec_of(architecture):
    """The bundled model of the architecture, or a random-weight one where none is bundled."""
    if architecture in bundled_architectures():
        return bundled_codec(architecture=architecture), 192
    return random_codec(architecture), 128


def psnr(a, b):
    return 10 * math.log10(1 / ((a - b) ** 2).mean().item())


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_refine_encode_decode(architecture):
    """Two same-size images refined as one batch: a few SSL steps lower the true loss; their latents encoded in the
    batch and alone give the same bytes; each file decodes (CompressAI's own decompress) to the refined
    reconstruction; its size is the entropy models' estimate."""
    codec, size = codec_of(architecture)
    x = torch.cat([sample_crop(size, top=100, left=100), sample_crop(size, "coffee", top=100, left=100)])
    result = LatentRefiner(codec, "ssl", iterations=20, check_every=10, lr=2e-2).refine(x)
    assert all(best < base for best, base in zip(result.best.loss, result.base.loss))
    streams = encode(codec, result.y_hat, result.z_hat, (size, size))
    for i, stream in enumerate(streams):
        z_hat = None if result.z_hat is None else result.z_hat[i:i + 1]
        assert encode(codec, result.y_hat[i:i + 1], z_hat, (size, size)) == [stream]
        x_hat, _ = decode(stream, codec_for_id=lambda model_id: codec)
        assert (x_hat - result.x_hat[i:i + 1]).abs().max() <= DECODE_TOLERANCE
        assert abs(psnr(x_hat, x[i:i + 1]) - result.best.psnr[i]) <= 1e-3
        # the entropy coder's strings against the estimate, allowing each string's flush (64 bits) and 5% (a
        # briefly trained stand-in, which codes a few thousand bits: 10%, its scales fit its latents loosely, and
        # the coder quantizes them to a table while the estimate uses them as they are)
        strings = codec.compress(result.y_hat[i:i + 1], z_hat)[0]
        bits, share = 8 * sum(map(len, strings)), 0.05 if architecture in bundled_architectures() else 0.1
        assert abs(bits - result.best.bpp[i] * size ** 2) <= share * bits + 64 * len(strings)


def context_states(codec, crops):
    """(y, z_hat) pairs of several images at several refinement states: the analysis, refined latents (hard and
    continuous), and refined latents moved by noise."""
    states = []
    for x in crops:
        with torch.no_grad():
            y = codec.analysis(x)
            z_hat = torch.round(codec.hyper_analysis(y) - codec.z_offsets()) + codec.z_offsets()
        states.append((y, z_hat))
        result = LatentRefiner(codec, "ssl", iterations=20, check_every=20, lr=2e-2).refine(x)
        states.append((result.y_hat, result.z_hat))
        generator = torch.Generator().manual_seed(len(states))
        states.append((result.y_hat + 0.4 * torch.randn(result.y_hat.shape, generator=generator), result.z_hat))
    return states


CONTEXT_ARCHITECTURES = [a for a in ARCHITECTURES if registry.adapter(a).context_model]


def serial_reference(codec, y, z_hat):
    """The serial encoder's y_hat and symbols (1, M, H, W)."""
    with torch.no_grad():
        serial, symbols, _ = codec.serial_y(y, codec.hyper_synthesis(z_hat, y.shape))
    return serial, symbols.T.reshape(y.shape)


def amplification(codec, y_hat, z_hat, relative=1e-5):
    """How far the decoder's values of y_hat's symbols move when h_s(z_hat) moves by `relative` (noise): about that
    much on a well-conditioned context; far more where the context's gain amplifies float rounding."""
    hyper = codec.hyper_synthesis(z_hat, y_hat.shape)
    noise = torch.randn(hyper.shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        moved = codec.serial_y(y_hat, hyper * (1 + relative * noise), hard=True)[0]
    return (moved - y_hat).abs().max().item()


@pytest.mark.parametrize("architecture", CONTEXT_ARCHITECTURES)
def test_parallel_encoder_latents_are_the_serial_encoders(architecture, record_property):
    """On a well-conditioned context, the fixed point of the parallel sweeps has exactly the symbols of the serial
    encoder (the decoder's operations, position by position), for several images and refinement states; the sweeps
    are reported. A state whose context amplifies float rounding (a briefly trained stand-in can: the two
    computations then part, and which is right depends on the machine) gets the serial encoder's symbols from the
    exact encoder, which the refiner then uses (test_refine_checks_exactly_where_the_context_amplifies_rounding).
    Negative control: one parallel sweep (no fixed point) does not have them."""
    codec, size = codec_of(architecture)
    size = min(size, 128)  # the serial reference is slow
    crops = [sample_crop(size, top=top, left=left) for top, left in ((0, 0), (200, 180), (300, 50))]
    sweeps, one_sweep_differs, amplified = [], [], []
    for y, z_hat in context_states(codec, crops):
        serial, serial_symbols = serial_reference(codec, y, z_hat)
        with torch.no_grad():
            hyper = codec.hyper_synthesis(z_hat, y.shape)
            y_hat, _, _, count = codec.encoder_y(y, z_hat)
            symbols = codec.symbols(y, *codec.gaussian_parameters(hyper, y_hat))[0]
            one_sweep_symbols = codec.symbols(y, *codec.gaussian_parameters(hyper, y))[0]
            exact = codec.encoder_y(y, z_hat, exact=True)[0]
        assert torch.equal(exact, serial)
        amplified.append(amplification(codec, serial, z_hat) > fixed_point.DECODER_DRIFT_TOLERANCE)
        assert count <= fixed_point.MAX_SWEEPS, "it fell back to serial: the parallel path was not tested"
        if not amplified[-1]:
            assert torch.equal(symbols, serial_symbols)
            assert (y_hat - serial).abs().max() <= fixed_point.SWEEP_TOLERANCE
        one_sweep_differs.append(not torch.equal(one_sweep_symbols, serial_symbols))
        sweeps.append(count)
    assert any(one_sweep_differs)
    if architecture in bundled_architectures():  # trained models are well-conditioned
        assert not any(amplified)
    record_property("fixed_point_sweeps", sweeps)
    print(f"{architecture}: fixed-point sweeps per state {sweeps}, amplifying states {amplified}")


def test_encoder_latents_fall_back_to_serial(monkeypatch):
    """Without convergence in MAX_SWEEPS sweeps, the serial computation gives the hard latents, bit for bit."""
    codec, _ = codec_of("mbt2018")
    [(y, z_hat)] = context_states(codec, [sample_crop(64)])[:1]
    monkeypatch.setattr(fixed_point, "MAX_SWEEPS", 1)
    with torch.no_grad():
        y_hat, _, _, count = codec.encoder_y(y, z_hat)
    assert count == 2
    assert torch.equal(y_hat, serial_reference(codec, y, z_hat)[0])


@pytest.mark.parametrize("drifts", [False, True])
def test_refine_checks_exactly_where_the_context_amplifies_rounding(monkeypatch, drifts):
    """A context model's base check is the serial encoder's (what CompressAI's compress writes). Where the parallel
    fixed point parts from it by more than DECODER_DRIFT_TOLERANCE (planted: its y_hat moved by 2e-3 at one
    place), every later check is computed as the decoder computes (0 sweeps), so the refined latents are the
    decoder's own values; otherwise the later checks are the fixed point's (its sweeps)."""
    codec = bundled_codec(architecture="mbt2018")
    if drifts:
        original = fixed_point.causal_fixed_point

        def drifting(*args, **kwargs):
            y_hat, *rest = original(*args, **kwargs)
            return (y_hat.clone().index_put_((torch.tensor([0]),) * 4, torch.tensor(2e-3), accumulate=True), *rest)
        monkeypatch.setattr("sgaplus.codecs.context.causal_fixed_point", drifting)
    x = sample_crop(64)
    result = LatentRefiner(codec, "ssl", iterations=10, check_every=5, lr=2e-2).refine(x)
    sweeps = [entry["sweeps"] for entry in result.history]
    assert sweeps[0] == 0 and (all(s == 0 for s in sweeps) if drifts else all(s > 0 for s in sweeps[1:]))
    with torch.no_grad():
        serial = codec.serial_y(result.y_hat, codec.hyper_synthesis(result.z_hat, result.y_hat.shape), hard=True)[0]
        y = codec.analysis(x)
        z_hat = torch.round(codec.hyper_analysis(y) - codec.z_offsets()) + codec.z_offsets()
    assert (serial - result.y_hat).abs().max() <= (0 if drifts else fixed_point.DECODER_DRIFT_TOLERANCE)
    unrefined = LatentRefiner(codec, "ssl", iterations=0).refine(x)
    assert torch.equal(unrefined.y_hat, serial_reference(codec, y, z_hat)[0])


def test_a_model_of_one_architecture_is_refused_by_another_adapter():
    from compressai.models import JointAutoregressiveHierarchicalPriors, MeanScaleHyperprior
    with pytest.raises(TypeError, match="JointAutoregressiveHierarchicalPriors"):
        registry.adapter("mbt2018-mean")(JointAutoregressiveHierarchicalPriors(32, 32), "x")
    with pytest.raises(TypeError, match="expected a CompressAI JointAutoregressiveHierarchicalPriors"):
        registry.adapter("mbt2018")(MeanScaleHyperprior(32, 32), "x")


def test_a_checkpoint_labelled_with_another_architecture_gets_one_line(tmp_path, capsys):
    from compressai.models import MeanScaleHyperprior
    path = tmp_path / "relabelled.pt"
    save_checkpoint(MeanScaleHyperprior(32, 48), path, "mbt2018", 32, 48, {"lmbda": 0.01})
    with pytest.raises(CheckpointError, match="weights do not fit mbt2018"):
        load_checkpoint(path)
    assert main(["refine", str(path), "--checkpoint", str(path), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_a_bitstream_decoded_with_another_codec_gets_one_line(tmp_path, capsys):
    """A file made with one checkpoint and decoded with another; a header relabelled to a codec that writes
    another number of strings; a bundled model id of an earlier sgaplus or of other weights."""
    from compressai.models import FactorizedPrior, JointAutoregressiveHierarchicalPriors
    files = {}
    for name, model, architecture in (("context", JointAutoregressiveHierarchicalPriors(32, 32), "mbt2018"),
                                      ("factorized", FactorizedPrior(32, 32), "bmshj2018-factorized")):
        files[name] = tmp_path / f"{name}.pt"
        save_checkpoint(model, files[name], architecture, 32, 32, {"lmbda": 0.01})
    image = tmp_path / "image.png"
    from PIL import Image
    Image.fromarray(sample_crop(64)[0].mul(255).round().byte().permute(1, 2, 0).numpy()).save(image)
    out = tmp_path / "out"
    assert main(["refine", str(image), "--checkpoint", str(files["context"]), "--iterations", "2", "--out",
                 str(out)]) == 0
    capsys.readouterr()
    assert main(["decode", str(out / "image.bin"), "--checkpoint", str(files["factorized"]), "--out",
                 str(tmp_path / "x.png")]) == 1
    err = capsys.readouterr().err
    assert "is not the checkpoint this bitstream was made with" in err and err.count("\n") == 1
    factorized = load_checkpoint(files["factorized"])[0]
    codec = registry.adapter("bmshj2018-factorized")(factorized, "x")
    relabelled = pack("x", (64, 64), codec.z_size((64, 64)), [b"y", b"z"])
    from sgaplus.files.bitstream import BitstreamError
    with pytest.raises(BitstreamError, match="2 coded strings, x writes 1"):
        decode(relabelled, lambda model_id: codec)
    with pytest.raises(CheckpointError, match="earlier sgaplus"):
        codec_for_id("bundled:q3")
    real = bundled_codec().model_id
    with pytest.raises(CheckpointError, match="other weights of the bundled"):
        codec_for_id(real.rsplit(":", 1)[0] + ":01234567")
    with pytest.raises(CheckpointError, match="malformed model id"):
        codec_for_id("bundled:mbt2018-mean:qx:00")


@pytest.mark.parametrize("architecture", ["mbt2018", "cheng2020-anchor", "cheng2020-attn", "bmshj2018-factorized"])
def test_zoo_architectures_offline_get_one_line(tmp_path, capsys, monkeypatch, architecture):
    """No download in tests: the zoo loader is made to fail as it does offline."""
    import urllib.error

    import compressai.zoo

    def offline(**kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setitem(compressai.zoo.models, architecture, offline)
    image = tmp_path / "image.png"
    from PIL import Image
    Image.fromarray(sample_crop(64)[0].mul(255).round().byte().permute(1, 2, 0).numpy()).save(image)
    assert main(["refine", str(image), "--model", architecture, "--quality", "2", "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert f"could not fetch CompressAI's {architecture} q2 weights" in err and err.count("\n") == 1


@pytest.mark.parametrize("architecture", ["bmshj2018-factorized", "mbt2018"])
def test_images_leave_the_batch_without_z_and_with_a_context(architecture):
    """Early stopping drops rows of y (no z) or of a context model's state; each image keeps its best latents,
    which are the encoder's (the file decodes to the reported reconstruction)."""
    from sgaplus.refine.stopping import EarlyStopping
    codec, _ = codec_of(architecture)
    x = torch.cat([sample_crop(64, top=0, left=0), sample_crop(64, top=250, left=200)])
    result = LatentRefiner(codec, "ssl", iterations=60, check_every=5, lr=2e-2,
                           early_stopping=EarlyStopping(patience=1, min_delta=0.5)).refine(x)
    assert all(step is not None for step in result.stopped_step)
    for i, stream in enumerate(encode(codec, result.y_hat, result.z_hat, (64, 64))):
        x_hat, _ = decode(stream, codec_for_id=lambda model_id: codec)
        assert abs(psnr(x_hat, x[i:i + 1]) - result.best.psnr[i]) <= 1e-3

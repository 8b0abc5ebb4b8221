"""Every file decodes to what is reported: each image is coded alone, as its decoder decodes it (a batch's entropy
parameters can differ in the last bits and put a scale on the other side of a boundary of the coder's table), and
every file sgaplus writes is decoded before its figures are reported; a file that decodes to another image is a
one-line error naming it."""
import json
import math

import pytest
import torch
from helpers import bundled_codec, sample_crop

from sgaplus import pipeline
from sgaplus.cli import main
from sgaplus.codecs.base import round_around
from sgaplus.decoded_files import DECODE_TOLERANCE
from sgaplus.files.bitstream import decode, encode
from sgaplus.files.images import read_rgb, write_png
from sgaplus.refine import memory
from sgaplus.refine.refiner import LatentRefiner

BATCH_DRIFT = 4e-6  # how far the batch's scales are moved here: the size of the drift measured between a batch of two
# and one image on a CPU (3.8e-6 in a scale, docs/cli.md)


class BatchSensitive(torch.nn.Module):
    """h_s whose output, for a batch of more than one image, is moved by BATCH_DRIFT (relative): what a convolution's
    last bits can do between a batch and one image."""

    def __init__(self, h_s):
        super().__init__()
        self.h_s = h_s

    def forward(self, z_hat):
        params = self.h_s(z_hat)
        return params * (1 + BATCH_DRIFT) if z_hat.shape[0] > 1 else params


def crops(size=(128, 192)):
    return torch.cat([sample_crop(size, top=100, left=150), sample_crop(size, "coffee", top=100, left=150)])


@pytest.fixture
def codec_on_a_boundary():
    """The bundled mbt2018-mean at quality 1 with a batch-sensitive h_s, and a scale table one of whose boundaries
    lies between the first image's scale at one position computed alone and computed in a batch of two: the two
    computations give that position different table indexes. Its latents (y_hat, z_hat) of crops()."""
    codec = bundled_codec(quality=1)
    model, x = codec.model, crops()
    table = model.gaussian_conditional.scale_table.clone()
    with torch.no_grad():
        y = codec.analysis(x)
        z_hat = round_around(codec.hyper_analysis(y), codec.z_offsets())
        alone = codec.hyper_synthesis(z_hat[:1], y[:1].shape)[0]
        y_hat = round_around(y, codec.hyper_synthesis(z_hat, y.shape)[1])
    free = alone[(alone > 1.5 * table[0]) & (alone < table[-1] / 2)]  # away from the table's ends
    boundary = free[0].item() * (1 + BATCH_DRIFT / 2)
    nearest = (table - boundary).abs().argmin()
    table[nearest] = boundary  # the table stays sorted: its steps are far wider than the drift
    assert torch.all(table[1:] > table[:-1])
    original = model.h_s, model.gaussian_conditional.scale_table.clone()
    model.h_s = BatchSensitive(model.h_s)
    model.gaussian_conditional.update_scale_table(table, force=True)
    yield codec, y_hat, z_hat
    model.h_s = original[0]
    model.gaussian_conditional.update_scale_table(original[1], force=True)


def test_a_batch_is_encoded_image_by_image(codec_on_a_boundary):
    """On a scale sitting on a boundary of the coder's table, the batch's files are the files of each image coded
    alone, and each decodes to the synthesis of its latents. Negative control: coded with the batch's entropy
    parameters, as before, the first image's file decodes to another image."""
    codec, y_hat, z_hat = codec_on_a_boundary
    size = (128, 192)
    streams = encode(codec, y_hat, z_hat, size)
    with torch.no_grad():
        reconstruction = codec.synthesis(y_hat).clamp(0, 1)
    for i, stream in enumerate(streams):
        assert encode(codec, y_hat[i:i + 1], z_hat[i:i + 1], size) == [stream]
        assert (decode(stream, lambda model_id: codec)[0] - reconstruction[i:i + 1]).abs().max() <= DECODE_TOLERANCE
    model = codec.model  # the batch coded at once, as CompressAI's own compress codes it
    eb, gc = model.entropy_bottleneck, model.gaussian_conditional
    with torch.no_grad():
        scales, means = codec.hyper_synthesis(eb.decompress(eb.compress(z_hat), z_hat.shape[-2:]), y_hat.shape)
        batched = gc.compress(y_hat, gc.build_indexes(scales), means=means)
    assert batched[0] != codec.compress(y_hat, z_hat)[0][0]
    wrong = codec.decompress([batched[0], eb.compress(z_hat)[0]], z_hat.shape[-2:])
    gap = (wrong - reconstruction[:1]).abs().nan_to_num(nan=float("inf")).max()  # NaN: garbage decoded
    assert gap > 100 * DECODE_TOLERANCE


def test_a_file_that_decodes_to_another_image_is_an_error_naming_it(tmp_path, monkeypatch, capsys):
    """One scale index changed before coding (the encoder and the decoder disagree on one symbol's table): refine
    reports a one-line error naming the image, writes no file of it, and exits 1; evaluate likewise."""
    adapter = type(bundled_codec())
    compress_image = adapter.compress_image

    def one_index_off(self, y_hat, z_hat):  # the encoder's first scale index moved; the decoder's is not
        gc = self.model.gaussian_conditional
        build_indexes = gc.build_indexes

        def moved(scales):
            indexes = build_indexes(scales)
            indexes.view(-1)[0] = (indexes.view(-1)[0] + 7) % len(gc.scale_table)
            return indexes
        gc.build_indexes = moved
        try:
            return compress_image(self, y_hat, z_hat)
        finally:
            del gc.build_indexes

    path = tmp_path / "astronaut.png"
    write_png(path, sample_crop(64, top=100, left=100))
    monkeypatch.setattr(adapter, "compress_image", one_index_off)
    assert main(["refine", str(path), "--iterations", "2", "--out", str(tmp_path / "out")]) == 1
    error = capsys.readouterr().err.strip().splitlines()[-1]  # after the progress bar
    assert error.startswith("sgaplus: error: astronaut.png: its file decodes to an image up to")
    assert error.endswith("the file is not written")
    assert not list((tmp_path / "out").glob("astronaut.*"))
    evaluate = ["evaluate", str(path), "--qualities", "2", "3", "--iterations", "2", "--out", str(tmp_path / "ev")]
    assert main(evaluate) == 1
    assert "failed on q2 x astronaut.png: astronaut.base.bin: its file decodes to an image" in capsys.readouterr().err
    monkeypatch.setattr(adapter, "compress_image", compress_image)  # negative control: the same run succeeds
    assert main(["refine", str(path), "--iterations", "2", "--out", str(tmp_path / "fine")]) == 0


def decoded_psnr(path, codec, x):
    x_hat, _ = decode(path.read_bytes(), lambda model_id: codec)
    return 10 * math.log10(1 / ((x_hat - x) ** 2).mean().item())


def test_batched_refine_reports_what_its_files_decode_to(tmp_path, capsys, monkeypatch):
    """Three same-size images refined as one batch (as on a GPU; on a CPU each image refines alone): each row's file
    figures are those of its .bin decoded (PSNR to 1e-3 dB, bpp of its bytes, loss of both), and match the refiner's
    reconstruction."""
    monkeypatch.setattr(memory, "ONE_IMAGE_DEVICES", ())
    codec, paths = bundled_codec(), []
    for i, name in enumerate(("astronaut", "coffee", "astronaut")):
        paths.append(tmp_path / f"{name}{i}.png")
        write_png(paths[-1], sample_crop(64, name, top=60 + 40 * i, left=90))
    out = tmp_path / "out"
    assert main(["refine", *map(str, paths), "--iterations", "10", "--check-every", "5", "--out", str(out)]) == 0
    rows = json.loads((out / "metrics.json").read_text())["images"]
    for row, path in zip(rows, paths):
        stream = out / f"{path.stem}.bin"
        assert row["file"]["psnr"] == pytest.approx(decoded_psnr(stream, codec, read_rgb(path)), abs=1e-3)
        assert row["file"]["bpp"] == 8 * stream.stat().st_size / 64 ** 2 == row["file_bpp"]
        assert row["file"]["loss"] == pytest.approx(row["file"]["bpp"] + row["lmbda"] * 255 ** 2 * row["file"]["mse"])
        assert row["file"]["psnr"] == pytest.approx(row["refined"]["psnr"], abs=1e-3)
        assert row["decode_gap"] <= DECODE_TOLERANCE
    assert "the file's figures are what its decoder reads back" in capsys.readouterr().out


@pytest.mark.parametrize("setting", ["threads", "onednn"])
def test_a_file_decodes_the_same_with_other_threads_or_cpu_kernels(setting):
    """Files encoded with one thread and decoded with two (or encoded without oneDNN's convolutions and decoded with
    them) decode to the same image within the tolerance, for a hyperprior and a context model."""
    for codec in (bundled_codec(), bundled_codec(architecture="mbt2018")):
        x = crops((64, 64))
        result = LatentRefiner(codec, "ssl", iterations=5, check_every=5).refine(x)
        threads = torch.get_num_threads()
        try:
            if setting == "threads":
                torch.set_num_threads(1)
                streams = encode(codec, result.y_hat, result.z_hat, (64, 64))
                torch.set_num_threads(2)
            else:
                with torch.backends.mkldnn.flags(enabled=False):
                    streams = encode(codec, result.y_hat, result.z_hat, (64, 64))
            for i, stream in enumerate(streams):
                x_hat = decode(stream, lambda model_id: codec)[0]
                assert (x_hat - result.x_hat[i:i + 1]).abs().max() <= DECODE_TOLERANCE
        finally:
            torch.set_num_threads(threads)


def test_refine_batch_returns_the_decoded_file(monkeypatch):
    """pipeline.refine_batch hands back each image's stream and what it decodes to (the PNG written from it)."""
    codec, x = bundled_codec(), crops((64, 64))
    refiner = LatentRefiner(codec, "ssl", iterations=3, check_every=3)
    rows = pipeline.refine_batch([(0, "a.png", x[:1]), (1, "b.png", x[1:])], codec, refiner, "cpu", 0)
    for _, row, file in rows:
        assert torch.equal(decode(file.stream, lambda model_id: codec)[0].clamp(0, 1), file.x_hat)
        assert row["file_bytes"] == len(file.stream)

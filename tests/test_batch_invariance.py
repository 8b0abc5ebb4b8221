"""An image's refined file does not depend on what it is refined with (docs/cli.md, "Batches"; docs/refinement.md,
"Noise per image").

`sgaplus refine` and `sgaplus evaluate` as PyTorch ships (oneDNN's CPU convolutions on): on a CPU every image refines
alone (the memory plan's batches are one image there), so an image's file and figures are the same alone, in any
list of inputs, at any place in it, at any --batch-size (two processes: tests/test_distributed.py). The crops and
steps are enough for oneDNN's batch-dependent rounding to move symbols of y where images are batched: with the CPU's
batches planned as a GPU's (tools/plant_bugs.py), files differ and these tests fail.

The refiner's own part, LatentRefiner.refine of a batch: each image draws its own noise and keeps its own state, so
where the convolutions compute an image the same in any batch (PyTorch's own CPU convolutions, oneDNN off), its
result is the same alone and in any batch."""
import json

import pytest
import torch
from helpers import KERNEL_DEVICE, bundled_codec, sample_crop

from sgaplus import LatentRefiner
from sgaplus.cli import main
from sgaplus.files.bitstream import encode


@pytest.fixture
def pytorch_convolutions():
    with torch.backends.mkldnn.flags(enabled=False):
        yield


@pytest.fixture(autouse=True)
def one_thread():
    """Small images: a second thread gains nothing, and waits for the first on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


IMAGES = [("astronaut", 0, 0), ("astronaut", 200, 180), ("coffee", 100, 200)]
SIDE = 96  # the commands' crops: 6 x 6 latents, where a batch's rounding moves symbols within REFINE's steps
REFINE = ["--iterations", "12", "--check-every", "4", "--no-compile"]


def _crops(size, device="cpu"):
    return [sample_crop(size, name, top, left).to(device) for name, top, left in IMAGES]


def _files(codec, refiner, x):
    """Each image's (y_hat, z_hat, bytes) of a refinement of the batch x."""
    result = refiner.refine(x)
    streams = encode(codec, result.y_hat, result.z_hat, x.shape[-2:])
    return [(result.y_hat[i], None if result.z_hat is None else result.z_hat[i], streams[i])
            for i in range(x.shape[0])]


def _assert_same_files(codec, refiner, crops, batches):
    """Image 0's file alone equals its file in each batch (a list of image indices, image 0 among them)."""
    [alone] = _files(codec, refiner, crops[0])
    for batch in batches:
        files = _files(codec, refiner, torch.cat([crops[i] for i in batch]))
        y_hat, z_hat, stream = files[batch.index(0)]
        assert torch.equal(y_hat, alone[0]), f"batch {batch}: y_hat differs"
        assert z_hat is None or torch.equal(z_hat, alone[1]), f"batch {batch}: z_hat differs"
        assert stream == alone[2], f"batch {batch}: the bitstream differs"


@pytest.mark.usefixtures("pytorch_convolutions")
@pytest.mark.parametrize("architecture, method, classes", [
    ("mbt2018-mean", "ssl", 2), ("mbt2018-mean", "linear", 3), ("mbt2018-mean", "uniform", 2),
    ("mbt2018", "ssl", 2)])
def test_an_image_gives_the_same_file_alone_and_in_any_batch_torch(architecture, method, classes):
    codec = bundled_codec(architecture=architecture)
    refiner = LatentRefiner(codec, method, classes=classes if method != "uniform" else 2, iterations=12,
                            check_every=4, lr=2e-2, seed=7, backend="torch")
    _assert_same_files(codec, refiner, _crops(64), [[1, 0], [0, 1, 2], [2, 1, 0]])


@pytest.mark.usefixtures("pytorch_convolutions")
def test_an_image_gives_the_same_file_alone_and_in_a_batch_triton():
    codec = bundled_codec().to(KERNEL_DEVICE)
    refiner = LatentRefiner(codec, "ssl", iterations=3, check_every=3, lr=2e-2, seed=7, backend="triton")
    _assert_same_files(codec, refiner, _crops(64, KERNEL_DEVICE), [[1, 0]])


def test_the_seed_and_the_image_key_the_noise():
    """Another run seed, or another image, draws other noise (the key is not constant)."""
    codec = bundled_codec()
    crops = _crops(64)
    files = {seed: _files(codec, LatentRefiner(codec, "ssl", iterations=6, check_every=6, lr=5e-2, seed=seed,
                                               backend="torch"), torch.cat(crops[:2]))
             for seed in (0, 1)}
    assert not all(torch.equal(a[0], b[0]) for a, b in zip(files[0], files[1]))


def _same_size_pngs(folder):
    from sgaplus.files.images import write_png
    paths = []
    for name, top, left in IMAGES:
        paths.append(folder / f"{name}-{top}.png")
        write_png(paths[-1], sample_crop(SIDE, name, top, left))
    return [str(p) for p in paths]


def _same_json(a, b):
    """Equal structure, strings and numbers, timings aside."""
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            if "time" not in key and "second" not in key:
                _same_json(a[key], b[key])
    elif isinstance(a, list):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _same_json(x, y)
    else:
        assert a == b


def _refined(images, out, batch_size):
    """{image: (its file's bytes, its metrics row)} of `sgaplus refine` of the images at batch_size."""
    assert main(["refine", *images, *REFINE, "--batch-size", str(batch_size), "--out", str(out)]) == 0
    rows = json.loads((out / "metrics.json").read_text())["images"]
    return {row["image"]: ((out / f"{row['image'].rsplit('/', 1)[1][:-4]}.bin").read_bytes(), row) for row in rows}


def test_refine_writes_an_image_the_same_file_alone_and_in_any_batch(tmp_path):
    assert torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled  # as PyTorch ships
    images = _same_size_pngs(tmp_path)
    alone = _refined(images, tmp_path / "alone", 1)
    for batch in ([1, 0], [0, 1, 2], [2, 1, 0]):
        out = tmp_path / "-".join(map(str, batch))
        for image, (stream, row) in _refined([images[i] for i in batch], out, 8).items():
            assert stream == alone[image][0], f"batch {batch}: {image}'s file differs"
            _same_json(row, alone[image][1])


def test_evaluate_writes_the_same_files_at_any_batch_size(tmp_path):
    assert torch.backends.mkldnn.enabled
    images = _same_size_pngs(tmp_path)[:2]
    outs = {size: tmp_path / f"out{size}" for size in (1, 8)}
    for size, out in outs.items():
        assert main(["evaluate", *images, "--qualities", "1", "2", *REFINE, "--batch-size", str(size),
                     "--out", str(out)]) == 0
    files = sorted(p.relative_to(outs[1]) for p in (outs[1] / "bitstreams").rglob("*.bin"))
    assert len(files) == 8  # two points x two images x (base, refined)
    for file in files:
        assert (outs[1] / file).read_bytes() == (outs[8] / file).read_bytes(), file
    for name in ("base.json", "refined.json", "pairs.json", "bd.json"):
        _same_json(*(json.loads((out / name).read_text()) for out in outs.values()))

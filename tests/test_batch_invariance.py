"""An image's refined file does not depend on what it is refined with (docs/refinement.md, "Noise per image"): alone,
in batches of two and three, at any place in them, the same symbols and the same bitstream bytes. (y_hat's values,
symbols plus means, agree to the float rounding of convolutions run on a batch, which CPU kernels do not compute
bit for bit as on one image.)"""
import pytest
import torch
from helpers import KERNEL_DEVICE, bundled_codec, sample_crop

from sgaplus import LatentRefiner
from sgaplus.files.bitstream import encode

IMAGES = [("astronaut", 0, 0), ("astronaut", 200, 180), ("coffee", 100, 200)]


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
        assert (y_hat - alone[0]).abs().max() < 1e-4, f"batch {batch}: y_hat differs"
        assert z_hat is None or torch.equal(z_hat, alone[1]), f"batch {batch}: z_hat differs"
        assert stream == alone[2], f"batch {batch}: the bitstream differs"


@pytest.mark.parametrize("architecture, method, classes", [
    ("mbt2018-mean", "ssl", 2), ("mbt2018-mean", "linear", 3), ("mbt2018-mean", "uniform", 2),
    ("mbt2018", "ssl", 2)])
def test_an_image_gives_the_same_file_alone_and_in_any_batch_torch(architecture, method, classes):
    codec = bundled_codec(architecture=architecture)
    refiner = LatentRefiner(codec, method, classes=classes if method != "uniform" else 2, iterations=12,
                            check_every=4, lr=2e-2, seed=7, backend="torch")
    _assert_same_files(codec, refiner, _crops(64), [[1, 0], [0, 1, 2], [2, 1, 0]])


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

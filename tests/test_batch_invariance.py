"""An image's refined file does not depend on what it is refined with (docs/refinement.md, "Noise per image"):
alone, in batches of two and three, at any place in them, at any --batch-size, the same symbols and bitstream bytes,
where the convolutions compute an image the same in any batch. oneDNN's CPU convolutions do not (their float
rounding depends on the batch, and a few steps at a low temperature amplify it into other symbols), so these tests
run PyTorch's own CPU convolutions (mkldnn off), as docs/cli.md says."""
import pytest
import torch
from helpers import KERNEL_DEVICE, bundled_codec, sample_crop

from sgaplus import LatentRefiner
from sgaplus.files.bitstream import encode


@pytest.fixture(autouse=True)
def batch_invariant_convolutions():
    with torch.backends.mkldnn.flags(enabled=False):
        yield


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
        assert torch.equal(y_hat, alone[0]), f"batch {batch}: y_hat differs"
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


def _same_size_pngs(folder):
    from sgaplus.files.images import write_png
    paths = []
    for name, top, left in IMAGES:
        paths.append(folder / f"{name}-{top}.png")
        write_png(paths[-1], sample_crop(64, name, top, left))
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


def test_refine_writes_the_same_files_at_any_batch_size(tmp_path):
    import json

    from sgaplus.cli import main
    images = _same_size_pngs(tmp_path)
    outs = {size: tmp_path / f"out{size}" for size in (1, 8)}
    for size, out in outs.items():
        assert main(["refine", *images, "--iterations", "4", "--check-every", "2", "--batch-size", str(size),
                     "--no-compile", "--out", str(out)]) == 0
    for image in images:
        stem = image.rsplit("/", 1)[1][:-4]
        assert (outs[1] / f"{stem}.bin").read_bytes() == (outs[8] / f"{stem}.bin").read_bytes(), stem
    metrics = [json.loads((out / "metrics.json").read_text())["images"] for out in outs.values()]
    _same_json(*metrics)


def test_evaluate_writes_the_same_files_at_any_batch_size(tmp_path):
    import json

    from sgaplus.cli import main
    images = _same_size_pngs(tmp_path)[:2]
    outs = {size: tmp_path / f"out{size}" for size in (1, 8)}
    for size, out in outs.items():
        assert main(["evaluate", *images, "--qualities", "1", "2", "--iterations", "4", "--check-every", "2",
                     "--batch-size", str(size), "--no-compile", "--out", str(out)]) == 0
    files = sorted(p.relative_to(outs[1]) for p in (outs[1] / "bitstreams").rglob("*.bin"))
    assert len(files) == 8  # two points x two images x (base, refined)
    for file in files:
        assert (outs[1] / file).read_bytes() == (outs[8] / file).read_bytes(), file
    for name in ("base.json", "refined.json", "pairs.json", "bd.json"):
        _same_json(*(json.loads((out / name).read_text()) for out in outs.values()))

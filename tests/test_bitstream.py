"""Real bitstreams: encode -> decode reproduces the refiner's reconstruction; the file size matches the rate."""
import math

import pytest
import torch
from refine_fixtures import bundled_codec, sample_crop

from sgaplus import bitstream
from sgaplus.codecs import CompressAIHyperprior
from sgaplus.codecs.registry import build_model
from sgaplus.refine import LatentRefiner


def psnr(a, b):
    return 10 * math.log10(1 / torch.mean((a - b) ** 2).item())


@pytest.mark.parametrize("method", ["ssl", "base"])
def test_decoding_reproduces_the_refined_reconstruction(method):
    codec = bundled_codec()
    x = sample_crop(256, name="coffee", top=50, left=150)
    result = LatentRefiner(codec, method, iterations=20).refine(x)
    [data] = bitstream.encode(codec, result.y_hat, result.z_hat, x.shape[-2:])
    x_hat, model_id = bitstream.decode(data, lambda mid: codec)
    assert model_id == codec.model_id and x_hat.shape == x.shape
    assert psnr(x_hat, x) == pytest.approx(result.best.psnr[0], abs=1e-3)
    torch.testing.assert_close(x_hat, result.x_hat, atol=1e-5, rtol=0)
    file_bpp = 8 * len(data) / (x.shape[-2] * x.shape[-1])
    assert file_bpp == pytest.approx(result.best.bpp[0], rel=0.05)


def test_scale_hyperprior_adapter_round_trip():
    """bmshj2018-hyperprior (no means): refine and code a small random-weight model."""
    torch.manual_seed(0)
    model = build_model("bmshj2018-hyperprior", 16, 24)
    model.update(force=True)
    codec = CompressAIHyperprior(model, "test:scale", lmbda=0.01)
    assert not codec.has_means
    x = sample_crop(64)
    result = LatentRefiner(codec, "ssl", iterations=5).refine(x)
    [data] = bitstream.encode(codec, result.y_hat, result.z_hat, x.shape[-2:])
    x_hat, _ = bitstream.decode(data, lambda mid: codec)
    torch.testing.assert_close(x_hat, result.x_hat, atol=1e-5, rtol=0)


def test_header_round_trip_and_corruption_is_detected():
    data = bitstream.pack("bundled:q2", (300, 451), (5, 8), [b"abc", b"", b"\x00" * 10])
    assert bitstream.unpack(data) == ("bundled:q2", (300, 451), (5, 8), [b"abc", b"", b"\x00" * 10])
    with pytest.raises(bitstream.BitstreamError, match="bad magic"):
        bitstream.unpack(b"PNG" + data)
    flipped = bytearray(data)
    flipped[12] ^= 1
    with pytest.raises(bitstream.BitstreamError, match="checksum"):
        bitstream.unpack(bytes(flipped))
    with pytest.raises(bitstream.BitstreamError):
        bitstream.unpack(data[:20])

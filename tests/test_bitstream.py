"""Real bitstreams: encode -> decode reproduces the refiner's reconstruction; the file size matches the rate."""
import math
import struct
import zlib

import pytest
import torch
from helpers import bundled_codec, sample_crop

from sgaplus.codecs import CompressAIHyperprior
from sgaplus.codecs.registry import build_model
from sgaplus.files import bitstream
from sgaplus.refine.refiner import LatentRefiner


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
    with pytest.raises(bitstream.BitstreamError, match="checksum"):
        bitstream.unpack(data[:20])


def with_checksum(body):
    """body + its CRC-32: bytes that pass the checksum, so unpack's later checks are what is tested."""
    return body + struct.pack(">I", zlib.crc32(body))


@pytest.mark.parametrize("cut", [5, 9, 12, 20, 30])
def test_truncated_body_with_a_valid_checksum_is_refused(cut):
    """A prefix of a real body, re-sealed with its own checksum, reaches the truncation checks."""
    body = bitstream.pack("bundled:q2", (300, 451), (5, 8), [b"abc", b"defgh"])[:-4]
    with pytest.raises(bitstream.BitstreamError, match="truncated|malformed"):
        bitstream.unpack(with_checksum(body[:cut]))


def test_string_longer_than_the_data_and_trailing_bytes_are_refused():
    body = bitstream.pack("m", (16, 16), (1, 1), [b"abc"])[:-4]
    too_long = body[:-7] + struct.pack(">I", 1000) + b"abc"  # the last string claims 1000 bytes
    with pytest.raises(bitstream.BitstreamError, match="length mismatch|truncated"):
        bitstream.unpack(with_checksum(too_long))
    with pytest.raises(bitstream.BitstreamError, match="length mismatch"):
        bitstream.unpack(with_checksum(body + b"extra"))
    bad_utf8 = body.replace(b"\x00\x01m", b"\x00\x01\xff")
    with pytest.raises(bitstream.BitstreamError, match="malformed"):
        bitstream.unpack(with_checksum(bad_utf8))

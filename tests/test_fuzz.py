"""Fuzzing the readers of untrusted files: bitstreams (unpack, decode) and checkpoints. Whatever the bytes,
the answer is the package's own error (never another exception), and nothing is decoded or built from
header values out of range. Deterministic (derandomized) and bounded in examples, so CI time is fixed."""
import struct
import zlib

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sgaplus import bitstream
from sgaplus.checkpoints import FORMAT, VERSION, CheckpointError, load_checkpoint

FUZZ = settings(max_examples=300, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture])
VALID = bitstream.pack("bundled:q3", (64, 96), (1, 2), [b"y" * 40, b"z" * 9])


class RecordingCodec:
    """A codec that only says what a bitstream should look like and records whether decoding was attempted."""
    model_id, multiple, z_stride, strings_per_image = "bundled:q3", 64, 64, 2

    def __init__(self):
        self.decompressed = []

    def z_size(self, image_size):
        return tuple(-(-s // 64) for s in image_size)

    def decompress(self, strings, z_size):
        self.decompressed.append(z_size)
        return torch.zeros(1, 3, 64 * z_size[0], 64 * z_size[1])


def sealed(body):
    return body + struct.pack(">I", zlib.crc32(body))


@FUZZ
@given(st.binary(max_size=300))
def test_unpack_of_any_bytes_raises_only_bitstream_errors(data):
    try:
        bitstream.unpack(data)
    except bitstream.BitstreamError:
        pass


@FUZZ
@given(st.lists(st.tuples(st.integers(0, len(VALID) - 5), st.integers(0, 255)), min_size=1, max_size=6),
       st.integers(0, len(VALID) - 4))
def test_mutated_bitstreams_with_valid_checksums_are_refused_or_checked_before_decoding(edits, cut):
    body = bytearray(VALID[:-4])
    for position, value in edits:
        body[position % len(body)] = value
    body = bytes(body[:max(cut, 4)]) if cut < len(body) // 2 else bytes(body)
    codec = RecordingCodec()
    try:
        x_hat, _ = bitstream.decode(sealed(body), lambda model_id: codec, max_pixels=1 << 20)
    except bitstream.BitstreamError:
        assert codec.decompressed == []  # every check comes before decoding
        return
    model_id, (h, w), z_size, strings = bitstream.unpack(sealed(body))
    assert h * w <= 1 << 20 and tuple(z_size) == codec.z_size((h, w)) and len(strings) == 2
    assert x_hat.shape[-2:] == (h, w)


@pytest.mark.parametrize("size,z_size,count,message", [
    ((2 ** 32 - 1, 2 ** 32 - 1), (1, 1), 2, "claims a 4294967295x4294967295 image"),
    ((0, 64), (0, 1), 2, "claims a 64x0 image"),
    ((64, 96), (60, 2), 2, "z is 2x60"),
    ((64, 96), (1, 2), 7, "7 coded strings"),
])
def test_absurd_headers_are_refused_before_anything_is_decoded(size, z_size, count, message):
    codec = RecordingCodec()
    data = bitstream.pack("bundled:q3", size, z_size, [b"s"] * count)
    with pytest.raises(bitstream.BitstreamError, match=message):
        bitstream.decode(data, lambda model_id: codec)
    assert codec.decompressed == []
    # negative control: the consistent header decodes
    x_hat, _ = bitstream.decode(bitstream.pack("bundled:q3", (64, 96), (1, 2), [b"s"] * 2), lambda model_id: codec)
    assert codec.decompressed == [(1, 2)] and x_hat.shape[-2:] == (64, 96)


def payload(**changes):
    base = {"format": FORMAT, "version": VERSION, "architecture": "mbt2018-mean", "N": 8, "M": 8,
            "info": {"lmbda": 0.01}, "state_dict": {}}
    base.update(changes)
    return base


@settings(max_examples=60, deadline=None, derandomize=True)
@given(st.binary(max_size=400))
def test_checkpoints_of_any_bytes_raise_only_checkpoint_errors(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("ckpt") / "model.pt"
    path.write_bytes(data)
    with pytest.raises(CheckpointError):
        load_checkpoint(path)


@pytest.mark.parametrize("changes,message", [
    (dict(N=10 ** 9), "N must be an integer in"), (dict(M=0), "M must be an integer in"),
    (dict(N="8"), "N must be an integer in"), (dict(N=True), "N must be an integer in"),
    (dict(architecture=["mbt2018-mean"]), "architecture must be a name"),
    (dict(architecture="mbt2018-foo"), "unknown architecture"),
    (dict(info=None), "info and state_dict must be dictionaries"),
    (dict(info={"lmbda": -1.0}), "training lambda must be a number > 0"),
    (dict(state_dict={"g_a.0.weight": torch.zeros(3)}), "weights do not fit"),
])
def test_crafted_checkpoint_fields_are_refused_before_a_model_is_built(tmp_path, changes, message):
    path = tmp_path / "model.pt"
    torch.save(payload(**changes), path)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(path)

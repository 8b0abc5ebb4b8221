"""Fuzzing the readers of untrusted files: bitstreams (unpack, decode), checkpoints and images. Whatever the bytes,
the answer is the package's own error (never another exception), and nothing is decoded or built from
header values out of range. Deterministic (derandomized) and bounded in examples, so CI time is fixed."""
import io
import struct
import zlib

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from sgaplus.cli import main
from sgaplus.files import bitstream
from sgaplus.files.checkpoints import FORMAT, VERSION, CheckpointError, load_checkpoint
from sgaplus.files.images import ImageError, read_rgb

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


def image_bytes(fmt):
    """A small 8-bit RGB image (a palette one for GIF) encoded in `fmt`."""
    array = np.random.default_rng(0).integers(0, 256, (24, 40, 3), dtype=np.uint8)
    image = Image.fromarray(array)
    buffer = io.BytesIO()
    (image.convert("P") if fmt == "GIF" else image).save(buffer, format=fmt)
    return buffer.getvalue()


IMAGE_FORMATS = ("PNG", "JPEG", "BMP", "TIFF", "GIF", "WEBP", "PPM", "TGA")
SEEDS = {fmt: image_bytes(fmt) for fmt in IMAGE_FORMATS}


@settings(max_examples=400, deadline=None, derandomize=True)
@given(st.sampled_from(IMAGE_FORMATS),
       st.lists(st.tuples(st.sampled_from(["set", "cut", "insert"]), st.integers(0, 1 << 16),
                          st.binary(min_size=1, max_size=8)), min_size=1, max_size=6))
def test_image_files_of_any_bytes_are_read_or_refused_in_one_line(tmp_path_factory, fmt, edits):
    """Malformed images (lying headers, truncated data, inserted bytes) in every format Pillow reads here: the
    reader returns an RGB tensor or raises ImageError, never another exception (found this way: a PPM header
    token raised ValueError, a BMP or TIFF header claiming 190 M pixels raised Pillow's DecompressionBombError)."""
    data = bytearray(SEEDS[fmt])
    for kind, position, value in edits:
        position %= len(data)
        if kind == "set":
            data[position] = value[0]
        elif kind == "cut":
            data = data[:max(position, 1)]
        else:
            data[position:position] = value
    path = tmp_path_factory.mktemp("image") / f"x.{fmt.lower()}"
    path.write_bytes(bytes(data))
    try:
        x = read_rgb(path)
    except ImageError as error:
        assert "\n" not in str(error) and str(path) in str(error)
        return
    assert x.dim() == 4 and x.shape[:2] == (1, 3) and 0 <= x.min() and x.max() <= 1


def png_header(width, height):
    """A PNG whose valid header claims width x height pixels (8-bit RGB), followed by a few bytes of pixel data."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(bytes(64)))


@pytest.mark.parametrize("width,height,message", [
    (100_000, 100_000, "larger than sgaplus reads"),  # past Pillow's own bomb limit
    (9000, 8000, "a 9000x8000 image; sgaplus reads images of 1 to 67,108,864 pixels"),  # past ours only
])
def test_a_header_claiming_too_many_pixels_is_refused_before_decoding(tmp_path, width, height, message):
    path = tmp_path / "big.png"
    path.write_bytes(png_header(width, height))
    with pytest.raises(ImageError, match=message):
        read_rgb(path)


def test_the_pixel_limit_refuses_just_above_and_reads_just_below(tmp_path):
    path = tmp_path / "x.png"
    path.write_bytes(SEEDS["PNG"])
    assert read_rgb(path, max_pixels=24 * 40).shape == (1, 3, 24, 40)
    with pytest.raises(ImageError, match="a 40x24 image"):
        read_rgb(path, max_pixels=24 * 40 - 1)


@pytest.mark.parametrize("data", [b"", b"P6\n" + b"9" * 300 + b"\n", SEEDS["PNG"][:60], SEEDS["JPEG"][:200]],
                         ids=["empty", "ppm-token-too-long", "truncated-png", "truncated-jpeg"])
def test_the_command_refuses_a_malformed_image_in_one_line(tmp_path, capsys, data):
    path = tmp_path / "bad.png"
    path.write_bytes(data)
    status = main(["refine", str(path), "--out", str(tmp_path / "out"), "--iterations", "1"])
    err = capsys.readouterr().err.strip()
    assert status == 1 and len(err.splitlines()) == 1 and err.startswith("sgaplus: error: ") and "bad.png" in err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())

"""The sgaplus bitstream: a header naming the model and image size, the entropy coder's strings, a checksum.

Layout (big-endian): b"SGA+" | version u8 | model id (u16 length, UTF-8) | height u32 | width u32 |
z height u16 | z width u16 | string count u8 | each string (u32 length, bytes) | CRC-32 of all before, u32.
"""
import struct
import zlib

from ..errors import SgaplusError

MAGIC = b"SGA+"
VERSION = 1
MAX_PIXELS = 1 << 26  # decode refuses larger images (64 M pixels, 8192 x 8192) unless asked


class BitstreamError(SgaplusError, ValueError):
    """Bytes that are not a readable sgaplus bitstream."""


def pack(model_id, image_size, z_size, strings):
    model = model_id.encode()
    parts = [MAGIC, struct.pack(">BH", VERSION, len(model)), model,
             struct.pack(">IIHHB", *image_size, *z_size, len(strings))]
    for string in strings:
        parts += [struct.pack(">I", len(string)), string]
    body = b"".join(parts)
    return body + struct.pack(">I", zlib.crc32(body))


def unpack(data):
    """(model_id, (height, width), (z height, z width), strings); BitstreamError on anything wrong. Only the
    bytes before the checksum are parsed, and every length is checked against what is there."""
    if len(data) < 4 or data[:4] != MAGIC:
        raise BitstreamError("not an sgaplus bitstream (bad magic)")
    if len(data) < 8 or zlib.crc32(data[:-4]) != struct.unpack(">I", data[-4:])[0]:
        raise BitstreamError("corrupt bitstream (checksum mismatch)")
    body = memoryview(data)[:-4]
    offset = 4

    def take(size, what):
        nonlocal offset
        if offset + size > len(body):
            raise BitstreamError(f"truncated or malformed bitstream ({what} runs past the end)")
        chunk = body[offset:offset + size]
        offset += size
        return chunk

    version, model_len = struct.unpack(">BH", take(3, "header"))
    if version != VERSION:
        raise BitstreamError(f"bitstream version {version}; this sgaplus reads version {VERSION}")
    try:
        model_id = bytes(take(model_len, "model id")).decode()
    except UnicodeDecodeError:
        raise BitstreamError("malformed bitstream (model id is not UTF-8)") from None
    height, width, z_h, z_w, count = struct.unpack(">IIHHB", take(struct.calcsize(">IIHHB"), "header"))
    strings = []
    for number in range(count):
        (length,) = struct.unpack(">I", take(4, f"string {number + 1}'s length"))
        strings.append(bytes(take(length, f"string {number + 1}")))
    if offset != len(body):
        raise BitstreamError("malformed bitstream (length mismatch: bytes after the last string)")
    return model_id, (height, width), (z_h, z_w), strings


def encode(codec, y_hat, z_hat, image_size):
    """Bitstreams (one bytes object per image) of hard latents y_hat, z_hat for images of image_size."""
    return [pack(codec.model_id, image_size, codec.z_size(image_size), strings)
            for strings in codec.compress(y_hat, z_hat)]


def decode(data, codec_for_id, max_pixels=MAX_PIXELS):
    """(x_hat (1, 3, H, W) in [0, 1], model_id) from a bitstream; codec_for_id(model_id) gives the codec.

    The header is checked against the codec before anything is decoded: an image of at most max_pixels
    pixels, the z size the codec has for that image, and as many strings as the codec writes.
    """
    model_id, (height, width), z_size, strings = unpack(data)
    if not (1 <= height and 1 <= width and height * width <= max_pixels):
        raise BitstreamError(f"the bitstream claims a {width}x{height} image; this decoder takes 1 to {max_pixels:,} "
                             f"pixels (pass a larger max_pixels, or --max-pixels, for a larger image)")
    codec = codec_for_id(model_id)
    if len(strings) != codec.strings_per_image:
        raise BitstreamError(f"malformed bitstream: {len(strings)} coded strings, {model_id} writes "
                             f"{codec.strings_per_image}")
    if tuple(z_size) != codec.z_size((height, width)):
        raise BitstreamError(f"malformed bitstream: z is {z_size[1]}x{z_size[0]}, but a {width}x{height} image has "
                             f"z of {codec.z_size((height, width))[1]}x{codec.z_size((height, width))[0]}")
    x_hat = codec.decompress(strings, z_size)
    return x_hat[..., :height, :width], model_id

"""The sgaplus bitstream: a header naming the model and image size, the entropy coder's strings, a checksum.

Layout (big-endian): b"SGA+" | version u8 | model id (u16 length, UTF-8) | height u32 | width u32 |
z height u16 | z width u16 | string count u8 | each string (u32 length, bytes) | CRC-32 of all before, u32.
"""
import struct
import zlib

MAGIC = b"SGA+"
VERSION = 1


class BitstreamError(ValueError):
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
    """(model_id, (height, width), (z height, z width), strings); BitstreamError on anything wrong."""
    if len(data) < 4 or data[:4] != MAGIC:
        raise BitstreamError("not an sgaplus bitstream (bad magic)")
    if len(data) < 8 or zlib.crc32(data[:-4]) != struct.unpack(">I", data[-4:])[0]:
        raise BitstreamError("corrupt bitstream (checksum mismatch)")
    try:
        version, model_len = struct.unpack_from(">BH", data, 4)
        if version != VERSION:
            raise BitstreamError(f"bitstream version {version}; this sgaplus reads version {VERSION}")
        offset = 7
        model_id = data[offset:offset + model_len].decode()
        offset += model_len
        height, width, z_h, z_w, count = struct.unpack_from(">IIHHB", data, offset)
        offset += struct.calcsize(">IIHHB")
        strings = []
        for _ in range(count):
            (length,) = struct.unpack_from(">I", data, offset)
            strings.append(data[offset + 4:offset + 4 + length])
            offset += 4 + length
    except (struct.error, UnicodeDecodeError) as error:
        raise BitstreamError(f"truncated or malformed bitstream ({error})") from None
    if offset != len(data) - 4:
        raise BitstreamError("malformed bitstream (length mismatch)")
    return model_id, (height, width), (z_h, z_w), strings


def encode(codec, y_hat, z_hat, image_size):
    """Bitstreams (one bytes object per image) of hard latents y_hat, z_hat for images of image_size."""
    return [pack(codec.model_id, image_size, tuple(z_hat.shape[-2:]), strings)
            for strings in codec.compress(y_hat, z_hat)]


def decode(data, codec_for_id):
    """(x_hat (1, 3, H, W) in [0, 1], model_id) from a bitstream; codec_for_id(model_id) gives the codec."""
    model_id, (height, width), z_size, strings = unpack(data)
    codec = codec_for_id(model_id)
    x_hat = codec.decompress(strings, z_size)
    return x_hat[..., :height, :width], model_id

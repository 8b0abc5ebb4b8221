"""Files as their decoder reads them (docs/cli.md, "What a file decodes to"). Every file sgaplus writes is decoded
before anything is reported of it: the bpp, PSNR, MS-SSIM and loss reported for a file are those of what its decoder
makes of it, and a file that does not decode to the refiner's reconstruction is an error naming the image, never a
silent success."""
import math
from dataclasses import dataclass

import torch

from .errors import SgaplusError
from .files.bitstream import decode
from .refine.distortion import ms_ssim, ms_ssim_db

# The largest |decoded image - refiner's reconstruction| (pixel values in [0, 1]) a file may show. Measured
# (docs/cli.md, bench/decode_check.py): at most 1.1e-6 on the 13 architectures, batched, with the encoder on one or
# two threads, with or without oneDNN; a file coded with one scale index off desynchronises the range coder from
# there on (the wrong files of tests/test_decoded_files.py lie 0.9 away).
DECODE_TOLERANCE = 1e-4


class DecodeMismatch(SgaplusError):
    """A file that does not decode to the reconstruction the refiner measured."""


@dataclass
class DecodedFile:
    """One image's file and what its decoder makes of it: x_hat (1, 3, H, W) in [0, 1] on the CPU, and its largest
    distance from the refiner's reconstruction."""
    stream: bytes
    x_hat: torch.Tensor
    gap: float


def check_decoded(name, decoded, reconstruction):
    """decoded (clamped to [0, 1], as an image file holds it) on the CPU; DecodeMismatch, naming the image, when it
    is further than DECODE_TOLERANCE from the refiner's reconstruction (1, 3, H, W)."""
    decoded = decoded.detach().clamp(0, 1).float().cpu()
    gap = (decoded - reconstruction.detach().clamp(0, 1).float().cpu()).abs().max().item()
    if not gap <= DECODE_TOLERANCE:
        raise DecodeMismatch(f"{name}: its file decodes to an image up to {gap:.3g} away from the reconstruction the "
                             f"refiner measured (tolerance {DECODE_TOLERANCE:g}): its encoder and decoder computed "
                             f"its entropy parameters differently; the file is not written")
    return decoded, gap


def decoded_files(codec, streams, reconstructions, names):
    """What bitstream.decode makes of each image's bitstream (bitstream.encode's: coded alone, as its decoder
    decodes it), checked against the refiner's reconstructions (B, 3, H, W)."""
    files = []
    for name, stream, reconstruction in zip(names, streams, reconstructions):
        x_hat, gap = check_decoded(name, decode(stream, lambda model_id: codec)[0], reconstruction.unsqueeze(0))
        files.append(DecodedFile(stream, x_hat, gap))
    return files


def file_metrics(file, x, distortion, lmbda):
    """The figures of a decoded file against its image x (1, 3, H, W): bpp of the file's bytes, PSNR, MSE, MS-SSIM
    (None below its size) and in dB, the distortion the loss weighs, and the loss lambda * scale * distortion + bpp."""
    x = x.detach().float().cpu()
    bpp = 8 * len(file.stream) / (x.shape[-2] * x.shape[-1])
    mse = ((file.x_hat - x) ** 2).mean().item()
    similarity = (ms_ssim(file.x_hat, x) or [None])[0]
    with torch.no_grad():
        value = distortion(file.x_hat, x)[0].item()
    return {"loss": lmbda * distortion.scale * value + bpp, "bpp": bpp, "psnr": 10 * math.log10(1 / max(mse, 1e-12)),
            "mse": mse, "distortion": value, "ms_ssim": similarity, "ms_ssim_db": ms_ssim_db(similarity)}

"""The generic adapter's check before any work: is the model's forward its encoder? (docs/codecs.md, "What the
generic adapter refuses").

On a synthetic image, the file the model's own compress writes for the hard forward's latents must decode, with
its own decompress, to the hard forward's reconstruction (both clamped to [0, 1], as the refiner measures them),
and must not cost more than the forward's rate estimate says: the refiner optimizes that estimate and that
reconstruction. A raster-scan context model's
forward is no encoder (its decoder sees latents computed in parallel, its file latents computed serially): its
reconstruction is off. A file smaller than the estimate is no sign of a wrong forward: with untrained or unusual
weights, latents far outside the entropy models' range cost the likelihood bound's bits in the estimate, and
fewer, coded as escapes, in the file.
"""
import torch

from .base import round_around
from .forward_pass import UnsupportedModel

PROBE_SIZE = 256  # the synthetic image a model is checked on before any work
# Measured (docs/codecs.md, "The probe's tolerances"): models whose forward is their encoder decode to exactly the
# hard forward's reconstruction (gap 0); raster-scan context models, forced through the adapter, are 6.4e-3 to 0.86
# away. Their files are 0.85 to 1.48 times the forward's estimate, raster-scan models' 0.88 to 1.14: the rate does
# not tell them apart, it only bounds a file that costs more than the estimate the refiner optimizes.
RECONSTRUCTION_TOLERANCE = 1e-3  # largest |decoded - forward's reconstruction| of a model whose forward is its encoder
RATE_TOLERANCE = 0.1  # relative, plus STRING_BITS a string: how far the file may exceed the forward's estimate
STRING_BITS = 64  # a string's own overhead, which the estimate does not count


def probe_image(size):
    """(1, 3, size, size) in [0, 1]: smooth gradients and stripes, deterministic."""
    ramp = torch.linspace(0, 1, size)
    rows, cols = ramp[:, None], ramp[None, :]
    channels = [0.5 + 0.4 * torch.sin(12 * rows + 5 * cols), rows * cols, 0.5 + 0.3 * torch.cos(20 * cols) * rows]
    return torch.stack(channels).clamp(0, 1).unsqueeze(0)


def measure(codec, x):
    """(reconstruction gap, file bits, the forward's estimated bits, strings) of image x through the codec; sets
    the codec's sizes (the analysis' factor, z's stride, strings per image) on the way."""
    with torch.no_grad():
        y = codec.analysis(x)
        codec.factor = x.shape[-1] // y.shape[-1]
        z = codec.hyper_analysis(y)
        codec.z_stride = codec.multiple = x.shape[-1] // z.shape[-1]
        z_hat = round_around(z, codec.z_offsets())
        y_hat, entropy, _, _ = codec.encoder_y(y, z_hat)
        [strings] = codec.compress(y_hat, z_hat)
        codec.strings_per_image = len(strings)
        decoded = codec.decompress(strings, z.shape[-2:])
        estimate = codec.bits(y_hat, z_hat, entropy).item()
    # like with like: the codec's decompress clamps, whether or not the model's does (CompressAI's decompress does,
    # its forward not; some do neither)
    gap = (decoded - entropy.x_hat.clamp(0, 1)).abs().max().item()
    return gap, 8 * sum(map(len, strings)), estimate, len(strings)


def check_forward_is_encoder(codec):
    """UnsupportedModel (forward_pass.py) unless the codec's model's forward is its encoder, on the probe image."""
    gap, bits, estimate, strings = measure(codec, probe_image(PROBE_SIZE))
    name = type(codec.model).__name__
    if gap > RECONSTRUCTION_TOLERANCE:
        raise UnsupportedModel(f"{name}'s forward is not its encoder: on a test image its file decodes to an image up "
                               f"to {gap:.3g} away from the hard forward's reconstruction (a raster-scan context "
                               f"model?): register an adapter for it (docs/codecs.md)")
    if bits > (1 + RATE_TOLERANCE) * estimate + STRING_BITS * strings:
        raise UnsupportedModel(f"{name}'s forward is not its encoder: on a test image its file costs {bits} bits, "
                               f"more than the {estimate:.0f} its forward's likelihoods say: register an adapter for "
                               f"it (docs/codecs.md)")

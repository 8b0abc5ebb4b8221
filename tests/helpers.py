"""Shared test helpers: the kernels' device, method grid, backend noise, scaled comparisons, sample crops and
the bundled codec."""
import functools

import torch

from sgaplus.codecs.loading import load_codec
from sgaplus.images import load_shipped_image
from sgaplus.ops.rounding import METHODS, chunked
from sgaplus.ops.rounding.noise import logit_noise

KERNEL_DEVICE = "cuda" if torch.cuda.is_available() else "cpu"  # cpu: through TRITON_INTERPRET=1
CONFIGS = [(classes, method) for classes in (2, 3) for method in METHODS[classes]]


def backend_uniforms(backend, seed, n_elements, classes, device):
    """The (n_elements, classes - 1) uniforms the backend draws for `seed`."""
    if backend == "triton":
        from sgaplus.ops.rounding import kernels
        return kernels.uniforms(seed, n_elements, classes, device)
    return chunked.uniforms(seed, n_elements, classes, device)


def backend_noise(backend, seed, n_elements, classes, device):
    """The per-class logit noise (n_elements, classes), float64, that the backend adds for `seed`."""
    return logit_noise(backend_uniforms(backend, seed, n_elements, classes, device).double(), classes)


def assert_close_scaled(actual, expected, tol, what=""):
    """|actual - expected| <= tol * max(1, max|expected|) everywhere, and no NaN/Inf."""
    actual, expected = actual.double(), expected.double()
    assert torch.isfinite(actual).all(), f"{what}: non-finite values"
    if expected.numel() == 0:
        return
    scale = max(1.0, expected.abs().max().item())
    err = (actual - expected).abs().max().item()
    assert err <= tol * scale, f"{what}: max abs error {err:.3g} > {tol:g} x scale {scale:.3g}"


def sample_crop(size=128, name="astronaut", top=0, left=0):
    """(1, 3, H, W) crop of a shipped sample image; size is an int (square) or (H, W)."""
    image = load_shipped_image(name)
    h, w = (size, size) if isinstance(size, int) else size
    return image[:, top:top + h, left:left + w].unsqueeze(0)


@functools.lru_cache(maxsize=None)
def bundled_codec(quality=None):
    return load_codec(quality=quality)

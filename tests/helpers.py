"""Shared test helpers: the kernels' device, method grid, backend noise, scaled comparisons."""
import torch

from sgaplus.ops.rounding import METHODS, chunked

KERNEL_DEVICE = "cuda" if torch.cuda.is_available() else "cpu"  # cpu: through TRITON_INTERPRET=1
CONFIGS = [(classes, method) for classes in (2, 3) for method in METHODS[classes]]


def backend_noise(backend, seed, n_elements, classes, device):
    """The (n_elements, classes) Gumbel noise the backend draws for `seed`."""
    if backend == "triton":
        from sgaplus.ops.rounding import kernels as rounding
        return rounding.gumbel_noise(seed, n_elements, classes, device)
    return chunked.gumbel_noise(seed, n_elements, classes, device)


def assert_close_scaled(actual, expected, tol, what=""):
    """|actual - expected| <= tol * max(1, max|expected|) everywhere, and no NaN/Inf."""
    actual, expected = actual.double(), expected.double()
    assert torch.isfinite(actual).all(), f"{what}: non-finite values"
    if expected.numel() == 0:
        return
    scale = max(1.0, expected.abs().max().item())
    err = (actual - expected).abs().max().item()
    assert err <= tol * scale, f"{what}: max abs error {err:.3g} > {tol:g} x scale {scale:.3g}"

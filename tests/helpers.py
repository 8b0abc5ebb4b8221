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
        from sgaplus.kernels import rounding
        return rounding.uniforms(seed, n_elements, classes, device)
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
def bundled_codec(quality=None, architecture="mbt2018-mean"):
    return load_codec(quality=quality, bundled=architecture)


@functools.lru_cache(maxsize=None)
def random_codec(architecture, steps=200, seed=0):
    """A small model of `architecture` (N=M=32) from random weights, trained for a few steps on crops of a shipped
    training image so that its entropy models fit its latents (lambda 0.01): a stand-in where none is bundled."""
    from sgaplus.codecs import registry
    torch.manual_seed(seed)
    model = registry.build_model(architecture, 32, 32).train()
    image = load_shipped_image("chelsea")
    aux = [p for name, p in model.named_parameters() if name.endswith(".quantiles")]
    optimizer = torch.optim.Adam([p for name, p in model.named_parameters() if not name.endswith(".quantiles")],
                                 lr=2e-3)
    aux_optimizer = torch.optim.Adam(aux, lr=1e-2)
    for step in range(steps):
        top, left = (37 * step) % 200, (53 * step) % 350
        x = image[:, top:top + 64, left:left + 64].unsqueeze(0)
        out = model(x)
        bits = sum(-torch.log2(likelihood).sum() for likelihood in out["likelihoods"].values())
        loss = 0.01 * 255 ** 2 * ((out["x_hat"] - x) ** 2).mean() + bits / 64 ** 2
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        aux_optimizer.zero_grad()
        model.aux_loss().backward()
        aux_optimizer.step()
    model.update(force=True)
    return registry.adapter(architecture)(model.eval().requires_grad_(False), f"random:{architecture}", 0.01)


class PoisonedCodec:
    """The bundled codec, except that from the n-th relaxed step on, image `victim`'s reconstruction is NaN."""

    def __init__(self, codec, victim, after):
        self.codec, self.victim, self.after, self.steps = codec, victim, after, 0

    def __getattr__(self, name):
        return getattr(self.codec, name)

    def synthesis(self, y_hat):
        x_hat = self.codec.synthesis(y_hat)
        if torch.is_grad_enabled():  # the relaxed steps (the true-loss checks run without gradients)
            self.steps += 1
            if self.steps >= self.after and x_hat.shape[0] > self.victim:  # until the victim leaves the batch
                x_hat = x_hat.clone()
                x_hat[self.victim] = float("nan")
        return x_hat

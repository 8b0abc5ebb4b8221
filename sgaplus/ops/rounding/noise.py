"""The op's noise on the PyTorch side (docs/rounding.md, "Noise").

The law the op must have is that of the Gumbel-softmax formulation: weights softmax((l + g) / tau)
with g i.i.d. Gumbel(0, 1) per class. Two samplers with exactly that law are cheaper, and both
backends use them:
- two classes: only g_up - g_down matters, and that difference is one Logistic(0, 1) sample
  log(u / (1 - u)): the per-class noise (0, log(u / (1 - u))) has the same law of softmax weights;
- three classes: softmax((l + g) / tau) with Gumbel g equals in law weights proportional to
  exp(l_k / tau) E_k^(-1 / tau) with E_k i.i.d. Exp(1); E / sum(E) is uniform on the simplex, as are
  the spacings S of two sorted uniforms, and the common factor cancels in the normalisation, so the
  per-class noise -log S_k has the same law of softmax weights.
Uniforms lie on grids strictly inside (0, 1) (kernels/constants.py says which), so no noise value is infinite.
"""
import torch

from . import config


def uniforms_from_integers(k, classes):
    """Uniforms strictly inside (0, 1), exact in float32, from integers k on [0, 2^bits): (n, 1) integers for
    two classes (u = (k + 1/2) / 2^23), (n, 2) for three (u_a = (4 k_a + 1) / 2^24, u_b = (4 k_b + 3) / 2^24)."""
    k = k.to(torch.float32)
    if classes == 2:
        return (k + 0.5) * 2.0 ** -config.TWO_CLASS_UNIFORM_BITS
    offsets = torch.tensor([1.0, 3.0], device=k.device)
    return (4 * k + offsets) * 2.0 ** -(config.THREE_CLASS_UNIFORM_BITS + 2)


def draw_uniforms(n_elements, classes, device, generator=None):
    """(n_elements, classes - 1) float32 uniforms on the grids above, from a torch generator."""
    bits = config.TWO_CLASS_UNIFORM_BITS if classes == 2 else config.THREE_CLASS_UNIFORM_BITS
    k = torch.randint(0, 2 ** bits, (n_elements, classes - 1), device=device, generator=generator, dtype=torch.int32)
    return uniforms_from_integers(k, classes)


def logistic(u):
    """Logistic(0, 1) samples log(u / (1 - u)) from uniforms: the difference of two i.i.d. Gumbel(0, 1)."""
    return torch.log(u / (1 - u))


def logit_noise(uniforms, classes, dim=1):
    """Per-class noise, in the uniforms' dtype, whose softmax weights have the law of Gumbel noise:
    (0, log(u / (1 - u))) for two classes, -log of the spacings of the sorted pair for three. The classes run
    along `dim` of the result: (n, classes) by default, (classes, n) with dim=0."""
    if classes == 2:
        u = uniforms[:, 0]
        return torch.stack([torch.zeros_like(u), logistic(u)], dim=dim)
    first, second = torch.minimum(uniforms[:, 0], uniforms[:, 1]), torch.maximum(uniforms[:, 0], uniforms[:, 1])
    return torch.stack([first, second - first, 1 - second], dim=dim).log_().neg_()


def gumbel_like(shape, dtype, device, generator=None):
    """i.i.d. Gumbel(0, 1) noise (the paper's formulation), from uniforms strictly inside (0, 1)."""
    u = uniforms_from_integers(torch.randint(0, 2 ** config.TWO_CLASS_UNIFORM_BITS, shape, device=device,
                                             generator=generator), 2)
    return u.double().log_().neg_().log_().neg_().to(dtype)

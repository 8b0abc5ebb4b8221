"""sga_round: the fused SGA+ rounding op, its autograd Function, input checks and backend dispatch."""
import math
import os

import torch

from . import cpu
from .config import RoundingConfig

BACKENDS = ("auto", "triton", "torch")
TRITON_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def draw_seed(generator=None):
    """The noise seed of one call: drawn from `generator` (default: torch's global generator)."""
    device = generator.device if generator is not None else "cpu"
    return int(torch.randint(0, 2 ** 31 - 1, (), generator=generator, device=device))


def triton_available_for(tensor):
    """Triton runs CUDA tensors, or CPU tensors through the interpreter (TRITON_INTERPRET=1)."""
    return tensor.is_cuda or (tensor.device.type == "cpu" and os.environ.get("TRITON_INTERPRET") == "1")


def _backend_module(y, backend):
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; valid backends: {', '.join(BACKENDS)}")
    if backend == "auto":
        backend = "triton" if y.is_cuda and y.dtype in TRITON_DTYPES else "torch"
    if backend == "torch":
        return cpu
    if not triton_available_for(y):
        raise ValueError(f"backend='triton' needs a CUDA tensor (or TRITON_INTERPRET=1 to run the kernels on "
                         f"CPU through the Triton interpreter); y is on {y.device}")
    if y.dtype not in TRITON_DTYPES:
        raise TypeError(f"backend='triton' supports float32, float16 and bfloat16, got {y.dtype}")
    from .kernels import rounding  # Triton is imported only when it is used
    return rounding


def validate_tau(tau):
    if isinstance(tau, torch.Tensor):
        if tau.numel() != 1:
            raise ValueError(f"tau must be a number or a one-element tensor, got shape {tuple(tau.shape)}")
        if tau.requires_grad:
            raise ValueError("tau is a hyperparameter: the op carries no gradient to it (detach it)")
        tau = tau.item()
    if isinstance(tau, bool) or not isinstance(tau, (int, float)):
        raise TypeError(f"tau must be a float or a one-element tensor, got {type(tau).__name__}")
    if not math.isfinite(tau) or tau <= 0:
        raise ValueError(f"tau must be finite and > 0, got {tau!r}")
    return float(tau)


def _check_inputs(y, means):
    if not isinstance(y, torch.Tensor):
        raise TypeError(f"y must be a torch.Tensor, got {type(y).__name__}")
    if not y.is_floating_point():
        raise TypeError(f"y must be a floating-point tensor, got {y.dtype}")
    if means is None:
        return None
    if not isinstance(means, torch.Tensor) or not means.is_floating_point():
        raise TypeError("means must be a floating-point tensor or None")
    if means.device != y.device:
        raise ValueError(f"means is on {means.device} but y is on {y.device}")
    try:
        shape = torch.broadcast_shapes(means.shape, y.shape)
    except RuntimeError:
        shape = None
    if shape != y.shape:
        raise ValueError(f"means of shape {tuple(means.shape)} does not broadcast to y's shape {tuple(y.shape)}")
    if means.shape == y.shape:
        return means
    return means.expand(y.shape)  # a view: autograd sums its gradient back to means' shape


class SGARoundFunction(torch.autograd.Function):
    """Forward and backward through a backend module; saves y and means, never noise or weights."""

    @staticmethod
    def forward(ctx, y, means, tau, seed, cfg, backend):
        ctx.save_for_backward(y, means)
        ctx.tau, ctx.seed, ctx.cfg, ctx.backend = tau, seed, cfg, backend
        return backend.forward(y.contiguous(), None if means is None else means.contiguous(), tau, seed, cfg)

    @staticmethod
    def backward(ctx, grad_out):
        y, means = ctx.saved_tensors
        grad_y, grad_means = ctx.backend.backward(
            y.contiguous(), None if means is None else means.contiguous(), grad_out.contiguous(), ctx.tau,
            ctx.seed, ctx.cfg)
        return grad_y, grad_means, None, None, None, None


def sga_round(y, tau, method="ssl", classes=2, *, means=None, hard=False, a=None, r=None, n=None,
              generator=None, backend="auto"):
    """SGA+ stochastic rounding of y (SPEC.md), differentiable with respect to y and means.

    Args:
        y: floating-point tensor of any shape (float32, float16, bfloat16; float64 on the torch backend).
        tau: temperature > 0, a float or a one-element tensor (no gradient flows to it).
        method: "atanh", "linear", "cosine" or "ssl" for classes=2; "linear", "cosine" or "ssl" for 3.
        classes: 2 (floor/ceil) or 3 (round(v) - 1, round(v), round(v) + 1).
        means: optional tensor broadcastable to y; y - means is rounded and means added back.
        hard: straight-through: the forward returns the sampled class, the backward the soft gradient.
        a, r, n: method parameters (see RoundingConfig), None for the defaults.
        generator: torch.Generator the noise seed is drawn from (default: the global one).
        backend: "auto" (Triton for CUDA tensors, the torch path otherwise), "triton" or "torch".
    Returns:
        A tensor of y's shape and dtype.
    """
    cfg = RoundingConfig(method=method, classes=classes, hard=hard, a=a, r=r, n=n)
    tau = validate_tau(tau)
    means = _check_inputs(y, means)
    module = _backend_module(y, backend)
    return SGARoundFunction.apply(y, means, tau, draw_seed(generator), cfg, module)

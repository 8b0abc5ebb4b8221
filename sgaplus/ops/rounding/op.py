"""sga_round: the fused SGA+ rounding op as a registered torch.library op with autograd; input checks and
dispatch to the Triton kernels (sgaplus.kernels.rounding, the repository's kernels/) or the chunked PyTorch
path (chunked.py)."""
from typing import List, Optional

import torch

from .._common import host_tau, kernel_scalars, resolve_backend, seed_tensor, validate_tau
from . import chunked
from .config import RoundingConfig


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


def _contiguous(t):
    return None if t is None else t.contiguous()


def _launch_args(backend, y, seed, tau):
    """(module, tau, seed) of one launch: the torch path takes host numbers (a list of seeds, one per row), the
    kernels take tensors on y's device (tau 0-d, the seed 0-d or one per row)."""
    if seed.dim() and (seed.dim() != 1 or y.dim() == 0 or seed.shape[0] != y.shape[0]):
        raise ValueError(f"seed must be 0-d or one per row of y {tuple(y.shape)}, got shape {tuple(seed.shape)}")
    if backend == "torch":
        return chunked, validate_tau(tau), seed.reshape(-1).tolist()
    from ...kernels import rounding  # Triton is imported only when it is used
    seed, tau = kernel_scalars(seed, tau, y.device)
    return rounding, tau, seed


# The op is registered with torch.library so torch.compile(fullgraph=True) traces through it as one
# opaque node; its autograd formula saves y and means only (and the seed and tau tensors). The seed is an
# int64 tensor (0-d, or one per row of y) drawn inside the traced code or passed in, so every call of a compiled
# function draws fresh noise.
@torch.library.custom_op("sgaplus::sga_round_forward", mutates_args=())
def _forward_op(y: torch.Tensor, means: Optional[torch.Tensor], seed: torch.Tensor, tau: torch.Tensor, method: str,
                classes: int, hard: bool, a: Optional[float], r: Optional[float], n: Optional[float],
                backend: str) -> torch.Tensor:
    module, tau, seed = _launch_args(backend, y, seed, tau)
    return module.forward(y.contiguous(), _contiguous(means), tau, seed, RoundingConfig(method, classes, hard, a, r, n))


@_forward_op.register_fake
def _(y, means, seed, tau, method, classes, hard, a, r, n, backend):
    return torch.empty(y.shape, dtype=y.dtype, device=y.device)


@torch.library.custom_op("sgaplus::sga_round_backward", mutates_args=())
def _backward_op(grad_out: torch.Tensor, y: torch.Tensor, means: Optional[torch.Tensor], seed: torch.Tensor,
                 tau: torch.Tensor, method: str, classes: int, a: Optional[float], r: Optional[float],
                 n: Optional[float], backend: str, means_grad: bool) -> List[torch.Tensor]:
    """[grad_y, grad_means]; grad_means has no elements when means is None or needs no gradient."""
    module, tau, seed = _launch_args(backend, y, seed, tau)
    grad_y, grad_means = module.backward(y.contiguous(), _contiguous(means), grad_out.contiguous(), tau, seed,
                                         RoundingConfig(method, classes, False, a, r, n), means_grad)
    return [grad_y, grad_y.new_empty(0) if grad_means is None else grad_means]


@_backward_op.register_fake
def _(grad_out, y, means, seed, tau, method, classes, a, r, n, backend, means_grad):
    grad_means = y.new_empty(0)
    if means is not None and means_grad:
        grad_means = torch.empty(means.shape, dtype=means.dtype, device=means.device)
    return [torch.empty(y.shape, dtype=y.dtype, device=y.device), grad_means]


def _setup_context(ctx, inputs, output):
    y, means, seed, tau, method, classes, hard, a, r, n, backend = inputs
    ctx.save_for_backward(y, means, seed, tau)
    ctx.params = (method, classes, a, r, n, backend)


def _backward(ctx, grad_out):
    y, means, seed, tau = ctx.saved_tensors
    means_grad = means is not None and ctx.needs_input_grad[1]
    grad_y, grad_means = _backward_op(grad_out, y, means, seed, tau, *ctx.params, means_grad)
    return grad_y, (grad_means if means_grad else None), None, None, None, None, None, None, None, None, None


torch.library.register_autograd("sgaplus::sga_round_forward", _backward, setup_context=_setup_context)


def sga_round(y, tau, method="ssl", classes=2, *, means=None, hard=False, a=None, r=None, n=None,
              config=None, generator=None, seed=None, backend="auto"):
    """SGA+ stochastic rounding of y (docs/rounding.md), differentiable with respect to y and means.

    Args:
        y: floating-point tensor of any shape (float32, float16, bfloat16; float64 on the torch backend).
        tau: temperature > 0, a float or a one-element tensor (no gradient flows to it). Inside
            torch.compile pass a tensor: a Python float is a constant there, and a new value recompiles.
            A tensor on y's device is not read on the host (the kernels load it; CUDA graphs can
            capture the op): on the Triton backend its value is checked by torch._assert_async, so a
            bad value raises a RuntimeError (on a GPU, asynchronously, as a device-side assertion).
        method: "atanh", "linear", "cosine" or "ssl" for classes=2; "linear", "cosine" or "ssl" for 3.
        classes: 2 (floor/ceil) or 3 (round(v) - 1, round(v), round(v) + 1).
        means: optional tensor broadcastable to y; y - means is rounded and means added back.
        hard: straight-through: the forward returns the sampled class, the backward the soft gradient.
        a, r, n: method parameters (see RoundingConfig), None for the defaults.
        config: a RoundingConfig instead of method, classes, hard, a, r and n (leave those at their defaults).
        generator: torch.Generator the noise seed is drawn from (default: the global generator of
            y's device, which a CUDA graph can capture).
        seed: an explicit noise seed instead (an int in [0, 2**63), or a one-element integer tensor of
            any int64 value), keying the noise of y as a whole by (seed, flat index); or a (y.shape[0],)
            integer tensor, a seed per row of y: row b's noise is keyed by (seed[b], offset within row b), so
            it is the noise of that row rounded alone with seed[b] (docs/op.md, "Noise per row"). Inside
            torch.compile a seed drawn outside the compiled function avoids a graph break, and one on y's
            device is never read on the host.
        backend: "auto" (Triton for CUDA tensors, the torch path otherwise), "triton" or "torch".
    Returns:
        A tensor of y's shape and dtype.
    """
    if config is None:
        cfg = RoundingConfig(method=method, classes=classes, hard=hard, a=a, r=r, n=n)
    elif (method, classes, hard, a, r, n) != ("ssl", 2, False, None, None, None):
        raise ValueError("pass either config or method/classes/hard/a/r/n, not both")
    elif not isinstance(config, RoundingConfig):
        raise TypeError(f"config must be a RoundingConfig, got {type(config).__name__}")
    else:
        cfg = config
    means = _check_inputs(y, means)
    backend = resolve_backend(y, backend, means)
    if backend == "triton" and means is not None and means.dtype not in (y.dtype, torch.float32):
        means = means.float()  # exact; the kernels then see means in y's dtype or float32, nothing else
    return _forward_op(y, means, seed_tensor(seed, generator, y), host_tau(tau), cfg.method, cfg.classes,
                       cfg.hard, cfg.a, cfg.r, cfg.n, backend)

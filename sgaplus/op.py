"""sga_round: the fused SGA+ rounding op as a registered torch.library op with autograd; input checks and dispatch."""
import math
import os
from typing import List, Optional

import torch

from . import cpu
from .config import RoundingConfig

BACKENDS = ("auto", "triton", "torch")
TRITON_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def draw_seed(generator=None, device="cpu", shape=()):
    """The noise seed of one call (or a `shape` of them), an int64 tensor drawn from `generator` (on its
    device), or from torch's global generator of `device`. Drawing on the GPU needs no host sync and
    is CUDA-graph safe."""
    if generator is not None:
        device = generator.device
    return torch.randint(0, 2 ** 31 - 1, shape, generator=generator, device=device)


def _seed_tensor(seed, generator, device):
    """The call's seed as a 0-d int64 tensor: the given one, or one drawn from generator (or on `device`)."""
    if seed is None:
        return draw_seed(generator, device)
    if generator is not None:
        raise ValueError("pass either seed or generator, not both")
    if isinstance(seed, torch.Tensor):
        if seed.numel() != 1 or seed.is_floating_point() or seed.is_complex() or seed.dtype == torch.bool:
            raise TypeError(f"seed must be an int or a one-element integer tensor, "
                            f"got {seed.dtype} {tuple(seed.shape)}")
        return seed.reshape(()).to(dtype=torch.int64)
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2 ** 63:
        raise ValueError(f"seed must be an integer in [0, 2**63), got {seed!r}")
    return torch.full((), seed, dtype=torch.int64, device=device)


def _on_device(scalar, device):
    return scalar if scalar.device == device else scalar.to(device, non_blocking=True)


def _kernel_scalars(seed, tau, device):
    """seed and tau as tensors on the kernels' device, never read on the host when they are already there
    (so a CUDA graph can capture the op): such a tau is checked by an asynchronous device assertion."""
    if tau.device == device:
        torch._assert_async((tau > 0) & (tau < math.inf), "tau must be finite and > 0")
    else:
        validate_tau(tau)  # a host tensor: reading it costs nothing
    return _on_device(seed, device), _on_device(tau, device)


def triton_available_for(tensor):
    """Triton runs CUDA tensors, or CPU tensors through the interpreter (TRITON_INTERPRET=1)."""
    return tensor.is_cuda or (tensor.device.type == "cpu" and os.environ.get("TRITON_INTERPRET") == "1")


def validate_tau(tau):
    """tau as a float > 0 (a one-element tensor is read)."""
    if isinstance(tau, torch.Tensor):
        tau = _tau_tensor(tau).item()
    if isinstance(tau, bool) or not isinstance(tau, (int, float)):
        raise TypeError(f"tau must be a float or a one-element tensor, got {type(tau).__name__}")
    if not math.isfinite(tau) or tau <= 0:
        raise ValueError(f"tau must be finite and > 0, got {tau!r}")
    return float(tau)


def _tau_tensor(tau):
    """Shape and gradient checks of a tensor tau, which needs no reading (so no graph break when compiled)."""
    if tau.numel() != 1:
        raise ValueError(f"tau must be a number or a one-element tensor, got shape {tuple(tau.shape)}")
    if tau.requires_grad:
        raise ValueError("tau is a hyperparameter: the op carries no gradient to it (detach it)")
    if not tau.is_floating_point():
        raise TypeError(f"tau must be a floating-point tensor, got {tau.dtype}")
    return tau.reshape(())


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


def _resolve_backend(y, backend):
    """The backend name that will run y: 'triton' or 'torch'."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; valid backends: {', '.join(BACKENDS)}")
    if backend == "auto":
        return "triton" if y.is_cuda and y.dtype in TRITON_DTYPES else "torch"
    if backend == "triton":
        if not triton_available_for(y):
            raise ValueError(f"backend='triton' needs a CUDA tensor (or TRITON_INTERPRET=1 to run the kernels on "
                             f"CPU through the Triton interpreter); y is on {y.device}")
        if y.dtype not in TRITON_DTYPES:
            raise TypeError(f"backend='triton' supports float32, float16 and bfloat16, got {y.dtype}")
    return backend


def _contiguous(t):
    return None if t is None else t.contiguous()


def _launch_args(backend, y, seed, tau):
    """(module, tau, seed) of one launch: the torch path takes host numbers, the kernels take 0-d
    tensors on y's device."""
    if backend == "torch":
        return cpu, validate_tau(tau), int(seed)
    from .kernels import rounding  # Triton is imported only when it is used
    seed, tau = _kernel_scalars(seed, tau, y.device)
    return rounding, tau, seed


# The op is registered with torch.library so torch.compile(fullgraph=True) traces through it as one
# opaque node; its autograd formula saves y and means only (and the 0-d seed and tau). The seed is an
# int64 tensor drawn inside the traced code, so every call of a compiled function draws fresh noise.
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
              generator=None, seed=None, backend="auto"):
    """SGA+ stochastic rounding of y (SPEC.md), differentiable with respect to y and means.

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
        generator: torch.Generator the noise seed is drawn from (default: the global generator of
            y's device, which a CUDA graph can capture).
        seed: an explicit noise seed instead (an int in [0, 2**63), or a one-element integer tensor of
            any int64 value; inside torch.compile a seed drawn outside the compiled function avoids a
            graph break, and one on y's device is never read on the host).
        backend: "auto" (Triton for CUDA tensors, the torch path otherwise), "triton" or "torch".
    Returns:
        A tensor of y's shape and dtype.
    """
    cfg = RoundingConfig(method=method, classes=classes, hard=hard, a=a, r=r, n=n)
    means = _check_inputs(y, means)
    # a tensor tau is checked inside the op, so compiled code can vary it freely; a float one is checked
    # here and travels as a host tensor (one small copy to the GPU, no check kernels)
    tau = _tau_tensor(tau) if isinstance(tau, torch.Tensor) else torch.tensor(validate_tau(tau), dtype=torch.float64)
    backend = _resolve_backend(y, backend)
    return _forward_op(y, means, _seed_tensor(seed, generator, y.device), tau, cfg.method, cfg.classes, cfg.hard, cfg.a,
                       cfg.r, cfg.n, backend)

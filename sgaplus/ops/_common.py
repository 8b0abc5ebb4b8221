"""What every op of the package shares: input checks, backend resolution, and the 0-d device scalars
(noise seed, temperature) that the kernels load instead of reading them on the host."""
import math
import os

import torch

BACKENDS = ("auto", "triton", "torch")
TRITON_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def check_positive(name, value):
    """value as a float, or a ValueError naming it unless it is a finite number > 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def draw_seed(generator=None, device="cpu", shape=()):
    """The noise seed of one call (or a `shape` of them), an int64 tensor drawn from `generator` (on its
    device), or from torch's global generator of `device`. Drawing on the GPU needs no host sync and
    is CUDA-graph safe."""
    if generator is not None:
        device = generator.device
    return torch.randint(0, 2 ** 31 - 1, shape, generator=generator, device=device)


def seed_tensor(seed, generator, y):
    """The call's seeds as an int64 tensor: 0-d (one seed keying the whole of y) or (batch,) (a seed per row of y,
    keying that row alone): the given one(s), or one drawn from generator (or on y's device)."""
    if seed is None:
        return draw_seed(generator, y.device)
    if generator is not None:
        raise ValueError("pass either seed or generator, not both")
    if isinstance(seed, torch.Tensor):
        if seed.is_floating_point() or seed.is_complex() or seed.dtype == torch.bool:
            raise TypeError(f"seed must be an integer tensor, got {seed.dtype}")
        if seed.numel() == 1:  # one row spanning y: the same keying as one seed per row when y has one row
            return seed.reshape(()).to(dtype=torch.int64)
        if seed.dim() != 1 or y.dim() == 0 or seed.shape[0] != y.shape[0]:
            raise ValueError(f"seed must be one seed or one per row of y ({tuple(y.shape[:1])}), "
                             f"got shape {tuple(seed.shape)}")
        return seed.to(dtype=torch.int64)
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2 ** 63:
        raise ValueError(f"seed must be an integer in [0, 2**63), got {seed!r}")
    return torch.full((), seed, dtype=torch.int64, device=y.device)


def validate_tau(tau):
    """tau as a float > 0 (a one-element tensor is read)."""
    if isinstance(tau, torch.Tensor):
        tau = tau_tensor(tau).item()
    if isinstance(tau, bool) or not isinstance(tau, (int, float)):
        raise TypeError(f"tau must be a float or a one-element tensor, got {type(tau).__name__}")
    if not math.isfinite(tau) or tau <= 0:
        raise ValueError(f"tau must be finite and > 0, got {tau!r}")
    return float(tau)


def tau_tensor(tau):
    """Shape and gradient checks of a tensor tau, which needs no reading (so no graph break when compiled)."""
    if tau.numel() != 1:
        raise ValueError(f"tau must be a number or a one-element tensor, got shape {tuple(tau.shape)}")
    if tau.requires_grad:
        raise ValueError("tau is a hyperparameter: the op carries no gradient to it (detach it)")
    if not tau.is_floating_point():
        raise TypeError(f"tau must be a floating-point tensor, got {tau.dtype}")
    return tau.reshape(())


def host_tau(tau):
    """tau as the op carries it: a tensor is checked for shape (read by the op later); a number is
    checked now and travels as a float64 host tensor (one small copy to the GPU, no check kernels)."""
    if isinstance(tau, torch.Tensor):
        return tau_tensor(tau)
    return torch.tensor(validate_tau(tau), dtype=torch.float64)


def kernel_scalars(seed, tau, device):
    """seed(s) and tau as tensors on the kernels' device, never read on the host when they are already there
    (so a CUDA graph can capture the op): such a tau is checked by an asynchronous device assertion."""
    if tau.device == device:
        torch._assert_async((tau > 0) & (tau < math.inf), "tau must be finite and > 0")
    else:
        validate_tau(tau)  # a host tensor: reading it costs nothing
    return _on_device(seed, device), _on_device(tau, device)


def _on_device(scalar, device):
    return scalar if scalar.device == device else scalar.to(device, non_blocking=True)


def triton_available_for(tensor):
    """Triton runs CUDA tensors, or CPU tensors through the interpreter (TRITON_INTERPRET=1)."""
    return tensor.is_cuda or (tensor.device.type == "cpu" and os.environ.get("TRITON_INTERPRET") == "1")


def resolve_backend(y, backend, *others):
    """The backend name that will run y (and the other floating-point tensors of the call, None allowed):
    'triton' or 'torch'. The kernels take float32, float16 and bfloat16; 'auto' sends the rest to torch."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; valid backends: {', '.join(BACKENDS)}")
    dtypes = [t.dtype for t in (y, *others) if t is not None]
    if backend == "auto":
        return "triton" if y.is_cuda and all(d in TRITON_DTYPES for d in dtypes) else "torch"
    if backend == "triton":
        if not triton_available_for(y):
            raise ValueError(f"backend='triton' needs a CUDA tensor (or TRITON_INTERPRET=1 to run the kernels on "
                             f"CPU through the Triton interpreter); y is on {y.device}")
        for dtype in dtypes:
            if dtype not in TRITON_DTYPES:
                raise TypeError(f"backend='triton' supports float32, float16 and bfloat16, got {dtype}")
    return backend

"""Both backends of the fused op against the readable reference, given the noise the backend drew."""
import pytest
import torch
from helpers import CONFIGS, assert_close_scaled, backend_noise

import sgaplus
from sgaplus.ops.rounding import RoundingConfig
from sgaplus.ops.rounding.reference import sga_round_reference

# Relative to max|reference|. Gradients are ill-conditioned where a distance nears 1 (linear: 1/(1-d)):
# the float32 difference y - means then costs more digits than the kernel's own arithmetic.
TOLERANCE = {torch.float32: (1e-6, 1e-4), torch.float16: (1e-3, 2e-3), torch.bfloat16: (1e-2, 1.5e-2)}


def run_both(backend, device, classes, method, hard, with_means, dtype, shape=(5, 7, 11), tau=0.6):
    """(op output, op grads, float64 reference output, reference grads) for one configuration."""
    gen = torch.Generator().manual_seed(100 * classes + 10 * len(method) + 2 * hard + with_means)
    y = (torch.randn(shape, generator=gen) * 2.5).to(device=device, dtype=dtype)
    means = (torch.randn(shape, generator=gen)).to(device=device, dtype=dtype) if with_means else None
    grad_out = torch.randn(shape, generator=gen).to(device=device, dtype=dtype)
    inputs = [y.clone().requires_grad_()] + ([means.clone().requires_grad_()] if with_means else [])
    seed = 3 + 100 * classes + len(method)
    out = sgaplus.sga_round(inputs[0], tau, method, classes, means=inputs[1] if with_means else None, hard=hard,
                            seed=seed, backend=backend)
    grads = torch.autograd.grad(out, inputs, grad_out)

    noise = backend_noise(backend, seed, y.numel(), classes, device).view(*shape, classes)
    ref_inputs = [t.detach().double().requires_grad_() for t in inputs]
    cfg = RoundingConfig(method, classes, hard)
    ref = sga_round_reference(ref_inputs[0], tau, cfg, means=ref_inputs[1] if with_means else None,
                                      noise=noise.double())
    ref_grads = torch.autograd.grad(ref, ref_inputs, grad_out.double())
    return out, grads, ref, ref_grads


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("with_means", [False, True], ids=["no_means", "means"])
@pytest.mark.parametrize("hard", [False, True], ids=["soft", "hard"])
@pytest.mark.parametrize("classes,method", CONFIGS)
@pytest.mark.parametrize("backend", ["triton", "torch"])
def test_forward_and_gradients_match_reference(backend, classes, method, hard, with_means, dtype, device):
    out, grads, ref, ref_grads = run_both(backend, device, classes, method, hard, with_means, dtype)
    fwd_tol, grad_tol = TOLERANCE[dtype]
    assert out.dtype == dtype and out.shape == ref.shape
    assert_close_scaled(out, ref, fwd_tol, "forward")
    for name, grad, ref_grad in zip(("y", "means"), grads, ref_grads):
        assert grad.dtype == dtype
        assert_close_scaled(grad, ref_grad, grad_tol, f"grad {name}")


@pytest.mark.parametrize("backend", ["triton", "torch"])
def test_backward_regenerates_the_forward_noise(backend, device):
    """Gradients equal the reference's given the forward's noise, and differ given other noise."""
    y = (torch.randn(300) * 3).to(device).requires_grad_()
    seed = 11
    out = sgaplus.sga_round(y, 0.7, "ssl", seed=seed, backend=backend)
    (grad,) = torch.autograd.grad(out.sum(), y)
    grads = {}
    for name, noise_seed in (("same", seed), ("other", seed + 1)):
        y_ref = y.detach().double().requires_grad_()
        noise = backend_noise(backend, noise_seed, 300, 2, device).double()
        ref = sga_round_reference(y_ref, 0.7, RoundingConfig("ssl"), noise=noise)
        (grads[name],) = torch.autograd.grad(ref.sum(), y_ref)
    assert_close_scaled(grad, grads["same"], 2e-5)
    assert (grad - grads["other"]).abs().max() > 1e-2


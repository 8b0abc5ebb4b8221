"""Edge values, shapes and dtypes: finite results, exact integers, ties, empty and strided inputs."""
import pytest
import torch
from helpers import CONFIGS, assert_close_scaled

import sgaplus

BACKENDS = ["triton", "torch"]



def round_with_grad(y, backend, *args, **kwargs):
    leaf = y.clone().requires_grad_()
    out = sgaplus.sga_round(leaf, *args, generator=torch.Generator().manual_seed(0), backend=backend, **kwargs)
    (grad,) = torch.autograd.grad(out, leaf, torch.ones_like(out))
    return out, grad


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("classes,method", CONFIGS)
def test_integer_values_round_to_themselves(backend, classes, method, device):
    y = torch.arange(-5.0, 6.0, device=device)
    out, grad = round_with_grad(y, backend, 0.5, method, classes)
    assert torch.isfinite(grad).all()
    if classes == 2:  # floor == ceil: the only class is the value itself
        assert torch.equal(out, y)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("classes,method", CONFIGS)
@pytest.mark.parametrize("tau", [1e-4, 10.0])
def test_far_values_and_extreme_temperatures_stay_finite(backend, classes, method, tau, device):
    y = torch.tensor([-1e4 - 0.3, -1e4, 1e4 + 0.7, 1e4, 0.25, -0.75, 0.5, 1e-7], device=device)
    out, grad = round_with_grad(y, backend, tau, method, classes)
    assert torch.isfinite(out).all() and torch.isfinite(grad).all()
    spread = 1.0 if classes == 2 else 1.5
    assert ((out - y).abs() <= spread + 1e-3).all()


@pytest.mark.parametrize("backend", BACKENDS)
def test_three_class_centre_rounds_half_to_even(backend, device):
    """At .5 the centre class c is round-half-to-even, so the classes are c - 1, c, c + 1. With three-class ssl at
    r = 0.5 the class 1.5 away is drawn often (about one sample in six), so hard samples show which centre was
    used: 2.5 reaches 1 and never 4 (round-half-up would give the reverse), 0.5 reaches -1, -1.5 reaches -3."""
    values = torch.tensor([0.5, 1.5, 2.5, -0.5, -1.5, -2.5], device=device)
    y = values.repeat(400)
    out, grad = round_with_grad(y, backend, 1.0, "ssl", 3, hard=True, r=0.5)
    assert torch.isfinite(grad).all()
    for value, centre in zip(values.tolist(), [0.0, 2.0, 2.0, 0.0, -2.0, -2.0]):
        drawn = set(out[y == value].tolist())
        assert drawn == {centre - 1, centre, centre + 1}, (value, drawn)


@pytest.mark.parametrize("backend", BACKENDS)
def test_empty_and_scalar_inputs(backend, device):
    out, grad = round_with_grad(torch.empty(0, 3, device=device), backend, 0.5)
    assert out.shape == (0, 3) and grad.shape == (0, 3)
    out, grad = round_with_grad(torch.tensor(0.3, device=device), backend, 0.5, hard=True)
    assert out.shape == () and out.item() in (0.0, 1.0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_non_contiguous_input_is_rounded_by_logical_index(backend, device):
    """A transposed view gives what its contiguous copy gives: noise follows the logical index."""
    base = torch.randn(6, 9, device=device) * 3
    view = base.t()
    assert not view.is_contiguous()
    out_view, grad_view = round_with_grad(view, backend, 0.4, "ssl", means=torch.ones(9, 1, device=base.device))
    out_copy, grad_copy = round_with_grad(view.contiguous(), backend, 0.4, "ssl",
                                          means=torch.ones(9, 1, device=base.device))
    torch.testing.assert_close(out_view, out_copy)
    torch.testing.assert_close(grad_view, grad_copy)


@pytest.mark.parametrize("backend", BACKENDS)
def test_broadcast_means_gradient_sums_over_broadcast_dims(backend, device):
    y = (torch.randn(2, 3, 4, 5, device=device) * 2).requires_grad_()
    means = torch.randn(1, 3, 1, 1, device=device).requires_grad_()
    full = means.detach().expand(2, 3, 4, 5).clone().requires_grad_()
    grads = []
    for m in (means, full):
        out = sgaplus.sga_round(y, 0.5, "cosine", means=m, generator=torch.Generator().manual_seed(1),
                                backend=backend)
        grads.append(torch.autograd.grad(out.sum(), m)[0])
    assert grads[0].shape == means.shape
    assert_close_scaled(grads[0], grads[1].sum(dim=(0, 2, 3), keepdim=True), 1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_input_keeps_its_dtype_with_float32_means(backend, dtype, device):
    y = (torch.randn(50) * 3).to(dtype).to(device).requires_grad_()
    means = torch.randn(50).to(device).requires_grad_()
    out = sgaplus.sga_round(y, 0.5, means=means, backend=backend)
    gy, gm = torch.autograd.grad(out.sum(), (y, means))
    assert out.dtype == dtype and gy.dtype == dtype and gm.dtype == torch.float32

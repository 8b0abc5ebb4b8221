"""The autograd graph of the fused op keeps y (and means) plus two 0-d scalars (noise seed, tau): no noise,
logits or weights."""
import pytest
import torch
from helpers import CONFIGS

import sgaplus
from sgaplus.ops.rounding import RoundingConfig
from sgaplus.ops.rounding.reference import sga_round_reference


def saved_by(fn):
    """Tensors autograd packs for backward while fn runs."""
    saved = []

    def pack(t):
        saved.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return out, saved


def are_seed_and_tau(seed, tau):
    return seed.dim() == 0 and seed.dtype == torch.int64 and tau.dim() == 0 and tau.is_floating_point()


@pytest.mark.parametrize("backend", ["triton", "torch"])
@pytest.mark.parametrize("classes,method", CONFIGS)
def test_fused_op_saves_only_its_inputs(backend, classes, method, device):
    y = torch.randn(8, 16, device=device).requires_grad_()
    means = torch.randn(8, 16, device=device).requires_grad_()
    out, saved = saved_by(lambda: sgaplus.sga_round(y, 0.5, method, classes, means=means, backend=backend))
    assert [t is y for t in saved].count(True) == 1 and [t is means for t in saved].count(True) == 1
    assert len(saved) == 4 and are_seed_and_tau(*saved[2:])
    out.sum().backward()  # and the backward still works from them alone
    assert torch.isfinite(y.grad).all() and torch.isfinite(means.grad).all()


def test_without_means_only_y_is_saved():
    y = torch.randn(100).requires_grad_()
    _, saved = saved_by(lambda: sgaplus.sga_round(y, 0.5))
    assert len(saved) == 3 and saved[0] is y and are_seed_and_tau(*saved[1:])


def test_reference_saves_far_more():
    """The same hook sees the reference's intermediates (so the checks above can fail)."""
    y = torch.randn(100).requires_grad_()
    _, saved = saved_by(lambda: sga_round_reference(y, 0.5, RoundingConfig("ssl")))
    assert sum(t.numel() for t in saved) >= 5 * y.numel()


@pytest.mark.parametrize("backend", ["triton", "torch"])
@pytest.mark.parametrize("classes", [2, 3])
def test_backward_writes_no_gradient_for_means_that_need_none(backend, classes, device):
    """The backward op skips grad_means when means needs no gradient (z's medians); y's gradient is unchanged."""
    y = torch.randn(8, 16, device=device) * 2
    means = torch.randn(8, 16, device=device)
    grad_out = torch.randn(8, 16, device=device)
    args = (grad_out, y, means, torch.tensor(5, device=device), torch.tensor(0.5, device=device), "linear", classes,
            None, None, None, backend)
    grad_y, grad_means = torch.ops.sgaplus.sga_round_backward(*args, True)
    skipped_y, skipped_means = torch.ops.sgaplus.sga_round_backward(*args, False)
    assert grad_means.shape == means.shape and skipped_means.numel() == 0
    torch.testing.assert_close(skipped_y, grad_y)
    leaf = y.clone().requires_grad_()
    out = sgaplus.sga_round(leaf, 0.5, "linear", classes, means=means, seed=5, backend=backend)
    torch.testing.assert_close(torch.autograd.grad(out, leaf, grad_out)[0], grad_y)

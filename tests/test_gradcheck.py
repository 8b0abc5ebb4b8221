"""torch.autograd.gradcheck of the reference and of the torch path in float64."""
import pytest
import torch
from helpers import CONFIGS

import sgaplus
from sgaplus.ops.rounding import RoundingConfig
from sgaplus.ops.rounding.reference import sga_round_reference


def away_from_switch_points(shape, generator):
    """Values whose fractional part keeps clear of the points where floor/round and clamps switch."""
    frac = torch.rand(shape, generator=generator, dtype=torch.float64) * 0.3 + 0.1
    frac = torch.where(torch.rand(shape, generator=generator) < 0.5, frac, frac + 0.5)
    return torch.randint(-3, 4, shape, generator=generator).double() + frac


@pytest.mark.parametrize("classes,method", CONFIGS)
def test_reference_gradcheck(classes, method):
    gen = torch.Generator().manual_seed(1)
    y = away_from_switch_points((4, 6), gen).requires_grad_()
    means = (torch.randint(-2, 3, (4, 6), generator=gen).double() + 0.0).requires_grad_()
    noise = torch.randn(4, 6, classes, generator=gen, dtype=torch.float64)
    cfg = RoundingConfig(method, classes)
    assert torch.autograd.gradcheck(
        lambda y, m: sga_round_reference(y, 0.8, cfg, means=m, noise=noise), (y, means))


@pytest.mark.parametrize("classes,method", CONFIGS)
def test_torch_path_gradcheck(classes, method):
    gen = torch.Generator().manual_seed(2)
    y = away_from_switch_points((3, 5), gen).requires_grad_()
    means = torch.randint(-2, 3, (5,), generator=gen).double().requires_grad_()  # broadcast over rows

    def f(y, means):  # a fresh generator per call: every evaluation draws the same noise
        return sgaplus.sga_round(y, 0.8, method, classes, means=means, generator=torch.Generator().manual_seed(0),
                                 backend="torch")

    assert torch.autograd.gradcheck(f, (y, means))


@pytest.mark.parametrize("backend", ["triton", "torch"])
@pytest.mark.parametrize("classes,method", CONFIGS)
def test_hard_rounding_has_the_soft_gradient(backend, classes, method, device):
    y = (torch.randn(64) * 3).to(device)
    grads = []
    for hard in (False, True):
        leaf = y.clone().requires_grad_()
        out = sgaplus.sga_round(leaf, 0.5, method, classes, hard=hard, generator=torch.Generator().manual_seed(4),
                                backend=backend)
        if hard:
            assert torch.equal(out, out.round()), "hard rounding returns integers"
        grads.append(torch.autograd.grad(out.sum(), leaf)[0])
    torch.testing.assert_close(grads[1], grads[0])

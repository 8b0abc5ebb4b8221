"""The in-kernel noise is Gumbel(0, 1): Gumbel-max frequencies and moments, for both backends."""
import math

import pytest
import torch
from helpers import backend_noise
from scipy.stats import chisquare

import sgaplus
from sgaplus.ops.rounding import RoundingConfig
from sgaplus.ops.rounding.reference import _three_class_scores, _two_class_scores

EULER_GAMMA = 0.5772156649015329
N_DRAWS = 40_000



@pytest.mark.parametrize("backend", ["triton", "torch"])
@pytest.mark.parametrize("classes", [2, 3])
def test_gumbel_moments(backend, classes, device):
    g = backend_noise(backend, 1234, N_DRAWS, classes, device).cpu().double()
    assert torch.isfinite(g).all()
    assert abs(g.mean().item() - EULER_GAMMA) < 0.02  # standard error 1.28 / sqrt(N)
    assert abs(g.std().item() - math.pi / math.sqrt(6)) < 0.02
    if classes == 3:  # the classes' noise is independent
        assert abs(torch.corrcoef(g.T)[0, 1].item()) < 0.03


@pytest.mark.parametrize("backend", ["triton", "torch"])
@pytest.mark.parametrize("classes,method,value", [(2, "ssl", 0.3), (2, "atanh", -1.8), (3, "linear", 0.35),
                                                  (3, "ssl", -2.2)])
def test_hard_rounding_samples_softmax_of_logits(backend, classes, method, value, device):
    """Gumbel-max: P(class k) = softmax(l)_k with l = s / tau; chi-square test with a fixed seed."""
    tau = 0.7
    y = torch.full((N_DRAWS,), value, device=device)
    out = sgaplus.sga_round(y, tau, method, classes, hard=True, generator=torch.Generator().manual_seed(9),
                            backend=backend).cpu()
    v = torch.tensor(value, dtype=torch.float64)
    cfg = RoundingConfig(method, classes)
    if classes == 2:
        candidates = torch.stack([v.floor(), v.ceil()])
        scores = _two_class_scores(torch.stack([v - v.floor(), v.ceil() - v]).clamp(-1 + 1e-5, 1 - 1e-5), cfg)
    else:
        candidates = v.round() + torch.tensor([-1.0, 0.0, 1.0], dtype=torch.float64)
        scores = _three_class_scores(v - candidates, cfg)
    expected = torch.softmax(scores / tau, 0) * N_DRAWS
    observed = torch.stack([(out == c).sum() for c in candidates.float()]).double()
    assert observed.sum() == N_DRAWS, "every output is one of the classes"
    assert chisquare(observed.numpy(), expected.numpy()).pvalue > 1e-3

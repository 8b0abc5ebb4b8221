"""The op against the paper's formulas, written out here from scratch in float64: every score, the clamps and
floors with their values as literals, the documented defaults, the softmax with tau dividing twice, the classes'
centre rounded half to even. Nothing here comes from the package's constants or its reference, so a wrong
constant or a wrong default there cannot move both sides of a comparison together. The only thing taken from the
package is the uniforms a backend draws for a seed (the noise law they feed is tested in test_noise.py); they are
turned into per-class noise here, by hand: two classes, one Logistic sample log(u / (1 - u)) (the difference of
two Gumbel samples); three classes, -log of the spacings of the two sorted uniforms."""
import math

import pytest
import torch
from helpers import assert_close_scaled, backend_uniforms

import sgaplus

V = [-2.37, -0.81, -0.5, 0.26, 0.5, 1.73, 2.5, 3.14, -1.5, 0.93, 2.0, -1.0, 0.0]  # with integers: three classes
# (classes, method, the op's keyword arguments, the parameters the paper's formulas get): defaults and others
CASES = [
    (2, "atanh", {}, {}),
    (2, "linear", {}, {}),
    (2, "cosine", {}, {}),
    (2, "ssl", {}, {"a": 2.3}),
    (2, "ssl", {"a": 0.7}, {"a": 0.7}),
    (2, "ssl", {"a": 4.0}, {"a": 4.0}),
    (3, "linear", {}, {"r": 0.98, "n": 1.5}),
    (3, "linear", {"r": 0.8, "n": 2.5}, {"r": 0.8, "n": 2.5}),
    (3, "cosine", {}, {"r": 0.98, "n": 1.5}),
    (3, "cosine", {"r": 0.6, "n": 0.9}, {"r": 0.6, "n": 0.9}),
    (3, "ssl", {}, {"a": 1.4, "r": 0.98, "n": 1.5}),
    (3, "ssl", {"a": 2.0, "r": 0.5, "n": 1.2}, {"a": 2.0, "r": 0.5, "n": 1.2}),
]


def two_class_score(method, d, a=None):
    """s(d), the paper's unnormalised log-probability of the class at distance d (clamped to 1 - 1e-5)."""
    d = d.clamp(-1 + 1e-5, 1 - 1e-5)
    if method == "atanh":
        return -0.5 * torch.log((1 + d) / (1 - d))
    if method == "linear":
        return torch.log(1 - d)
    if method == "cosine":
        return torch.log((1 - 1e-7) * torch.cos(math.pi * d / 2) ** 2 + 1e-7)
    dc = d.clamp(1e-5, 1 - 1e-5)
    return -torch.log1p(((1 - dc) / dc) ** (-a))  # log sigmoid(-a logit(dc))


def three_class_score(method, delta, r, n, a=None):
    if method == "linear":
        return n * torch.log(torch.clamp(1 - r * delta.abs(), min=1e-6))
    if method == "cosine":
        return torch.log(torch.clamp(torch.cos(math.pi / 2 * torch.clamp(r * delta, -1, 1)), min=0) ** n + 1e-7)
    x = torch.clamp((r * delta / 1.5).abs(), 1e-6, 1 - 1e-6)
    return n * torch.log(torch.clamp(1 / (1 + (x / (1 - x)) ** a), min=1e-6))


def half_to_even(v):
    lower = torch.floor(v)
    frac = v - lower
    lower_even = torch.remainder(lower, 2) == 0
    return torch.where(frac > 0.5, lower + 1, torch.where(frac < 0.5, lower, torch.where(lower_even, lower, lower + 1)))


def expected(v, tau, uniforms, classes, method, params):
    """The op's output for values v (float64, differentiable) given the uniforms drawn for them."""
    if classes == 2:
        lower, upper = torch.floor(v), torch.ceil(v)
        centres = torch.stack([lower, upper])
        scores = torch.stack([two_class_score(method, v - lower, **params), two_class_score(method, upper - v,
                                                                                             **params)])
        u = uniforms[:, 0]
        noise = torch.stack([torch.zeros_like(u), torch.log(u / (1 - u))])
    else:
        c = half_to_even(v)
        centres = torch.stack([c - 1, c, c + 1])
        scores = torch.stack([three_class_score(method, v - k, **params) for k in centres])
        first, second = uniforms.min(dim=1).values, uniforms.max(dim=1).values
        noise = -torch.log(torch.stack([first, second - first, 1 - second]))
    weights = torch.softmax((scores / tau + noise) / tau, dim=0)
    return (weights * centres).sum(dim=0)


@pytest.mark.parametrize("backend", ["triton", "torch"])
@pytest.mark.parametrize("tau", [0.35, 1.0])
@pytest.mark.parametrize("classes,method,kwargs,params", CASES,
                         ids=[f"{m}-{c}-{'-'.join(f'{k}{v}' for k, v in kw.items()) or 'defaults'}"
                              for c, m, kw, _ in CASES])
def test_the_op_computes_the_papers_formulas(backend, tau, classes, method, kwargs, params, device):
    """Outputs and gradients (to y and to means) of the op equal the formulas above, at the documented defaults
    and at other parameters."""
    v = torch.tensor(V, dtype=torch.float64)
    means = torch.linspace(-0.375, 0.625, len(V), dtype=torch.float64).mul(8).round().div(8)  # y - means is exact
    seed = 5 + classes
    uniforms = backend_uniforms(backend, seed, len(V), classes, device).double().cpu()
    y = (v + means).float().to(device).requires_grad_()
    m = means.float().to(device).requires_grad_()
    out = sgaplus.sga_round(y, tau, method, classes, means=m, seed=seed, backend=backend, **kwargs)
    grad_y, grad_means = torch.autograd.grad(out.sum(), (y, m))
    exact_v = (y.detach().double() - m.detach().double()).cpu().requires_grad_()  # v as the op sees it
    want = expected(exact_v, tau, uniforms, classes, method, params)
    (want_grad,) = torch.autograd.grad(want.sum(), exact_v)
    assert_close_scaled(out.cpu(), want + m.detach().double().cpu(), 2e-6, "output")
    assert_close_scaled(grad_y.cpu(), want_grad, 1e-4, "gradient to y")
    assert_close_scaled(grad_means.cpu(), 1 - want_grad, 1e-4, "gradient to means")


def test_a_wrong_formula_is_seen():
    """Negative control: the comparison distinguishes the parameters it is given (ssl a=2.3 against a=2.0, and
    three-class r), so a default swapped or ignored in the op fails above."""
    v, u = torch.tensor(V, dtype=torch.float64), torch.full((len(V), 2), 0.3, dtype=torch.float64)
    u[:, 1] = 0.8
    assert (expected(v, 0.5, u[:, :1], 2, "ssl", {"a": 2.3}) - expected(v, 0.5, u[:, :1], 2, "ssl", {"a": 2.0})
            ).abs().max() > 1e-3
    assert (expected(v, 0.5, u, 3, "ssl", {"a": 1.4, "r": 0.98, "n": 1.5}) -
            expected(v, 0.5, u, 3, "ssl", {"a": 1.4, "r": 0.9, "n": 1.5})).abs().max() > 1e-3


def test_the_documented_defaults():
    """The README's defaults are the API's: a = 2.3 (two-class ssl) or 1.4 (three-class ssl), r = 0.98, n = 1.5;
    the refiner's lr 5e-3, 2000 iterations, a check every 10 steps; SGA+'s schedule exp(-1e-3 t), at most 1."""
    assert sgaplus.RoundingConfig("ssl", 2).a == 2.3 and sgaplus.RoundingConfig("ssl", 3).a == 1.4
    three = sgaplus.RoundingConfig("linear", 3)
    assert (three.r, three.n, three.a) == (0.98, 1.5, None)
    assert sgaplus.SGARound().config == sgaplus.RoundingConfig("ssl", 2, a=2.3)
    schedule = sgaplus.TemperatureSchedule()
    assert (schedule.rate, schedule.tau_max) == (1e-3, 1.0) and schedule(1000) == pytest.approx(math.exp(-1))
    from types import SimpleNamespace
    refiner = sgaplus.LatentRefiner(SimpleNamespace(lmbda=0.01))  # a stand-in codec: only the settings are read
    assert (refiner.lr, refiner.iterations, refiner.check_every, refiner.method) == (5e-3, 2000, 10, "ssl")
    assert refiner.schedule == schedule

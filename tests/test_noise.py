"""The op's noise: uniforms strictly inside (0, 1) on both backends, and the cheaper samplers (one Logistic
sample for two classes, spacings of two sorted uniforms for three) equal in law to the Gumbel-softmax
formulation (docs/rounding.md, "Noise")."""
import pytest
import torch
import triton
import triton.language as tl
from helpers import CONFIGS, backend_uniforms
from scipy.stats import chisquare, ks_2samp, kstest

import sgaplus
from sgaplus.ops.rounding import RoundingConfig, chunked
from sgaplus.ops.rounding.noise import gumbel_like, logit_noise, uniforms_from_integers
from sgaplus.ops.rounding.reference import _three_class_scores, _two_class_scores, sga_round_reference

N_DRAWS = 40_000
EXTREME_BITS = [0, 1, 2 ** 31, 2 ** 32 - 2, 2 ** 32 - 1]


@pytest.mark.parametrize("backend", ["triton", "torch"])
@pytest.mark.parametrize("classes", [2, 3])
def test_uniforms_are_uniform_and_strictly_inside_the_unit_interval(backend, classes, device):
    u = backend_uniforms(backend, 1234, N_DRAWS, classes, device).cpu().double()
    assert u.shape == (N_DRAWS, classes - 1)
    assert (u > 0).all() and (u < 1).all()
    for column in u.T:
        assert kstest(column.numpy(), "uniform").pvalue > 1e-3
    if classes == 3:  # the pair is independent and never equal
        assert abs(torch.corrcoef(u.T)[0, 1].item()) < 0.03
        assert (u[:, 0] != u[:, 1]).all()


@triton.jit
def _uniforms_of_bits_kernel(bits_ptr, out_ptr, N: tl.constexpr):
    from sgaplus.kernels.rounding import three_class_uniforms_from_bits, two_class_uniform_from_bits
    i = tl.arange(0, N)
    bits = tl.load(bits_ptr + i)
    u_a, u_b = three_class_uniforms_from_bits(bits, bits)
    tl.store(out_ptr + i, two_class_uniform_from_bits(bits))
    tl.store(out_ptr + N + i, u_a)
    tl.store(out_ptr + 2 * N + i, u_b)


def test_extreme_random_words_give_uniforms_strictly_inside_the_unit_interval(device_of_kernels):
    """The NaN bug: the former ((bits >> 8) + 0.5) / 2^24 rounds to exactly 1.0 in float32 for the top words,
    an infinite Gumbel sample. Every word, the extremes included, must map strictly inside (0, 1)."""
    bits = torch.tensor(EXTREME_BITS + [7] * 3, dtype=torch.int64).to(torch.uint32).to(device_of_kernels)
    out = torch.empty(3 * 8, device=device_of_kernels)
    _uniforms_of_bits_kernel[(1,)](bits, out, N=8)
    two, u_a, u_b = out.cpu().double().view(3, 8)
    for u in (two, u_a, u_b):
        assert (u > 0).all() and (u < 1).all(), u
    assert (u_a != u_b).all()
    # negative control: the former formula fails this very check on the top words
    former = ((bits.cpu().to(torch.int64) >> 8).to(torch.float32) + 0.5) * (1.0 / 16777216.0)
    assert (former == 1.0).any()


@pytest.fixture
def device_of_kernels():
    from helpers import KERNEL_DEVICE
    return KERNEL_DEVICE


def test_torch_path_uniforms_at_the_extremes_are_inside_and_give_finite_outputs(monkeypatch):
    """Same guarantee on the torch path (its former rand() + 2^-25 also rounds to 1.0), end to end: forced to
    the extreme grid points, forward and backward stay finite for every method."""
    for classes, top in ((2, 2 ** 23 - 1), (3, 2 ** 22 - 1)):
        k = torch.tensor([[0] * (classes - 1), [top] * (classes - 1)])
        u = uniforms_from_integers(k, classes)
        assert (u > 0).all() and (u < 1).all()
    former = torch.tensor(1 - 2.0 ** -24, dtype=torch.float32) + 2.0 ** -25  # negative control
    assert former == 1.0

    def extremes(n, classes, device, generator=None):
        top = 2 ** (23 if classes == 2 else 22) - 1
        k = torch.tensor([0, top], device=device).repeat(n // 2 + 1)[:n]
        k = k[:, None].expand(n, classes - 1) if classes == 2 else torch.stack([k, top - k], dim=1)
        return uniforms_from_integers(k, classes)

    monkeypatch.setattr(chunked, "draw_uniforms", extremes)
    for classes, method in CONFIGS:
        y = (torch.linspace(-3, 3, 64)).requires_grad_()
        out = sgaplus.sga_round(y, 0.05, method, classes, seed=0, backend="torch")
        (grad,) = torch.autograd.grad(out.sum(), y)
        assert torch.isfinite(out).all() and torch.isfinite(grad).all(), (classes, method)


def gumbel_formulation_samples(value, tau, cfg, n, seed):
    """n soft outputs at y = value from the paper's formulation: i.i.d. Gumbel noise per class; rounded to
    float32 as the op's outputs are (near the classes, where mass piles up, float64 would differ from them)."""
    y = torch.full((n,), value, dtype=torch.float64)
    noise = gumbel_like((n, cfg.classes), torch.float64, "cpu", torch.Generator().manual_seed(seed))
    return sga_round_reference(y, tau, cfg, noise=noise).float().double()


VALUES = {2: (0.3, -1.8), 3: (0.35, -2.2)}


@pytest.mark.parametrize("backend", ["triton", "torch"])
@pytest.mark.parametrize("classes,method", CONFIGS)
def test_soft_outputs_have_the_law_of_the_gumbel_formulation(backend, classes, method, device):
    """Two-sample Kolmogorov-Smirnov test, fixed seeds, at two values and two temperatures per configuration."""
    cfg = RoundingConfig(method, classes)
    for value in VALUES[classes]:
        for tau in (0.4, 1.0):
            y = torch.full((N_DRAWS // 2,), value, device=device)
            ours = sgaplus.sga_round(y, tau, method, classes, seed=17, backend=backend).cpu().double()
            theirs = gumbel_formulation_samples(value, tau, cfg, N_DRAWS // 2, seed=23)
            assert torch.isfinite(ours).all()
            p = ks_2samp(ours.numpy(), theirs.numpy()).pvalue
            assert p > 1e-3, (value, tau, p)


@pytest.mark.parametrize("classes,method", [(2, "ssl"), (3, "linear")])
def test_the_distribution_test_rejects_a_wrong_sampler(classes, method):
    """Negative control: the same test sees a sampler whose law is slightly off (noise 15% too wide)."""
    cfg = RoundingConfig(method, classes)
    value, tau, n = VALUES[classes][0], 0.7, N_DRAWS // 2
    u = chunked.uniforms(5, n, classes).double()
    wrong = sga_round_reference(torch.full((n,), value, dtype=torch.float64), tau, cfg,
                                noise=1.15 * logit_noise(u, classes)).float().double()
    theirs = gumbel_formulation_samples(value, tau, cfg, n, seed=23)
    assert ks_2samp(wrong.numpy(), theirs.numpy()).pvalue < 1e-6
    right = sga_round_reference(torch.full((n,), value, dtype=torch.float64), tau, cfg,
                                noise=logit_noise(u, classes)).float().double()
    assert ks_2samp(right.numpy(), theirs.numpy()).pvalue > 1e-3


@pytest.mark.parametrize("backend", ["triton", "torch"])
@pytest.mark.parametrize("classes,method,value", [(2, "ssl", 0.3), (2, "atanh", -1.8), (3, "linear", 0.35),
                                                  (3, "ssl", -2.2), (3, "cosine", 0.1)])
def test_hard_rounding_samples_softmax_of_logits(backend, classes, method, value, device):
    """Gumbel-max: P(class k) = softmax(l)_k with l = s / tau; chi-square test with a fixed seed."""
    tau = 0.7
    y = torch.full((N_DRAWS,), value, device=device)
    out = sgaplus.sga_round(y, tau, method, classes, hard=True, seed=9, backend=backend).cpu()
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


# noise per row: a (batch,) seed keys row b's noise by (seed[b], offset within row b) (docs/op.md, "Noise per row")
ROW_SHAPE = (3, 5, 7)  # 35 elements a row: not a multiple of a Philox call's elements, so calls would straddle rows


@pytest.mark.parametrize("backend", ["triton", "torch"])
@pytest.mark.parametrize("classes,method", [(2, "ssl"), (3, "linear")])
def test_a_seed_per_row_is_the_op_row_by_row(backend, classes, method, device):
    """Forward (soft and hard) and backward with a seed per row equal the op run on each row alone with its seed."""
    torch.manual_seed(0)
    y = (torch.randn(ROW_SHAPE, device=device) * 3).requires_grad_()
    means = torch.randn(ROW_SHAPE, device=device).requires_grad_()
    seeds = torch.tensor([5, 2 ** 40 + 3, 5], device=device)
    for hard in (False, True):
        out = sgaplus.sga_round(y, 0.6, method, classes, means=means, hard=hard, seed=seeds, backend=backend)
        grads = torch.autograd.grad(out.sum(), (y, means))
        for b in range(ROW_SHAPE[0]):
            row = sgaplus.sga_round(y[b:b + 1], 0.6, method, classes, means=means[b:b + 1], hard=hard,
                                    seed=int(seeds[b]), backend=backend)
            row_grads = torch.autograd.grad(row.sum(), (y, means))
            assert torch.equal(out[b], row[0]), (hard, b)
            assert torch.equal(grads[0][b], row_grads[0][b]) and torch.equal(grads[1][b], row_grads[1][b]), (hard, b)
    # rows 0 and 2 share a seed and their offsets, so their noise: equal values round alike
    same = torch.full(ROW_SHAPE, 0.4, device=device)
    out = sgaplus.sga_round(same, 0.6, method, classes, seed=seeds, backend=backend)
    assert torch.equal(out[0], out[2]) and not torch.equal(out[0], out[1])


@pytest.mark.parametrize("backend", ["triton", "torch"])
def test_a_seed_per_row_gives_the_reference_with_each_rows_own_noise(backend, device):
    """The backward redraws each row's forward noise: the op's output and gradient are the reference's fed the
    noise the backend draws for each row's seed alone."""
    cfg = RoundingConfig("ssl", 2)
    torch.manual_seed(1)
    y = (torch.randn(ROW_SHAPE, device=device) * 3).double().cpu()
    seeds = [11, 12, 13]
    row_numel = y[0].numel()
    noise = torch.stack([backend_noise_rows(backend, s, row_numel, device) for s in seeds]).view(*ROW_SHAPE, 2)
    leaf = y.clone().requires_grad_()
    expected = sga_round_reference(leaf, 0.6, cfg, noise=noise)
    (expected_grad,) = torch.autograd.grad(expected.sum(), leaf)
    ours_leaf = y.float().to(device).requires_grad_()
    ours = sgaplus.sga_round(ours_leaf, 0.6, seed=torch.tensor(seeds, device=device), backend=backend)
    (ours_grad,) = torch.autograd.grad(ours.sum(), ours_leaf)
    torch.testing.assert_close(ours.cpu().double(), expected, atol=2e-4, rtol=1e-4)
    torch.testing.assert_close(ours_grad.cpu().double(), expected_grad, atol=2e-3, rtol=2e-3)


def backend_noise_rows(backend, seed, n_elements, device):
    """The two-class logit noise (n_elements, 2), float64, the backend adds for `seed` alone."""
    return logit_noise(backend_uniforms(backend, seed, n_elements, 2, device).double().cpu(), 2)


@pytest.mark.parametrize("backend", ["triton", "torch"])
@pytest.mark.parametrize("classes,method", [(2, "ssl"), (3, "linear")])
def test_each_row_has_the_law_and_rows_are_independent(backend, classes, method, device):
    """Each row of a per-row-seeded call has the Gumbel formulation's law (KS), and two rows' outputs are
    uncorrelated."""
    cfg = RoundingConfig(method, classes)
    value, tau, rows = VALUES[classes][0], 0.7, 4
    y = torch.full((rows, N_DRAWS // 4), value, device=device)
    out = sgaplus.sga_round(y, tau, method, classes, seed=torch.tensor([3, 4, 5, 6], device=device),
                            backend=backend).cpu().double()
    theirs = gumbel_formulation_samples(value, tau, cfg, N_DRAWS // 4, seed=29)
    for b in range(rows):
        assert ks_2samp(out[b].numpy(), theirs.numpy()).pvalue > 1e-3, b
    correlation = torch.corrcoef(out)[~torch.eye(rows, dtype=torch.bool)].abs().max().item()
    assert correlation < 5 / (N_DRAWS // 4) ** 0.5, correlation


def test_the_reference_keys_its_noise_per_row_too():
    y = torch.randn(ROW_SHAPE, dtype=torch.float64) * 3
    cfg = RoundingConfig("ssl", 2)
    out = sga_round_reference(y, 0.6, cfg, seed=[1, 2, 3])
    for b in range(ROW_SHAPE[0]):
        assert torch.equal(out[b], sga_round_reference(y[b], 0.6, cfg, seed=b + 1))


def test_a_seed_of_the_wrong_shape_is_refused():
    y = torch.zeros(ROW_SHAPE)
    for seed in (torch.tensor([1, 2]), torch.zeros(3, 1, dtype=torch.int64)):
        with pytest.raises(ValueError, match="one per row of y"):
            sgaplus.sga_round(y, 0.5, seed=seed)

"""The op inside compiled code: torch.compile(fullgraph=True) traces through it; opcheck passes."""
import pytest
import torch

import sgaplus
from sgaplus.ops._common import draw_seed


def loss_fn(y, means, tau):
    return (sgaplus.sga_round(y, tau, "ssl", means=means) - 0.3).square().sum()


def test_fullgraph_compile_matches_eager_and_tensor_tau_changes_do_not_recompile():
    torch._dynamo.reset()
    compiled = torch.compile(loss_fn, fullgraph=True, backend="aot_eager")
    y = (torch.randn(4, 8, 8) * 3).requires_grad_()
    means = torch.randn(4, 8, 8).requires_grad_()
    results = []
    for fn in (loss_fn, compiled):
        torch.manual_seed(0)
        loss = fn(y, means, 0.5)
        results.append((loss, *torch.autograd.grad(loss, (y, means))))
    for eager, traced in zip(*results):
        torch.testing.assert_close(traced, eager)
    compiled(y, means, torch.tensor(0.5))
    with torch._dynamo.config.patch(error_on_recompile=True):
        for tau in (0.45, 0.4, 0.2):
            compiled(y, means, torch.tensor(tau))  # a recompile would raise


def test_compiled_calls_draw_fresh_noise():
    compiled = torch.compile(lambda y: sgaplus.sga_round(y, 0.5, hard=True), fullgraph=True, backend="aot_eager")
    y = torch.full((2000,), 0.5)
    assert not torch.equal(compiled(y), compiled(y))


@pytest.mark.parametrize("backend", ["torch", "triton"])
@pytest.mark.parametrize("with_means", [False, True])
def test_opcheck(backend, with_means, device):
    y = (torch.randn(3, 5, device=device) * 2).requires_grad_()
    means = torch.randn(3, 5, device=device).requires_grad_() if with_means else None
    seed = draw_seed(torch.Generator().manual_seed(0))
    args = (y, means, seed, torch.tensor(0.5), "ssl", 2, False, 2.3, None, None, backend)
    torch.library.opcheck(torch.ops.sgaplus.sga_round_forward.default, args)


@pytest.mark.cuda
def test_fullgraph_inductor_on_cuda():
    compiled = torch.compile(loss_fn, fullgraph=True)
    y = (torch.randn(8, 64, 16, 16, device="cuda") * 3).requires_grad_()
    means = torch.randn(8, 64, 16, 16, device="cuda").requires_grad_()
    torch.manual_seed(1)
    eager = torch.autograd.grad(loss_fn(y, means, 0.5), (y, means))
    torch.manual_seed(1)
    traced = torch.autograd.grad(compiled(y, means, 0.5), (y, means))
    for a, b in zip(traced, eager):
        torch.testing.assert_close(a, b)


def test_explicit_seed_reproduces_and_is_checked():
    y = torch.randn(500) * 3
    assert torch.equal(sgaplus.sga_round(y, 0.5, seed=7), sgaplus.sga_round(y, 0.5, seed=torch.tensor([7])))
    assert not torch.equal(sgaplus.sga_round(y, 0.5, seed=7), sgaplus.sga_round(y, 0.5, seed=8))
    with pytest.raises(ValueError, match="either seed or generator"):
        sgaplus.sga_round(y, 0.5, seed=1, generator=torch.Generator())
    with pytest.raises(ValueError, match="seed must be an integer"):
        sgaplus.sga_round(y, 0.5, seed=-1)
    with pytest.raises(TypeError, match="integer tensor"):
        sgaplus.sga_round(y, 0.5, seed=torch.tensor(1.5))


@pytest.mark.parametrize("architecture", ["mbt2018-mean", "mbt2018", "bmshj2018-factorized"])
def test_refiner_relaxed_loss_traces_as_one_graph(architecture):
    """A refinement step's loss (codec + op twice; a context model's context; no z) compiles with fullgraph=True:
    no graph break."""
    from helpers import bundled_codec, random_codec, sample_crop

    from sgaplus.refine.refiner import LatentRefiner, pad_to_multiple
    codec = bundled_codec() if architecture == "mbt2018-mean" else random_codec(architecture)
    refiner = LatentRefiner(codec, "ssl")
    x = sample_crop(64)
    with torch.no_grad():
        y = codec.analysis(pad_to_multiple(x, 64))
        z = codec.hyper_analysis(y)
        means = codec.gaussian_parameters(codec.hyper_synthesis(torch.round(z), y.shape), y)[1] \
            if codec.context_model else None
    args = (x, y.requires_grad_(), None if z is None else z.requires_grad_(), torch.tensor(0.5),
            torch.tensor([3, 4]), None, means)
    torch._dynamo.reset()
    compiled = torch.compile(refiner.relaxed_loss, fullgraph=True, backend="aot_eager")
    (loss, next_means), (expected_loss, expected_means) = compiled(*args), refiner.relaxed_loss(*args)
    torch.testing.assert_close(loss, expected_loss)
    assert (next_means is None) == (not codec.context_model)
    if codec.context_model:
        torch.testing.assert_close(next_means, expected_means)

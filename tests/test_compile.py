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


def test_refiner_relaxed_loss_traces_as_one_graph():
    """A refinement step's loss (codec + op twice) compiles with fullgraph=True: no graph break."""
    from helpers import bundled_codec, sample_crop

    from sgaplus.refine import LatentRefiner, pad_to_multiple
    refiner = LatentRefiner(bundled_codec(), "ssl")
    x = sample_crop(64)
    with torch.no_grad():
        y = refiner.codec.analysis(pad_to_multiple(x, 64))
        z = refiner.codec.hyper_analysis(y)
    args = (x, y.requires_grad_(), z.requires_grad_(), torch.tensor(0.5), torch.tensor([3, 4]))
    torch._dynamo.reset()
    compiled = torch.compile(refiner.relaxed_loss, fullgraph=True, backend="aot_eager")
    torch.testing.assert_close(compiled(*args), refiner.relaxed_loss(*args))

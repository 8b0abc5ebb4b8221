"""The Triton kernels compiled for a GPU (no interpreter), at scale; skipped without CUDA."""
import pytest
import torch
from helpers import CONFIGS, assert_close_scaled, backend_noise, bundled_codec, sample_crop

import sgaplus
from sgaplus.ops.rounding import RoundingConfig
from sgaplus.ops.rounding.reference import sga_round_reference
from sgaplus.refine.refiner import LatentRefiner

pytestmark = pytest.mark.cuda


# float32: the error budget of the compiled kernels' approximate transcendentals (docs/kernels.md)
@pytest.mark.parametrize("dtype,fwd_tol,grad_tol", [(torch.float32, 4e-6, 1e-4), (torch.bfloat16, 1e-2, 1.5e-2)],
                         ids=["float32", "bfloat16"])
@pytest.mark.parametrize("hard", [False, True], ids=["soft", "hard"])
@pytest.mark.parametrize("classes,method", CONFIGS)
def test_kernels_match_reference_at_scale(classes, method, hard, dtype, fwd_tol, grad_tol):
    shape = (4, 192, 48, 64)  # four Kodak-size latents, 2.4 M elements
    gen = torch.Generator(device="cuda").manual_seed(0)
    y = (torch.randn(shape, device="cuda", generator=gen) * 3).to(dtype).requires_grad_()
    means = torch.randn(shape, device="cuda", generator=gen).to(dtype).requires_grad_()
    grad_out = torch.randn(shape, device="cuda", generator=gen).to(dtype)
    out = sgaplus.sga_round(y, 0.5, method, classes, means=means, hard=hard, seed=1)
    grads = torch.autograd.grad(out, (y, means), grad_out)
    noise = backend_noise("triton", 1, y.numel(), classes, "cuda")
    ref_in = [t.detach().double().requires_grad_() for t in (y, means)]
    ref = sga_round_reference(ref_in[0], 0.5, RoundingConfig(method, classes, hard), means=ref_in[1],
                              noise=noise.view(*shape, classes).double())
    ref_grads = torch.autograd.grad(ref, ref_in, grad_out.double())
    assert_close_scaled(out, ref, fwd_tol, "forward")
    for grad, ref_grad in zip(grads, ref_grads):
        assert_close_scaled(grad, ref_grad, grad_tol, "gradient")


def test_auto_backend_on_cuda_is_the_kernel():
    y = torch.randn(1000, device="cuda")
    gen = lambda: torch.Generator().manual_seed(2)  # noqa: E731
    torch.testing.assert_close(sgaplus.sga_round(y, 0.5, generator=gen()),
                               sgaplus.sga_round(y, 0.5, generator=gen(), backend="triton"))


def test_tau_as_cuda_tensor_and_new_tau_does_not_recompile():
    from sgaplus.kernels import rounding
    y = torch.randn(4096, device="cuda")
    sgaplus.sga_round(y, 0.9)
    compiled = len(rounding.two_class_forward_kernel.device_caches[0][0])
    for tau in (0.8, 0.31, torch.tensor(0.05, device="cuda")):
        sgaplus.sga_round(y, tau)
    assert len(rounding.two_class_forward_kernel.device_caches[0][0]) == compiled


def test_flat_indices_past_two_to_the_31():
    """Elements i and i + 2^31 draw different noise (no 32-bit wrap-around)."""
    n = 2 ** 31 + 4096
    if torch.cuda.get_device_properties(0).total_memory < 3 * n * 2:
        pytest.skip("needs about 13 GB of GPU memory")
    y = torch.full((n,), 0.5, device="cuda", dtype=torch.float16)
    out = sgaplus.sga_round(y, 1.0, hard=True)
    head, tail = out[:4096], out[2 ** 31:]
    del out
    assert torch.isfinite(tail).all()
    assert (head != tail).float().mean() > 0.3


def test_a_context_model_refines_on_cuda_with_its_exact_checks_on_the_cpu():
    """The first check of a context model is computed on the CPU as the decoder computes; its latents come back
    to the GPU, and they are the decoder's own values (what it reconstructs from their symbols), bit for bit."""
    x = sample_crop(64).cuda()
    codec = bundled_codec(architecture="mbt2018").to("cuda")
    result = LatentRefiner(codec, "ssl", iterations=10, check_every=5).refine(x)
    assert result.y_hat.is_cuda and result.best.loss[0] <= result.base.loss[0]
    unrefined = LatentRefiner(codec, "ssl", iterations=0).refine(x)
    y_hat, z_hat = unrefined.y_hat.cpu(), unrefined.z_hat.cpu()
    assert unrefined.y_hat.is_cuda
    assert torch.equal(bundled_codec(architecture="mbt2018").decoder_y(y_hat, z_hat, hard=True), y_hat)

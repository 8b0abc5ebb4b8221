"""What CUDA graph capture needs: with seed and tau on y's device, the kernels' path reads nothing on
the host, forward or backward; on a GPU, a captured step replays with new values written in place."""
import pytest
import torch
from helpers import KERNEL_DEVICE
from torch.utils._python_dispatch import TorchDispatchMode

import sgaplus

HOST_READS = {torch.ops.aten._local_scalar_dense.default, torch.ops.aten.item.default}


class RefuseHostReads(TorchDispatchMode):
    """Raises on any read of a tensor's value into Python (what .item(), int() and float() do)."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func in HOST_READS:
            raise AssertionError(f"host read: {func}")
        return func(*args, **(kwargs or {}))


def loss(y, means, tau, seed, classes):
    method = "ssl" if classes == 2 else "linear"
    return (sgaplus.sga_round(y, tau, method, classes, means=means, seed=seed, backend="triton") - 0.25).square().sum()


def test_the_mode_catches_a_host_read():
    with pytest.raises(AssertionError, match="host read"), RefuseHostReads():
        float(torch.tensor(0.5))


@pytest.mark.parametrize("classes", [2, 3])
def test_kernels_path_reads_nothing_on_the_host(classes):
    y = (torch.randn(6, 40, device=KERNEL_DEVICE) * 3).requires_grad_()
    means = torch.randn(6, 40, device=KERNEL_DEVICE).requires_grad_()
    tau = torch.tensor(0.4, device=KERNEL_DEVICE)
    seed = torch.tensor(123, device=KERNEL_DEVICE)
    with RefuseHostReads():
        grads = torch.autograd.grad(loss(y, means, tau, seed, classes), (y, means))
    torch.testing.assert_close(grads, torch.autograd.grad(loss(y, means, 0.4, 123, classes), (y, means)))


def test_drawn_seed_comes_from_the_device_generator():
    """Without seed or generator the seed is drawn on y's device (no copy, capturable there)."""
    y = torch.randn(300, device=KERNEL_DEVICE)
    torch.manual_seed(5)
    first = sgaplus.sga_round(y, 0.5, backend="triton")
    torch.manual_seed(5)
    with RefuseHostReads():
        again = sgaplus.sga_round(y, torch.tensor(0.5, device=KERNEL_DEVICE), backend="triton")
    torch.testing.assert_close(again, first)


@pytest.mark.cuda
@pytest.mark.parametrize("classes", [2, 3])
def test_cuda_graph_replays_with_new_tau_and_seed(classes):
    y = (torch.randn(8, 64, 24, 32, device="cuda") * 3).requires_grad_()
    means = torch.randn(8, 64, 24, 32, device="cuda").requires_grad_()
    tau = torch.tensor(0.9, device="cuda")
    seed = torch.tensor(1, device="cuda")
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):  # warm-up compiles the kernels outside the capture
        loss(y, means, tau, seed, classes).backward()
    torch.cuda.current_stream().wait_stream(stream)
    y.grad = means.grad = None
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        captured_loss = loss(y, means, tau, seed, classes)
        captured_loss.backward()
    for new_tau, new_seed in ((0.5, 7), (0.05, 8)):
        tau.fill_(new_tau)
        seed.fill_(new_seed)
        graph.replay()
        expected = torch.autograd.grad(loss(y, means, new_tau, new_seed, classes), (y, means))
        torch.testing.assert_close(captured_loss, loss(y, means, new_tau, new_seed, classes))
        torch.testing.assert_close((y.grad, means.grad), expected)


@pytest.mark.cuda
def test_reduce_overhead_compile_matches_eager():
    """torch.compile(mode="reduce-overhead") runs the op inside CUDA graphs; results match eager."""
    torch._dynamo.reset()
    compiled = torch.compile(loss, mode="reduce-overhead")
    y = (torch.randn(4, 64, 16, 16, device="cuda") * 3).requires_grad_()
    for i, tau in enumerate((0.9, 0.5, 0.2, 0.1)):
        seed, tau = torch.tensor(i, device="cuda"), torch.tensor(tau, device="cuda")
        value = compiled(y, None, tau, seed, 2)
        grad = torch.autograd.grad(value, y)[0]
        expected = loss(y, None, tau, seed, 2)
        torch.testing.assert_close(value, expected)
        torch.testing.assert_close(grad, torch.autograd.grad(expected, y)[0])

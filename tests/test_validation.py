"""Bad input gets a clear error, never a silent wrong result."""
import math

import pytest
import torch
from helpers import KERNEL_DEVICE

import sgaplus

Y = torch.randn(4, 5)


@pytest.mark.parametrize("kwargs,error,message", [
    (dict(method="round"), ValueError, "valid methods: atanh, linear, cosine, ssl"),
    (dict(method="atanh", classes=3), ValueError, "valid methods: linear, cosine, ssl"),
    (dict(classes=4), ValueError, "classes must be 2 or 3"),
    (dict(classes=True), ValueError, "classes must be 2 or 3"),
    (dict(a=0.0), ValueError, "a must be a finite number > 0"),
    (dict(a=-1.0), ValueError, "a must be a finite number > 0"),
    (dict(a=math.inf), ValueError, "a must be a finite number > 0"),
    (dict(method="linear", a=2.0), ValueError, "does not use it"),
    (dict(classes=3, r=0.0), ValueError, "r must be a finite number > 0"),
    (dict(classes=3, r=1.5), ValueError, r"r must lie in \(0, 1\]"),
    (dict(classes=3, n=0.0), ValueError, "n must be a finite number > 0"),
    (dict(classes=3, n=math.nan), ValueError, "n must be a finite number > 0"),
    (dict(r=0.9), ValueError, "three-class parameters"),
    (dict(hard="yes"), ValueError, "hard must be True or False"),
    (dict(backend="cuda"), ValueError, "valid backends: auto, triton, torch"),
])
def test_bad_parameters(kwargs, error, message):
    with pytest.raises(error, match=message):
        sgaplus.sga_round(Y, 0.5, **kwargs)


@pytest.mark.parametrize("tau,error,message", [
    (0.0, ValueError, "tau must be finite and > 0"),
    (-0.1, ValueError, "tau must be finite and > 0"),
    (math.nan, ValueError, "tau must be finite and > 0"),
    (math.inf, ValueError, "tau must be finite and > 0"),
    (torch.tensor([0.5, 0.4]), ValueError, "one-element tensor"),
    (torch.tensor(-1.0), ValueError, "tau must be finite and > 0"),
    (torch.tensor(3), TypeError, "floating-point tensor"),
    (torch.tensor(0.5, requires_grad=True), ValueError, "no gradient"),
    ("0.5", TypeError, "tau must be a float"),
])
def test_bad_temperature(tau, error, message):
    with pytest.raises(error, match=message):
        sgaplus.sga_round(Y, tau)


def test_tensor_temperature_is_accepted():
    gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    torch.testing.assert_close(sgaplus.sga_round(Y, torch.tensor(0.5), generator=gen()),
                               sgaplus.sga_round(Y, 0.5, generator=gen()))


@pytest.mark.parametrize("y,means,error,message", [
    (torch.arange(6), None, TypeError, "floating-point tensor, got torch.int64"),
    ([0.5, 1.5], None, TypeError, "must be a torch.Tensor"),
    (Y, torch.randn(3, 5), ValueError, r"does not broadcast to y's shape \(4, 5\)"),
    (Y, torch.randn(2, 4, 5), ValueError, "does not broadcast"),
    (Y, torch.ones(4, 5, dtype=torch.int32), TypeError, "means must be a floating-point tensor"),
])
def test_bad_tensors(y, means, error, message):
    with pytest.raises(error, match=message):
        sgaplus.sga_round(y, 0.5, means=means)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only message")
def test_triton_backend_on_cpu_without_interpreter_is_refused(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    with pytest.raises(ValueError, match="needs a CUDA tensor"):
        sgaplus.sga_round(Y, 0.5, backend="triton")


def test_triton_backend_refuses_float64():
    with pytest.raises(TypeError, match="float32, float16 and bfloat16"):
        sgaplus.sga_round(Y.double().to("cuda" if torch.cuda.is_available() else "cpu"), 0.5, backend="triton")


@pytest.mark.skipif(torch.cuda.is_available(), reason="on a GPU the assertion ends the test process's CUDA context")
@pytest.mark.parametrize("bad", [0.0, -1.0, math.nan, math.inf])
def test_bad_temperature_on_the_kernels_device_is_asserted_without_reading(bad):
    """The kernels' path checks a tau already on y's device with torch._assert_async (no host read)."""
    with pytest.raises(RuntimeError, match="tau must be finite and > 0"):
        sgaplus.sga_round(Y, torch.tensor(bad), backend="triton")


def test_triton_backend_refuses_float64_means():
    with pytest.raises(TypeError, match="float32, float16 and bfloat16, got torch.float64"):
        sgaplus.sga_round(Y.to(KERNEL_DEVICE), 0.5, means=torch.zeros(4, 5, dtype=torch.float64, device=KERNEL_DEVICE),
                          backend="triton")


@pytest.mark.parametrize("y_dtype,means_dtype", [(torch.float32, torch.bfloat16), (torch.float16, torch.bfloat16)])
def test_mixed_half_means_reach_the_kernels_as_float32_with_gradients_in_their_own_dtype(y_dtype, means_dtype,
                                                                                           monkeypatch):
    """The kernels see means in y's dtype or float32 only (what the compile test enumerates: a third dtype would
    launch a kernel no CI run compiled); the cast is exact, and the gradient comes back in the means' dtype."""
    from sgaplus.kernels import rounding
    seen = []

    def recording(launcher):
        def launch(y, means, *args, **kwargs):
            seen.append((y.dtype, means.dtype))
            return launcher(y, means, *args, **kwargs)
        return launch

    for name in ("forward", "backward"):
        monkeypatch.setattr(rounding, name, recording(getattr(rounding, name)))
    y = (torch.randn(6, 7) * 3).to(KERNEL_DEVICE, y_dtype).requires_grad_()
    means = torch.randn(6, 7).to(KERNEL_DEVICE, means_dtype).requires_grad_()
    out = sgaplus.sga_round(y, 0.5, means=means, seed=3, backend="triton")
    (grad,) = torch.autograd.grad(out.sum(), means)
    assert seen == [(y_dtype, torch.float32)] * 2
    assert grad.dtype == means_dtype
    same = sgaplus.sga_round(y, 0.5, means=means.detach().float(), seed=3, backend="triton")
    torch.testing.assert_close(out, same)

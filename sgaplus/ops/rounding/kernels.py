"""Fused SGA+ rounding: forward and backward kernels for two and three classes, and their launchers.

Each kernel handles BLOCK elements of the flattened (contiguous) input, with 64-bit flat indices.
The Gumbel noise of element i and class k is the k-th word of Philox(seed, counter=i): the
backward draws it again instead of reading it, so the autograd graph keeps only y (and means).
seed (int64) and tau are 0-d tensors on the input's device that the kernels load: nothing is read
on the host, so a CUDA graph captures the launches and replays them with new values.
Forward traffic: read y (+means), write y_tilde. Backward: read y (+means) and grad_out, write
grad_y (+grad_means).
"""
import torch
import triton
import triton.language as tl

from .scores import EPS, three_class_score, two_class_score

BLOCK = 1024
NUM_WARPS = 4


@triton.jit
def _gumbel(bits):
    """Gumbel(0, 1) from 32 random bits: u = (top 24 bits + 1/2) / 2^24 lies strictly in (0, 1)."""
    u = ((bits >> 8).to(tl.float32) + 0.5) * (1.0 / 16777216.0)
    return -tl.log(-tl.log(u))


@triton.jit
def _scalars(tau_ptr, seed_ptr):
    return tl.load(tau_ptr).to(tl.float32), tl.load(seed_ptr)


@triton.jit
def _block(y_ptr, means_ptr, n_elements, BLOCK: tl.constexpr, HAS_MEANS: tl.constexpr):
    """Flat indices of this program, their mask, v = y - means (float32) and means."""
    idx = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = idx < n_elements
    v = tl.load(y_ptr + idx, mask=mask, other=0.0).to(tl.float32)
    mu = tl.zeros_like(v)
    if HAS_MEANS:
        mu = tl.load(means_ptr + idx, mask=mask, other=0.0).to(tl.float32)
        v = v - mu
    return idx, mask, v, mu


@triton.jit
def _two_class_logits(v, idx, tau, a, seed, METHOD: tl.constexpr):
    """Classes floor(v), ceil(v); noisy logits (s_k/tau + g_k)/tau and their d/dv."""
    lo = tl.floor(v)
    hi = tl.ceil(v)
    d_down_raw = v - lo
    d_up_raw = hi - v
    d_down = tl.minimum(tl.maximum(d_down_raw, -1.0 + EPS), 1.0 - EPS)
    d_up = tl.minimum(tl.maximum(d_up_raw, -1.0 + EPS), 1.0 - EPS)
    s_down, ds_down = two_class_score(d_down, a, METHOD)
    s_up, ds_up = two_class_score(d_up, a, METHOD)
    bits_down, bits_up, _, _ = tl.randint4x(seed, idx)
    logit_down = (s_down / tau + _gumbel(bits_down)) / tau
    logit_up = (s_up / tau + _gumbel(bits_up)) / tau
    inv_tau2 = 1.0 / (tau * tau)
    # d(d_down)/dv = +1 and d(d_up)/dv = -1 inside their clamps, 0 outside.
    dlogit_down = tl.where((d_down_raw >= -1.0 + EPS) & (d_down_raw <= 1.0 - EPS), ds_down, 0.0) * inv_tau2
    dlogit_up = tl.where((d_up_raw >= -1.0 + EPS) & (d_up_raw <= 1.0 - EPS), -ds_up, 0.0) * inv_tau2
    return lo, hi, logit_down, logit_up, dlogit_down, dlogit_up


@triton.jit
def _round_half_even(v):
    lo = tl.floor(v)
    frac = v - lo
    lo_is_even = (lo - 2.0 * tl.floor(0.5 * lo)) == 0.0
    return tl.where(frac > 0.5, lo + 1.0, tl.where(frac < 0.5, lo, tl.where(lo_is_even, lo, lo + 1.0)))


@triton.jit
def _three_class_logits(v, idx, tau, r, n, a, seed, METHOD: tl.constexpr):
    """Classes c-1, c, c+1 (c = round half to even); noisy logits and their d/dv (d delta_k/dv = 1)."""
    c = _round_half_even(v)
    s0, ds0 = three_class_score(v - c + 1.0, r, n, a, METHOD)
    s1, ds1 = three_class_score(v - c, r, n, a, METHOD)
    s2, ds2 = three_class_score(v - c - 1.0, r, n, a, METHOD)
    bits0, bits1, bits2, _ = tl.randint4x(seed, idx)
    logit0 = (s0 / tau + _gumbel(bits0)) / tau
    logit1 = (s1 / tau + _gumbel(bits1)) / tau
    logit2 = (s2 / tau + _gumbel(bits2)) / tau
    inv_tau2 = 1.0 / (tau * tau)
    return c, logit0, logit1, logit2, ds0 * inv_tau2, ds1 * inv_tau2, ds2 * inv_tau2


@triton.jit
def _softmax3(logit0, logit1, logit2):
    m = tl.maximum(tl.maximum(logit0, logit1), logit2)
    e0 = tl.exp(logit0 - m)
    e1 = tl.exp(logit1 - m)
    e2 = tl.exp(logit2 - m)
    total = e0 + e1 + e2
    return e0 / total, e1 / total, e2 / total


@triton.jit
def _store_grads(grad_out_ptr, grad_y_ptr, grad_means_ptr, idx, mask, dv, MEANS_GRAD: tl.constexpr):
    """grad_y = grad_out * dy~/dv; grad_means = grad_out * (1 - dy~/dv) when MEANS_GRAD."""
    go = tl.load(grad_out_ptr + idx, mask=mask, other=0.0).to(tl.float32)
    grad_y = go * dv
    tl.store(grad_y_ptr + idx, grad_y.to(grad_y_ptr.dtype.element_ty), mask=mask)
    if MEANS_GRAD:
        tl.store(grad_means_ptr + idx, (go - grad_y).to(grad_means_ptr.dtype.element_ty), mask=mask)


@triton.jit(do_not_specialize=["n_elements"])
def two_class_forward_kernel(y_ptr, means_ptr, out_ptr, n_elements, tau_ptr, a, seed_ptr,
                             METHOD: tl.constexpr, HAS_MEANS: tl.constexpr, HARD: tl.constexpr,
                             BLOCK: tl.constexpr):
    tau, seed = _scalars(tau_ptr, seed_ptr)
    idx, mask, v, mu = _block(y_ptr, means_ptr, n_elements, BLOCK, HAS_MEANS)
    lo, hi, logit_down, logit_up, _, _ = _two_class_logits(v, idx, tau, a, seed, METHOD)
    if HARD:
        out = tl.where(logit_up > logit_down, hi, lo)
    else:
        out = lo + tl.sigmoid(logit_up - logit_down) * (hi - lo)
    tl.store(out_ptr + idx, (out + mu).to(out_ptr.dtype.element_ty), mask=mask)


@triton.jit(do_not_specialize=["n_elements"])
def two_class_backward_kernel(y_ptr, means_ptr, grad_out_ptr, grad_y_ptr, grad_means_ptr, n_elements, tau_ptr, a,
                              seed_ptr, METHOD: tl.constexpr, HAS_MEANS: tl.constexpr,
                              MEANS_GRAD: tl.constexpr, BLOCK: tl.constexpr):
    tau, seed = _scalars(tau_ptr, seed_ptr)
    idx, mask, v, _ = _block(y_ptr, means_ptr, n_elements, BLOCK, HAS_MEANS)
    lo, hi, logit_down, logit_up, dlogit_down, dlogit_up = _two_class_logits(v, idx, tau, a, seed, METHOD)
    w_up = tl.sigmoid(logit_up - logit_down)
    dv = (hi - lo) * w_up * (1.0 - w_up) * (dlogit_up - dlogit_down)
    _store_grads(grad_out_ptr, grad_y_ptr, grad_means_ptr, idx, mask, dv, MEANS_GRAD)


@triton.jit(do_not_specialize=["n_elements"])
def three_class_forward_kernel(y_ptr, means_ptr, out_ptr, n_elements, tau_ptr, r, n, a, seed_ptr,
                               METHOD: tl.constexpr, HAS_MEANS: tl.constexpr, HARD: tl.constexpr,
                               BLOCK: tl.constexpr):
    tau, seed = _scalars(tau_ptr, seed_ptr)
    idx, mask, v, mu = _block(y_ptr, means_ptr, n_elements, BLOCK, HAS_MEANS)
    c, logit0, logit1, logit2, _, _, _ = _three_class_logits(v, idx, tau, r, n, a, seed, METHOD)
    if HARD:
        # argmax with the first class winning ties, as torch.argmax
        out = tl.where((logit0 >= logit1) & (logit0 >= logit2), c - 1.0, tl.where(logit1 >= logit2, c, c + 1.0))
    else:
        w0, _, w2 = _softmax3(logit0, logit1, logit2)
        out = c + (w2 - w0)
    tl.store(out_ptr + idx, (out + mu).to(out_ptr.dtype.element_ty), mask=mask)


@triton.jit(do_not_specialize=["n_elements"])
def three_class_backward_kernel(y_ptr, means_ptr, grad_out_ptr, grad_y_ptr, grad_means_ptr, n_elements, tau_ptr,
                                r, n, a, seed_ptr, METHOD: tl.constexpr, HAS_MEANS: tl.constexpr,
                                MEANS_GRAD: tl.constexpr, BLOCK: tl.constexpr):
    tau, seed = _scalars(tau_ptr, seed_ptr)
    idx, mask, v, _ = _block(y_ptr, means_ptr, n_elements, BLOCK, HAS_MEANS)
    _, logit0, logit1, logit2, dlogit0, dlogit1, dlogit2 = _three_class_logits(v, idx, tau, r, n, a, seed, METHOD)
    w0, w1, w2 = _softmax3(logit0, logit1, logit2)
    mean_offset = w2 - w0  # sum_k w_k (c_k - c)
    # dy~/dv = sum_k c_k dw_k/dv = sum_k w_k (c_k - y~) dz_k/dv
    dv = w0 * (-1.0 - mean_offset) * dlogit0 - w1 * mean_offset * dlogit1 + w2 * (1.0 - mean_offset) * dlogit2
    _store_grads(grad_out_ptr, grad_y_ptr, grad_means_ptr, idx, mask, dv, MEANS_GRAD)


@triton.jit(do_not_specialize=["n_elements"])
def gumbel_noise_kernel(out_ptr, n_elements, seed_ptr, CLASSES: tl.constexpr, BLOCK: tl.constexpr):
    seed = tl.load(seed_ptr)
    idx = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = idx < n_elements
    bits0, bits1, bits2, _ = tl.randint4x(seed, idx)
    tl.store(out_ptr + idx * CLASSES, _gumbel(bits0), mask=mask)
    tl.store(out_ptr + idx * CLASSES + 1, _gumbel(bits1), mask=mask)
    if CLASSES == 3:
        tl.store(out_ptr + idx * CLASSES + 2, _gumbel(bits2), mask=mask)


def _scalar(value):
    """A parameter the method does not use (None) still needs a value in the kernel signature."""
    return 0.0 if value is None else value


def _grid(n_elements, block=BLOCK):
    return (triton.cdiv(n_elements, block),)


def forward(y, means, tau, seed, cfg, block=BLOCK, num_warps=NUM_WARPS):
    """y~ for contiguous y (and means of y's shape, or None); tau and seed are 0-d tensors on y's
    device (float, int64); cfg is a sgaplus.RoundingConfig. block and num_warps: the launch
    configuration (bench/run.py sweeps them)."""
    out = torch.empty_like(y)
    n_elements = y.numel()
    if n_elements == 0:
        return out
    means_arg = y if means is None else means  # never read without HAS_MEANS
    if cfg.classes == 2:
        two_class_forward_kernel[_grid(n_elements, block)](
            y, means_arg, out, n_elements, tau, _scalar(cfg.a), seed, METHOD=cfg.method_id,
            HAS_MEANS=means is not None, HARD=cfg.hard, BLOCK=block, num_warps=num_warps)
    else:
        three_class_forward_kernel[_grid(n_elements, block)](
            y, means_arg, out, n_elements, tau, cfg.r, cfg.n, _scalar(cfg.a), seed, METHOD=cfg.method_id,
            HAS_MEANS=means is not None, HARD=cfg.hard, BLOCK=block, num_warps=num_warps)
    return out


def backward(y, means, grad_out, tau, seed, cfg, means_grad=True, block=BLOCK, num_warps=NUM_WARPS):
    """(grad_y, grad_means or None) for contiguous y, means and grad_out of one shape; grad_means is
    written only when means_grad."""
    grad_y = torch.empty_like(y)
    grad_means = torch.empty_like(means) if means is not None and means_grad else None
    n_elements = y.numel()
    if n_elements == 0:
        return grad_y, grad_means
    means_arg = y if means is None else means
    grad_means_arg = grad_y if grad_means is None else grad_means  # never written without MEANS_GRAD
    if cfg.classes == 2:
        two_class_backward_kernel[_grid(n_elements, block)](
            y, means_arg, grad_out, grad_y, grad_means_arg, n_elements, tau, _scalar(cfg.a), seed,
            METHOD=cfg.method_id, HAS_MEANS=means is not None, MEANS_GRAD=grad_means is not None, BLOCK=block,
            num_warps=num_warps)
    else:
        three_class_backward_kernel[_grid(n_elements, block)](
            y, means_arg, grad_out, grad_y, grad_means_arg, n_elements, tau, cfg.r, cfg.n, _scalar(cfg.a), seed,
            METHOD=cfg.method_id, HAS_MEANS=means is not None, MEANS_GRAD=grad_means is not None, BLOCK=block,
            num_warps=num_warps)
    return grad_y, grad_means


def gumbel_noise(seed, n_elements, classes, device):
    """The (n_elements, classes) float32 Gumbel noise that the kernels draw for `seed` (an int)."""
    out = torch.empty(n_elements, classes, dtype=torch.float32, device=device)
    if n_elements:
        seed = torch.full((), seed, dtype=torch.int64, device=device)
        gumbel_noise_kernel[_grid(n_elements)](out, n_elements, seed, CLASSES=classes, BLOCK=BLOCK)
    return out

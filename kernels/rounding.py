"""Fused SGA+ rounding: forward and backward kernels for two and three classes, and their launchers.

The flattened (contiguous) input is cut in rows, one per seed: seed is a 0-d int64 tensor (one row, all of
the input) or a (batch,) one (row b: the b-th of the input's first dimension). A program handles BLOCK
elements of one row as a (BLOCK // G, G) tile, 64-bit indices. One Philox call, keyed by the row's seed with
counter = offset within the row // G, gives four 32-bit words: the G elements of a tile row share it, each
taking its own words (two classes: G = 4, one word each; three classes: G = 2, two words each). So a row's
noise is a function of (its seed, the offset within it) alone: the same as that row rounded alone with its
seed. The backward draws the same words again instead of reading them, so the autograd graph keeps only y
(and means). The seeds and tau are tensors on the input's device that the kernels load: nothing is read on
the host, so a CUDA graph captures the launches and replays them with new values.

Noise in distribution (docs/rounding.md, "Noise"): two classes add one Logistic(0, 1) sample
log(u / (1 - u)) to the logit gap; three classes add -log of the spacings of two sorted uniforms.
Traffic per element: forward reads y (+ means) and writes y~; backward reads y (+ means) and
grad_out and writes grad_y (+ grad_means).
"""
import torch
import triton
import triton.language as tl

from . import constants
from .scores import fast_div, fast_log, fast_sigmoid, three_class_score, two_class_gap

BLOCK = 1024
NUM_WARPS = 4
TWO_CLASS_SHIFT = tl.constexpr(32 - constants.TWO_CLASS_UNIFORM_BITS)
THREE_CLASS_SHIFT = tl.constexpr(32 - constants.THREE_CLASS_UNIFORM_BITS)
TWO_CLASS_SCALE = tl.constexpr(2.0 ** -constants.TWO_CLASS_UNIFORM_BITS)
THREE_CLASS_SCALE = tl.constexpr(2.0 ** -(constants.THREE_CLASS_UNIFORM_BITS + 2))
TWO_CLASS_G = tl.constexpr(constants.ELEMENTS_PER_PHILOX[2])
THREE_CLASS_G = tl.constexpr(constants.ELEMENTS_PER_PHILOX[3])


@triton.jit
def _inv_tau(tau_ptr):
    """1 / tau (each element multiplies by it instead of dividing twice)."""
    return 1.0 / tl.load(tau_ptr).to(tl.float32)


@triton.jit
def _tile(seed_ptr, row_numel, BLOCK: tl.constexpr, G: tl.constexpr):
    """This program's tile of its row: the row's seed, the Philox counters of the tile rows, the (BLOCK // G, G)
    flat indices, their mask, and the column of each element within its tile row."""
    blocks_per_row = tl.cdiv(row_numel, BLOCK)
    program = tl.program_id(0).to(tl.int64)
    row = program // blocks_per_row
    counters = (program - row * blocks_per_row) * (BLOCK // G) + tl.arange(0, BLOCK // G)
    col = tl.arange(0, G)[None, :]
    offsets = counters[:, None] * G + col
    return tl.load(seed_ptr + row), counters, row * row_numel + offsets, offsets < row_numel, col


@triton.jit
def _load_v(y_ptr, means_ptr, idx, mask, HAS_MEANS: tl.constexpr):
    """v = y - means in float32, and means (zeros without)."""
    v = tl.load(y_ptr + idx, mask=mask, other=0.0).to(tl.float32)
    mu = tl.zeros_like(v)
    if HAS_MEANS:
        mu = tl.load(means_ptr + idx, mask=mask, other=0.0).to(tl.float32)
        v = v - mu
    return v, mu


@triton.jit
def two_class_uniform_from_bits(bits):
    """(k + 1/2) / 2^23 with k the top 23 bits of a uint32 word: strictly inside (0, 1), exact in float32."""
    return ((bits >> TWO_CLASS_SHIFT).to(tl.float32) + 0.5) * TWO_CLASS_SCALE


@triton.jit
def three_class_uniforms_from_bits(bits_a, bits_b):
    """(4 k_a + 1) / 2^24 and (4 k_b + 3) / 2^24 with k the top 22 bits: never equal, never 0 or 1."""
    u_a = ((bits_a >> THREE_CLASS_SHIFT).to(tl.float32) * 4.0 + 1.0) * THREE_CLASS_SCALE
    u_b = ((bits_b >> THREE_CLASS_SHIFT).to(tl.float32) * 4.0 + 3.0) * THREE_CLASS_SCALE
    return u_a, u_b


@triton.jit
def _two_class_uniform(seed, rows, col):
    """Each element's uniform from its own word of its row's Philox call."""
    w0, w1, w2, w3 = tl.randint4x(seed, rows)
    bits = tl.where(col == 0, w0[:, None], tl.where(col == 1, w1[:, None], tl.where(col == 2, w2[:, None],
                                                                                     w3[:, None])))
    return two_class_uniform_from_bits(bits)


@triton.jit
def _three_class_uniforms(seed, rows, col):
    """Each element's two uniforms from two words of its row's Philox call."""
    w0, w1, w2, w3 = tl.randint4x(seed, rows)
    return three_class_uniforms_from_bits(tl.where(col == 0, w0[:, None], w2[:, None]),
                                          tl.where(col == 0, w1[:, None], w3[:, None]))


@triton.jit
def _two_class_logit(v, u, inv_tau, a, METHOD: tl.constexpr):
    """Classes floor(v), ceil(v); x = z_up - z_down = (gap / tau + Logistic) / tau and dx/dv."""
    lo = tl.floor(v)
    hi = tl.ceil(v)
    gap, dgap = two_class_gap(v - lo, hi - v, a, METHOD)
    inv_tau2 = inv_tau * inv_tau
    x = gap * inv_tau2 + fast_log(fast_div(u, 1.0 - u)) * inv_tau
    return lo, hi, x, dgap * inv_tau2


@triton.jit
def _round_half_even(v):
    lo = tl.floor(v)
    frac = v - lo
    lo_is_even = (lo - 2.0 * tl.floor(0.5 * lo)) == 0.0
    return tl.where(frac > 0.5, lo + 1.0, tl.where(frac < 0.5, lo, tl.where(lo_is_even, lo, lo + 1.0)))


@triton.jit
def _three_class_logits(v, u_a, u_b, inv_tau, r, n, a, METHOD: tl.constexpr):
    """Classes c-1, c, c+1 (c = round half to even); z_k = (s_k / tau - log S_k) / tau with S the spacings
    of the sorted uniforms, and dz_k/dv (d delta_k/dv = 1)."""
    c = _round_half_even(v)
    s0, ds0 = three_class_score(v - c + 1.0, r, n, a, METHOD)
    s1, ds1 = three_class_score(v - c, r, n, a, METHOD)
    s2, ds2 = three_class_score(v - c - 1.0, r, n, a, METHOD)
    first = tl.minimum(u_a, u_b)
    second = tl.maximum(u_a, u_b)
    inv_tau2 = inv_tau * inv_tau
    z0 = s0 * inv_tau2 - fast_log(first) * inv_tau
    z1 = s1 * inv_tau2 - fast_log(second - first) * inv_tau
    z2 = s2 * inv_tau2 - fast_log(1.0 - second) * inv_tau
    return c, z0, z1, z2, ds0 * inv_tau2, ds1 * inv_tau2, ds2 * inv_tau2


@triton.jit
def _softmax3(z0, z1, z2):
    m = tl.maximum(tl.maximum(z0, z1), z2)
    e0 = tl.exp(z0 - m)
    e1 = tl.exp(z1 - m)
    e2 = tl.exp(z2 - m)
    inv_total = fast_div(1.0, e0 + e1 + e2)
    return e0 * inv_total, e1 * inv_total, e2 * inv_total


@triton.jit
def _store_grads(grad_out_ptr, grad_y_ptr, grad_means_ptr, idx, mask, dv, MEANS_GRAD: tl.constexpr):
    """grad_y = grad_out * dy~/dv; grad_means = grad_out * (1 - dy~/dv) when MEANS_GRAD."""
    go = tl.load(grad_out_ptr + idx, mask=mask, other=0.0).to(tl.float32)
    grad_y = go * dv
    tl.store(grad_y_ptr + idx, grad_y.to(grad_y_ptr.dtype.element_ty), mask=mask)
    if MEANS_GRAD:
        tl.store(grad_means_ptr + idx, (go - grad_y).to(grad_means_ptr.dtype.element_ty), mask=mask)


@triton.jit(do_not_specialize=["row_numel"])
def two_class_forward_kernel(y_ptr, means_ptr, out_ptr, row_numel, tau_ptr, a, seed_ptr, METHOD: tl.constexpr,
                             HAS_MEANS: tl.constexpr, HARD: tl.constexpr, BLOCK: tl.constexpr):
    inv_tau = _inv_tau(tau_ptr)
    seed, rows, idx, mask, col = _tile(seed_ptr, row_numel, BLOCK, TWO_CLASS_G)
    v, mu = _load_v(y_ptr, means_ptr, idx, mask, HAS_MEANS)
    lo, hi, x, _ = _two_class_logit(v, _two_class_uniform(seed, rows, col), inv_tau, a, METHOD)
    if HARD:
        out = tl.where(x > 0.0, hi, lo)
    else:
        out = lo + fast_sigmoid(x) * (hi - lo)
    tl.store(out_ptr + idx, (out + mu).to(out_ptr.dtype.element_ty), mask=mask)


@triton.jit(do_not_specialize=["row_numel"])
def two_class_backward_kernel(y_ptr, means_ptr, grad_out_ptr, grad_y_ptr, grad_means_ptr, row_numel, tau_ptr, a,
                              seed_ptr, METHOD: tl.constexpr, HAS_MEANS: tl.constexpr, MEANS_GRAD: tl.constexpr,
                              BLOCK: tl.constexpr):
    inv_tau = _inv_tau(tau_ptr)
    seed, rows, idx, mask, col = _tile(seed_ptr, row_numel, BLOCK, TWO_CLASS_G)
    v, _ = _load_v(y_ptr, means_ptr, idx, mask, HAS_MEANS)
    lo, hi, x, dx = _two_class_logit(v, _two_class_uniform(seed, rows, col), inv_tau, a, METHOD)
    w_up = fast_sigmoid(x)
    dv = (hi - lo) * w_up * (1.0 - w_up) * dx
    _store_grads(grad_out_ptr, grad_y_ptr, grad_means_ptr, idx, mask, dv, MEANS_GRAD)


@triton.jit(do_not_specialize=["row_numel"])
def three_class_forward_kernel(y_ptr, means_ptr, out_ptr, row_numel, tau_ptr, r, n, a, seed_ptr,
                               METHOD: tl.constexpr, HAS_MEANS: tl.constexpr, HARD: tl.constexpr,
                               BLOCK: tl.constexpr):
    inv_tau = _inv_tau(tau_ptr)
    seed, rows, idx, mask, col = _tile(seed_ptr, row_numel, BLOCK, THREE_CLASS_G)
    v, mu = _load_v(y_ptr, means_ptr, idx, mask, HAS_MEANS)
    u_a, u_b = _three_class_uniforms(seed, rows, col)
    c, z0, z1, z2, _, _, _ = _three_class_logits(v, u_a, u_b, inv_tau, r, n, a, METHOD)
    if HARD:
        # argmax with the first class winning ties, as torch.argmax
        out = tl.where((z0 >= z1) & (z0 >= z2), c - 1.0, tl.where(z1 >= z2, c, c + 1.0))
    else:
        w0, _, w2 = _softmax3(z0, z1, z2)
        out = c + (w2 - w0)
    tl.store(out_ptr + idx, (out + mu).to(out_ptr.dtype.element_ty), mask=mask)


@triton.jit(do_not_specialize=["row_numel"])
def three_class_backward_kernel(y_ptr, means_ptr, grad_out_ptr, grad_y_ptr, grad_means_ptr, row_numel, tau_ptr,
                                r, n, a, seed_ptr, METHOD: tl.constexpr, HAS_MEANS: tl.constexpr,
                                MEANS_GRAD: tl.constexpr, BLOCK: tl.constexpr):
    inv_tau = _inv_tau(tau_ptr)
    seed, rows, idx, mask, col = _tile(seed_ptr, row_numel, BLOCK, THREE_CLASS_G)
    v, _ = _load_v(y_ptr, means_ptr, idx, mask, HAS_MEANS)
    u_a, u_b = _three_class_uniforms(seed, rows, col)
    _, z0, z1, z2, dz0, dz1, dz2 = _three_class_logits(v, u_a, u_b, inv_tau, r, n, a, METHOD)
    w0, w1, w2 = _softmax3(z0, z1, z2)
    mean_offset = w2 - w0  # sum_k w_k (c_k - c)
    # dy~/dv = sum_k c_k dw_k/dv = sum_k w_k (c_k - y~) dz_k/dv
    dv = w0 * (-1.0 - mean_offset) * dz0 - w1 * mean_offset * dz1 + w2 * (1.0 - mean_offset) * dz2
    _store_grads(grad_out_ptr, grad_y_ptr, grad_means_ptr, idx, mask, dv, MEANS_GRAD)


@triton.jit(do_not_specialize=["row_numel"])
def uniforms_kernel(out_ptr, row_numel, seed_ptr, CLASSES: tl.constexpr, BLOCK: tl.constexpr):
    """The uniforms the rounding kernels draw: (n, 1) for two classes, (n, 2) for three (for tests)."""
    if CLASSES == 2:
        seed, rows, idx, mask, col = _tile(seed_ptr, row_numel, BLOCK, TWO_CLASS_G)
        tl.store(out_ptr + idx, _two_class_uniform(seed, rows, col), mask=mask)
    else:
        seed, rows, idx, mask, col = _tile(seed_ptr, row_numel, BLOCK, THREE_CLASS_G)
        u_a, u_b = _three_class_uniforms(seed, rows, col)
        tl.store(out_ptr + idx * 2, u_a, mask=mask)
        tl.store(out_ptr + idx * 2 + 1, u_b, mask=mask)


def _scalar(value):
    """A parameter the method does not use (None) still needs a value in the kernel signature."""
    return 0.0 if value is None else value


def _rows(y, seed, block):
    """(grid, elements per row) of a launch over y: a row per seed, cdiv(row, block) programs each."""
    row_numel = y.numel() // seed.numel()
    return (seed.numel() * triton.cdiv(row_numel, block),), row_numel


def forward(y, means, tau, seed, cfg, block=BLOCK, num_warps=NUM_WARPS):
    """y~ for contiguous y (and means of y's shape, or None); tau and seed are 0-d tensors on y's
    device (float, int64; or a seed per row of y's first dimension); cfg is a RoundingConfig. block and
    num_warps: the launch configuration (bench/run.py sweeps them)."""
    out = torch.empty_like(y)
    if y.numel() == 0:
        return out
    grid, row_numel = _rows(y, seed, block)
    means_arg = y if means is None else means  # never read without HAS_MEANS
    if cfg.classes == 2:
        two_class_forward_kernel[grid](
            y, means_arg, out, row_numel, tau, _scalar(cfg.a), seed, METHOD=cfg.method_id,
            HAS_MEANS=means is not None, HARD=cfg.hard, BLOCK=block, num_warps=num_warps)
    else:
        three_class_forward_kernel[grid](
            y, means_arg, out, row_numel, tau, cfg.r, cfg.n, _scalar(cfg.a), seed, METHOD=cfg.method_id,
            HAS_MEANS=means is not None, HARD=cfg.hard, BLOCK=block, num_warps=num_warps)
    return out


def backward(y, means, grad_out, tau, seed, cfg, means_grad=True, block=BLOCK, num_warps=NUM_WARPS):
    """(grad_y, grad_means or None) for contiguous y, means and grad_out of one shape; grad_means is
    written only when means_grad."""
    grad_y = torch.empty_like(y)
    grad_means = torch.empty_like(means) if means is not None and means_grad else None
    if y.numel() == 0:
        return grad_y, grad_means
    grid, row_numel = _rows(y, seed, block)
    means_arg = y if means is None else means
    grad_means_arg = grad_y if grad_means is None else grad_means  # never written without MEANS_GRAD
    if cfg.classes == 2:
        two_class_backward_kernel[grid](
            y, means_arg, grad_out, grad_y, grad_means_arg, row_numel, tau, _scalar(cfg.a), seed,
            METHOD=cfg.method_id, HAS_MEANS=means is not None, MEANS_GRAD=grad_means is not None, BLOCK=block,
            num_warps=num_warps)
    else:
        three_class_backward_kernel[grid](
            y, means_arg, grad_out, grad_y, grad_means_arg, row_numel, tau, cfg.r, cfg.n, _scalar(cfg.a), seed,
            METHOD=cfg.method_id, HAS_MEANS=means is not None, MEANS_GRAD=grad_means is not None, BLOCK=block,
            num_warps=num_warps)
    return grad_y, grad_means


def uniforms(seed, n_elements, classes, device):
    """The (n_elements, classes - 1) float32 uniforms that the kernels draw for `seed` (an int)."""
    out = torch.empty(n_elements, classes - 1, dtype=torch.float32, device=device)
    if n_elements:
        seed = torch.full((), seed, dtype=torch.int64, device=device)
        uniforms_kernel[(triton.cdiv(n_elements, BLOCK),)](out, n_elements, seed, CLASSES=classes, BLOCK=BLOCK)
    return out

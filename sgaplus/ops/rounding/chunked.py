"""The op's PyTorch path (backend "torch", any device): the fused kernels' closed-form forward and
backward, written with torch ops.

Same contract as kernels.py: forward(y, means, tau, seed, cfg) and backward(...) on
contiguous tensors, nothing saved but y (and means). The work runs in chunks so temporaries stay
in cache; the Gumbel noise of each chunk comes from a torch.Generator seeded with `seed`, drawn
again, chunk by chunk, in the backward. It runs on any device (CUDA float64 uses it too); its
noise stream differs from the Triton kernels' Philox stream for the same seed.
"""
import torch

from .config import COSINE_FLOOR, EPS, HALF_PI, SSL_THREE_CLASS_SCALE, THREE_CLASS_FLOOR
from .noise import gumbel_like

CHUNK = 1 << 16


def _compute_dtype(dtype):
    return torch.float64 if dtype == torch.float64 else torch.float32


def _two_class_score(d, cfg, with_grad):
    """s(d) and ds/dd (None unless with_grad) of the two-class table (docs/rounding.md), d clamped to
    [-1+eps, 1-eps]."""
    if cfg.method == "atanh":
        return -torch.atanh(d), (-1 / (1 - d * d) if with_grad else None)
    if cfg.method == "linear":
        return torch.log1p(-d), (-1 / (1 - d) if with_grad else None)
    if cfg.method == "cosine":
        q = (1 - COSINE_FLOOR) * torch.cos(HALF_PI * d) ** 2 + COSINE_FLOOR
        return torch.log(q), (-(1 - COSINE_FLOOR) * HALF_PI * torch.sin(2 * HALF_PI * d) / q if with_grad else None)
    dc = d.clamp(EPS, 1 - EPS)
    t = cfg.a * torch.logit(dc)
    if not with_grad:
        return torch.nn.functional.logsigmoid(-t), None
    inside = (d >= EPS) & (d <= 1 - EPS)
    ds = torch.where(inside, -cfg.a * torch.sigmoid(t) / (dc * (1 - dc)), 0.0)
    return torch.nn.functional.logsigmoid(-t), ds


def _three_class_score(delta, cfg, with_grad):
    """s(delta) and ds/ddelta (None unless with_grad) of the three-class table (docs/rounding.md)."""
    if cfg.method == "linear":
        x = 1 - cfg.r * delta.abs()
        xm = x.clamp(min=THREE_CLASS_FLOOR)
        s = cfg.n * torch.log(xm)
        return s, (torch.where(x >= THREE_CLASS_FLOOR, -cfg.n * cfg.r * delta.sign() / xm, 0.0) if with_grad else None)
    if cfg.method == "cosine":
        rd = cfg.r * delta
        q = rd.clamp(-1, 1)
        c = torch.cos(HALF_PI * q)
        cm = c.clamp(min=0)
        p = cm ** cfg.n + COSINE_FLOOR
        if not with_grad:
            return torch.log(p), None
        dp = cfg.n * cm ** (cfg.n - 1) * -torch.sin(HALF_PI * q) * HALF_PI * cfg.r
        return torch.log(p), torch.where((rd >= -1) & (rd <= 1) & (c >= 0), dp / p, 0.0)
    xr = (cfg.r * delta / SSL_THREE_CLASS_SCALE).abs()
    x = xr.clamp(THREE_CLASS_FLOOR, 1 - THREE_CLASS_FLOOR)
    t = cfg.a * torch.logit(x)
    sg = torch.sigmoid(-t)
    s = cfg.n * torch.log(sg.clamp(min=THREE_CLASS_FLOOR))
    if not with_grad:
        return s, None
    inside = (xr >= THREE_CLASS_FLOOR) & (xr <= 1 - THREE_CLASS_FLOOR) & (sg >= THREE_CLASS_FLOOR)
    dx = delta.sign() * (cfg.r / SSL_THREE_CLASS_SCALE)
    ds = torch.where(inside, -cfg.n * cfg.a * torch.sigmoid(t) / (x * (1 - x)) * dx, 0.0)
    return s, ds


def _two_class(v, noise, tau, cfg, with_grad=False):
    """Classes, noisy logits and (with_grad) their derivatives dz_k/dv for two classes."""
    lo, hi = torch.floor(v), torch.ceil(v)
    d_raw = torch.stack([v - lo, hi - v])
    d = d_raw.clamp(-1 + EPS, 1 - EPS)
    s, ds = _two_class_score(d, cfg, with_grad)
    logits = s.div_(tau).add_(noise.T).div_(tau)
    if not with_grad:
        return lo, hi, logits, None
    sign = torch.tensor([1.0, -1.0], dtype=v.dtype, device=v.device).view(2, 1)
    dlogits = torch.where((d_raw >= -1 + EPS) & (d_raw <= 1 - EPS), ds * sign, 0.0) / (tau * tau)
    return lo, hi, logits, dlogits


def _three_class(v, noise, tau, cfg, with_grad=False):
    c = torch.round(v)
    offsets = torch.tensor([1.0, 0.0, -1.0], dtype=v.dtype, device=v.device).view(3, 1)
    s, ds = _three_class_score(v - c + offsets, cfg, with_grad)
    return c, s.div_(tau).add_(noise.T).div_(tau), (ds / (tau * tau) if with_grad else None)


def _chunks(y, means, seed, classes):
    """(slice, v in the compute dtype, Gumbel noise) per chunk, noise drawn in a fixed order."""
    dtype = _compute_dtype(y.dtype)
    generator = torch.Generator(device=y.device).manual_seed(seed)
    flat_y, flat_means = y.reshape(-1), None if means is None else means.reshape(-1)
    for start in range(0, flat_y.numel(), CHUNK):
        part = slice(start, start + CHUNK)
        v = flat_y[part].to(dtype)
        if flat_means is not None:
            v = v - flat_means[part].to(dtype)
        yield part, v, gumbel_like((v.numel(), classes), dtype, y.device, generator)


def gumbel_noise(seed, n_elements, classes, device="cpu"):
    """The (n_elements, classes) float32 Gumbel noise this path draws for `seed`."""
    y = torch.zeros(n_elements, device=device)
    return torch.cat([noise for _, _, noise in _chunks(y, None, seed, classes)] or [y.view(0, classes)])


def forward(y, means, tau, seed, cfg):
    out = torch.empty_like(y)
    flat_out = out.view(-1)
    for part, v, noise in _chunks(y, means, seed, cfg.classes):
        if cfg.classes == 2:
            lo, hi, logits, _ = _two_class(v, noise, tau, cfg)
            if cfg.hard:
                value = torch.where(logits[1] > logits[0], hi, lo)
            else:
                value = lo + torch.sigmoid(logits[1] - logits[0]) * (hi - lo)
        else:
            c, logits, _ = _three_class(v, noise, tau, cfg)
            if cfg.hard:
                value = c + logits.argmax(dim=0).to(v.dtype) - 1
            else:
                w = torch.softmax(logits, dim=0)
                value = c + (w[2] - w[0])
        if means is not None:
            value = value + means.view(-1)[part].to(value.dtype)
        flat_out[part] = value
    return out


def backward(y, means, grad_out, tau, seed, cfg, means_grad=True):
    grad_y = torch.empty_like(y)
    grad_means = torch.empty_like(means) if means is not None and means_grad else None
    flat_grad_out = grad_out.reshape(-1)
    for part, v, noise in _chunks(y, means, seed, cfg.classes):
        if cfg.classes == 2:
            lo, hi, logits, dlogits = _two_class(v, noise, tau, cfg, with_grad=True)
            w_up = torch.sigmoid(logits[1] - logits[0])
            dv = (hi - lo) * w_up * (1 - w_up) * (dlogits[1] - dlogits[0])
        else:
            _, logits, dlogits = _three_class(v, noise, tau, cfg, with_grad=True)
            w = torch.softmax(logits, dim=0)
            offsets = torch.tensor([-1.0, 0.0, 1.0], dtype=v.dtype, device=v.device).view(3, 1)
            dv = (w * (offsets - (w[2] - w[0])) * dlogits).sum(dim=0)
        go = flat_grad_out[part].to(dv.dtype)
        grad_y.view(-1)[part] = go * dv
        if grad_means is not None:
            grad_means.view(-1)[part] = go * (1 - dv)
    return grad_y, grad_means

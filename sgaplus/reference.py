"""Readable PyTorch formulation of SGA+ rounding (SPEC.md), as the paper's code writes it.

Stack the candidate classes, score their distances, add Gumbel noise, softmax, weight. Autograd
does the backward, so the graph keeps every intermediate: this is the baseline the fused op is
tested and benchmarked against. `noise` (Gumbel samples, shape y.shape + (classes,)) may be passed
in to compare backends element by element.
"""
import math

import torch
import torch.nn.functional as F

from .config import RoundingConfig


def _two_class_scores(d, cfg):
    if cfg.method == "atanh":
        return -torch.atanh(d)
    if cfg.method == "linear":
        return torch.log(1 - d)
    if cfg.method == "cosine":
        return torch.log((1 - 1e-7) * torch.cos(math.pi * d / 2) ** 2 + 1e-7)
    dc = d.clamp(cfg.eps, 1 - cfg.eps)
    return F.logsigmoid(-cfg.a * torch.logit(dc))


def _three_class_scores(delta, cfg):
    if cfg.method == "linear":
        return cfg.n * torch.log((1 - cfg.r * delta.abs()).clamp(min=1e-6))
    if cfg.method == "cosine":
        base = torch.cos(math.pi / 2 * (cfg.r * delta).clamp(-1, 1)).clamp(min=0)
        return torch.log(base ** cfg.n + 1e-7)
    x = (cfg.r * delta / 1.5).abs().clamp(1e-6, 1 - 1e-6)
    return cfg.n * torch.log(torch.sigmoid(-cfg.a * torch.logit(x)).clamp(min=1e-6))


def gumbel_like(shape, dtype, device, generator=None):
    """Gumbel(0, 1) noise, u drawn strictly inside (0, 1) as the fused op draws it."""
    u = torch.rand(shape, dtype=torch.float32, device=device, generator=generator).add_(2.0 ** -25)
    return u.log_().neg_().log_().neg_().to(dtype)


def sga_round_reference(y, tau, cfg=None, means=None, noise=None, generator=None):
    """SGA+ rounding of y (see SPEC.md); half precision is computed in float32."""
    cfg = cfg or RoundingConfig()
    compute_dtype = torch.float64 if y.dtype == torch.float64 else torch.float32
    v = y.to(compute_dtype)
    if means is not None:
        v = v - means.to(compute_dtype)
    if cfg.classes == 2:
        lo, hi = torch.floor(v), torch.ceil(v)
        candidates = torch.stack([lo, hi], dim=-1)
        distances = torch.stack([v - lo, hi - v], dim=-1).clamp(-1 + cfg.eps, 1 - cfg.eps)
        scores = _two_class_scores(distances, cfg)
    else:
        c = torch.round(v)
        candidates = torch.stack([c - 1, c, c + 1], dim=-1)
        scores = _three_class_scores(v.unsqueeze(-1) - candidates, cfg)
    logits = scores / tau
    if noise is None:
        noise = gumbel_like(logits.shape, compute_dtype, y.device, generator)
    noisy = logits + noise.to(compute_dtype)
    weights = torch.softmax(noisy / tau, dim=-1)
    out = (weights * candidates).sum(dim=-1)
    if cfg.hard:
        chosen = candidates.gather(-1, noisy.argmax(dim=-1, keepdim=True)).squeeze(-1)
        out = out + (chosen - out).detach()
    if means is not None:
        out = out + means.to(compute_dtype)
    return out.to(y.dtype)

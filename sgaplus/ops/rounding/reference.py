"""Readable PyTorch formulation of SGA+ rounding (docs/rounding.md), as the paper's code writes it.

Stack the candidate classes, score their distances, add Gumbel noise, softmax, weight. Autograd
does the backward, so the graph keeps every intermediate: this is the baseline the fused op is
tested and benchmarked against. `noise` (Gumbel samples, shape y.shape + (classes,)) may be passed
in to compare backends element by element; or `seed`, keying the noise as the op does (one int: y as a whole;
a sequence of ints, one per row of y: row b's noise from a generator seeded with seed[b] alone).
"""
import torch
import torch.nn.functional as F

from .config import COSINE_FLOOR, EPS, HALF_PI, SSL_THREE_CLASS_SCALE, THREE_CLASS_FLOOR, RoundingConfig
from .noise import gumbel_like


def _two_class_scores(d, cfg):
    if cfg.method == "atanh":
        return -torch.atanh(d)
    if cfg.method == "linear":
        return torch.log(1 - d)
    if cfg.method == "cosine":
        return torch.log((1 - COSINE_FLOOR) * torch.cos(HALF_PI * d) ** 2 + COSINE_FLOOR)
    dc = d.clamp(EPS, 1 - EPS)
    return F.logsigmoid(-cfg.a * torch.logit(dc))


def _three_class_scores(delta, cfg):
    if cfg.method == "linear":
        return cfg.n * torch.log((1 - cfg.r * delta.abs()).clamp(min=THREE_CLASS_FLOOR))
    if cfg.method == "cosine":
        base = torch.cos(HALF_PI * (cfg.r * delta).clamp(-1, 1)).clamp(min=0)
        return torch.log(base ** cfg.n + COSINE_FLOOR)
    x = (cfg.r * delta / SSL_THREE_CLASS_SCALE).abs().clamp(THREE_CLASS_FLOOR, 1 - THREE_CLASS_FLOOR)
    return cfg.n * torch.log(torch.sigmoid(-cfg.a * torch.logit(x)).clamp(min=THREE_CLASS_FLOOR))


def _keyed_gumbel(shape, dtype, device, seed):
    """Gumbel noise of `shape` keyed by one seed (all of it) or a seed per row (each row alone)."""
    if isinstance(seed, int):
        return gumbel_like(shape, dtype, device, torch.Generator(device=device).manual_seed(seed))
    return torch.stack([_keyed_gumbel(shape[1:], dtype, device, int(row_seed)) for row_seed in seed])


def sga_round_reference(y, tau, cfg=None, means=None, noise=None, generator=None, seed=None):
    """SGA+ rounding of y (docs/rounding.md); half precision is computed in float32."""
    cfg = cfg or RoundingConfig()
    compute_dtype = torch.float64 if y.dtype == torch.float64 else torch.float32
    v = y.to(compute_dtype)
    if means is not None:
        v = v - means.to(compute_dtype)
    if cfg.classes == 2:
        lo, hi = torch.floor(v), torch.ceil(v)
        candidates = torch.stack([lo, hi], dim=-1)
        distances = torch.stack([v - lo, hi - v], dim=-1).clamp(-1 + EPS, 1 - EPS)
        scores = _two_class_scores(distances, cfg)
    else:
        c = torch.round(v)
        candidates = torch.stack([c - 1, c, c + 1], dim=-1)
        scores = _three_class_scores(v.unsqueeze(-1) - candidates, cfg)
    logits = scores / tau
    if noise is None and seed is not None:
        noise = _keyed_gumbel(logits.shape, compute_dtype, y.device, seed)
    elif noise is None:
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

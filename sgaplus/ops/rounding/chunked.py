"""The op's PyTorch path (backend "torch", any device): the fused kernels' closed-form forward and
backward, written with torch ops.

Same contract and same identities as the Triton kernels (sgaplus.kernels.rounding; docs/rounding.md): two
classes use the closed-form score gap and one Logistic sample, three classes the per-class scores and the
spacings of two sorted uniforms. Nothing is saved but y (and means). The work runs in chunks so temporaries
stay in cache; y is one row per seed (one seed: one row, all of y), and the uniforms of a row come from a
torch.Generator seeded with its seed, chunk by chunk within the row, drawn again in the backward: a row's
noise is keyed by (its seed, the offset within it). This stream differs from the kernels' Philox stream for the
same seed.
"""
import torch

from .config import COSINE_FLOOR, EPS, HALF_PI, SSL_THREE_CLASS_SCALE, THREE_CLASS_FLOOR
from .noise import draw_uniforms, logistic, logit_noise

CHUNK = 1 << 16


def _compute_dtype(dtype):
    return torch.float64 if dtype == torch.float64 else torch.float32


def _two_class_gap(dist_down, dist_up, cfg, with_grad):
    """s(d_up) - s(d_down) and (with_grad) its derivative in v, from the raw distances (kernels' two_class_gap)."""
    d_dn = dist_down.clamp(-1 + EPS, 1 - EPS)
    d_up = dist_up.clamp(-1 + EPS, 1 - EPS)
    in_dn = (dist_down >= -1 + EPS) & (dist_down <= 1 - EPS)
    in_up = (dist_up >= -1 + EPS) & (dist_up <= 1 - EPS)
    if cfg.method == "atanh":
        gap = 0.5 * torch.log((1 + d_dn) * (1 - d_up) / ((1 - d_dn) * (1 + d_up)))
        grad = (in_up / (1 - d_up * d_up) + in_dn / (1 - d_dn * d_dn)) if with_grad else None
    elif cfg.method == "linear":
        gap = torch.log((1 - d_up) / (1 - d_dn))
        grad = (in_up / (1 - d_up) + in_dn / (1 - d_dn)) if with_grad else None
    elif cfg.method == "cosine":
        c_up, c_dn = torch.cos(HALF_PI * d_up), torch.cos(HALF_PI * d_dn)
        q_up = (1 - COSINE_FLOOR) * c_up * c_up + COSINE_FLOOR
        q_dn = (1 - COSINE_FLOOR) * c_dn * c_dn + COSINE_FLOOR
        gap = torch.log(q_up / q_dn)
        grad = None
        if with_grad:
            g_up = torch.sin(HALF_PI * d_up) * c_up / q_up
            g_dn = torch.sin(HALF_PI * d_dn) * c_dn / q_dn
            grad = (1 - COSINE_FLOOR) * 2 * HALF_PI * (torch.where(in_up, g_up, 0.0) + torch.where(in_dn, g_dn, 0.0))
    else:  # ssl: a * logit(dc_down), as dc_up = 1 - dc_down
        dc_dn, dc_up = d_dn.clamp(EPS, 1 - EPS), d_up.clamp(EPS, 1 - EPS)
        gap = cfg.a * torch.log(dc_dn / dc_up)
        grad = None
        if with_grad:
            w_dn = torch.sigmoid(gap)
            in_dn = in_dn & (dist_down >= EPS) & (dist_down <= 1 - EPS)
            in_up = in_up & (dist_up >= EPS) & (dist_up <= 1 - EPS)
            grad = cfg.a * (torch.where(in_up, (1 - w_dn) / (dc_up * (1 - dc_up)), 0.0)
                            + torch.where(in_dn, w_dn / (dc_dn * (1 - dc_dn)), 0.0))
    return gap, grad


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
    return s, torch.where(inside, -cfg.n * cfg.a * (1 - sg) / (x * (1 - x)) * dx, 0.0)


def _two_class(v, uniforms, tau, cfg, with_grad=False):
    """Classes floor(v), ceil(v); x = z_up - z_down = (gap / tau + Logistic) / tau and (with_grad) dx/dv."""
    lo, hi = torch.floor(v), torch.ceil(v)
    gap, grad = _two_class_gap(v - lo, hi - v, cfg, with_grad)
    x = gap.div_(tau).add_(logistic(uniforms[:, 0].to(v.dtype))).div_(tau)
    return lo, hi, x, (grad / (tau * tau) if with_grad else None)


def _three_class(v, uniforms, tau, cfg, with_grad=False):
    """Centre class c; noisy logits z (3, n) and (with_grad) dz/dv."""
    c = torch.round(v)
    offsets = torch.tensor([1.0, 0.0, -1.0], dtype=v.dtype, device=v.device).view(3, 1)
    s, ds = _three_class_score(v - c + offsets, cfg, with_grad)
    z = s.div_(tau).add_(logit_noise(uniforms.to(v.dtype), 3, dim=0)).div_(tau)
    return c, z, (ds / (tau * tau) if with_grad else None)


def _chunks(y, means, seeds, classes):
    """(slice, v in the compute dtype, uniforms) per chunk: y split in len(seeds) rows, each row in chunks whose
    uniforms are drawn, in a fixed order, from a generator seeded with the row's seed."""
    dtype = _compute_dtype(y.dtype)
    flat_y, flat_means = y.reshape(-1), None if means is None else means.reshape(-1)
    row_numel = flat_y.numel() // len(seeds)
    for row, seed in enumerate(seeds):
        generator = torch.Generator(device=y.device).manual_seed(seed)
        end = (row + 1) * row_numel
        for start in range(row * row_numel, end, CHUNK):
            part = slice(start, min(start + CHUNK, end))
            v = flat_y[part].to(dtype)
            if flat_means is not None:
                v = v - flat_means[part].to(dtype)
            yield part, v, draw_uniforms(v.numel(), classes, y.device, generator)


def uniforms(seed, n_elements, classes, device="cpu"):
    """The (n_elements, classes - 1) float32 uniforms this path draws for `seed` (an int)."""
    y = torch.zeros(n_elements, device=device)
    parts = [u for _, _, u in _chunks(y, None, [seed], classes)]
    return torch.cat(parts) if parts else y.new_zeros(0, classes - 1)


def forward(y, means, tau, seeds, cfg):
    out = torch.empty_like(y)
    flat_out = out.view(-1)
    for part, v, u in _chunks(y, means, seeds, cfg.classes):
        if cfg.classes == 2:
            lo, hi, x, _ = _two_class(v, u, tau, cfg)
            value = torch.where(x > 0, hi, lo) if cfg.hard else lo + torch.sigmoid(x) * (hi - lo)
        else:
            c, z, _ = _three_class(v, u, tau, cfg)
            if cfg.hard:
                value = c + z.argmax(dim=0).to(v.dtype) - 1
            else:
                w = torch.softmax(z, dim=0)
                value = c + (w[2] - w[0])
        if means is not None:
            value = value + means.view(-1)[part].to(value.dtype)
        flat_out[part] = value
    return out


def backward(y, means, grad_out, tau, seeds, cfg, means_grad=True):
    grad_y = torch.empty_like(y)
    grad_means = torch.empty_like(means) if means is not None and means_grad else None
    flat_grad_out = grad_out.reshape(-1)
    for part, v, u in _chunks(y, means, seeds, cfg.classes):
        if cfg.classes == 2:
            lo, hi, x, dx = _two_class(v, u, tau, cfg, with_grad=True)
            w_up = torch.sigmoid(x)
            dv = (hi - lo) * w_up * (1 - w_up) * dx
        else:
            _, z, dz = _three_class(v, u, tau, cfg, with_grad=True)
            w = torch.softmax(z, dim=0)
            offsets = torch.tensor([-1.0, 0.0, 1.0], dtype=v.dtype, device=v.device).view(3, 1)
            dv = (w * (offsets - (w[2] - w[0])) * dz).sum(dim=0)
        go = flat_grad_out[part].to(dv.dtype)
        grad_y.view(-1)[part] = go * dv
        if grad_means is not None:
            grad_means.view(-1)[part] = go * (1 - dv)
    return grad_y, grad_means

"""Score functions s(d) of docs/rounding.md and their derivatives ds/dd, as Triton device functions.

A score is the unnormalised log-probability of rounding to a class at distance d. Each helper
returns ``(s, ds)``; the forward kernels ignore ``ds`` and the compiler drops it. Masks of the
clamps are applied with ``tl.where`` (never by multiplication) so a clamped branch contributes
an exact zero, as ``torch.clamp`` does, even where the unclamped derivative is infinite.
"""
import triton
import triton.language as tl

from . import config

# Globals a @triton.jit function reads must be tl.constexpr objects (an annotation is not enough: the
# interpreter accepts it, the compiler does not).
ATANH = tl.constexpr(config.METHOD_IDS["atanh"])
LINEAR = tl.constexpr(config.METHOD_IDS["linear"])
COSINE = tl.constexpr(config.METHOD_IDS["cosine"])
SSL = tl.constexpr(config.METHOD_IDS["ssl"])
EPS = tl.constexpr(config.EPS)
HALF_PI = tl.constexpr(config.HALF_PI)
COSINE_FLOOR = tl.constexpr(config.COSINE_FLOOR)
THREE_CLASS_FLOOR = tl.constexpr(config.THREE_CLASS_FLOOR)
SSL_THREE_CLASS_SCALE = tl.constexpr(config.SSL_THREE_CLASS_SCALE)


@triton.jit
def _sign(x):
    return tl.where(x > 0, 1.0, tl.where(x < 0, -1.0, 0.0))


@triton.jit
def _log_sigmoid(x):
    # log(sigmoid(x)) without overflow: -softplus(-x)
    return tl.minimum(x, 0.0) - tl.log(1.0 + tl.exp(-tl.abs(x)))


@triton.jit
def two_class_score(d, a, METHOD: tl.constexpr):
    """s(d) and ds/dd for a distance d in [-1+eps, 1-eps] (already clamped)."""
    if METHOD == ATANH:
        s = -0.5 * tl.log((1.0 + d) / (1.0 - d))
        ds = -1.0 / (1.0 - d * d)
    elif METHOD == LINEAR:
        s = tl.log(1.0 - d)
        ds = -1.0 / (1.0 - d)
    elif METHOD == COSINE:
        c = tl.cos(d * HALF_PI)
        q = c * c * (1.0 - COSINE_FLOOR) + COSINE_FLOOR
        s = tl.log(q)
        ds = -tl.sin(d * (2.0 * HALF_PI)) * ((1.0 - COSINE_FLOOR) * HALF_PI) / q
    else:  # SSL: log sigmoid(-a * logit(dc)), dc = clamp(d, eps, 1 - eps)
        inside = (d >= EPS) & (d <= 1.0 - EPS)
        dc = tl.minimum(tl.maximum(d, EPS), 1.0 - EPS)
        t = a * tl.log(dc / (1.0 - dc))
        s = _log_sigmoid(-t)
        ds = tl.where(inside, -a * tl.sigmoid(t) / (dc * (1.0 - dc)), 0.0)
    return s, ds


@triton.jit
def three_class_score(delta, r, n, a, METHOD: tl.constexpr):
    """s(delta) and ds/ddelta for a signed offset delta = v - class."""
    if METHOD == LINEAR:
        x = 1.0 - r * tl.abs(delta)
        xm = tl.maximum(x, THREE_CLASS_FLOOR)
        s = n * tl.log(xm)
        ds = tl.where(x >= THREE_CLASS_FLOOR, -n * r * _sign(delta) / xm, 0.0)
    elif METHOD == COSINE:
        rd = r * delta
        q = tl.minimum(tl.maximum(rd, -1.0), 1.0)
        c = tl.cos(q * HALF_PI)
        cm = tl.maximum(c, 0.0)
        p = tl.exp(n * tl.log(cm))  # cm ** n, 0 at cm == 0
        s = tl.log(p + COSINE_FLOOR)
        dp = n * tl.exp((n - 1.0) * tl.log(cm)) * -tl.sin(q * HALF_PI) * HALF_PI * r
        ds = tl.where((rd >= -1.0) & (rd <= 1.0) & (c >= 0.0), dp / (p + COSINE_FLOOR), 0.0)
    else:  # SSL
        xr = tl.abs(r * delta / SSL_THREE_CLASS_SCALE)
        x = tl.minimum(tl.maximum(xr, THREE_CLASS_FLOOR), 1.0 - THREE_CLASS_FLOOR)
        t = a * tl.log(x / (1.0 - x))
        sg = tl.sigmoid(-t)
        s = n * tl.log(tl.maximum(sg, THREE_CLASS_FLOOR))
        inside = (xr >= THREE_CLASS_FLOOR) & (xr <= 1.0 - THREE_CLASS_FLOOR) & (sg >= THREE_CLASS_FLOOR)
        dx = _sign(delta) * (r / SSL_THREE_CLASS_SCALE)
        ds = tl.where(inside, -n * a * tl.sigmoid(t) / (x * (1.0 - x)) * dx, 0.0)
    return s, ds

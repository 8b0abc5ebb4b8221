"""Score functions s(d) of SPEC.md and their derivatives ds/dd, as Triton device functions.

A score is the unnormalised log-probability of rounding to a class at distance d. Each helper
returns ``(s, ds)``; the forward kernels ignore ``ds`` and the compiler drops it. Masks of the
clamps are applied with ``tl.where`` (never by multiplication) so a clamped branch contributes
an exact zero, as ``torch.clamp`` does, even where the unclamped derivative is infinite.
"""
import triton
import triton.language as tl

# Method ids shared with the Python side (sgaplus.config.METHOD_IDS).
ATANH = tl.constexpr(0)
LINEAR = tl.constexpr(1)
COSINE = tl.constexpr(2)
SSL = tl.constexpr(3)

HALF_PI: tl.constexpr = 1.5707963267948966
COSINE_FLOOR: tl.constexpr = 1e-7
THREE_CLASS_FLOOR: tl.constexpr = 1e-6


@triton.jit
def _sign(x):
    return tl.where(x > 0, 1.0, tl.where(x < 0, -1.0, 0.0))


@triton.jit
def _log_sigmoid(x):
    # log(sigmoid(x)) without overflow: -softplus(-x)
    return tl.minimum(x, 0.0) - tl.log(1.0 + tl.exp(-tl.abs(x)))


@triton.jit
def two_class_score(d, a, EPS: tl.constexpr, METHOD: tl.constexpr):
    """s(d) and ds/dd for a distance d in [-1+eps, 1-eps] (already clamped)."""
    if METHOD == ATANH:
        s = -0.5 * tl.log((1.0 + d) / (1.0 - d))
        ds = -1.0 / (1.0 - d * d)
    elif METHOD == LINEAR:
        s = tl.log(1.0 - d)
        ds = -1.0 / (1.0 - d)
    elif METHOD == COSINE:
        c = tl.cos(HALF_PI * d)
        q = (1.0 - COSINE_FLOOR) * c * c + COSINE_FLOOR
        s = tl.log(q)
        ds = -(1.0 - COSINE_FLOOR) * HALF_PI * tl.sin(2.0 * HALF_PI * d) / q
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
        c = tl.cos(HALF_PI * q)
        cm = tl.maximum(c, 0.0)
        p = tl.exp(n * tl.log(cm))  # cm ** n, 0 at cm == 0
        s = tl.log(p + COSINE_FLOOR)
        dp = n * tl.exp((n - 1.0) * tl.log(cm)) * -tl.sin(HALF_PI * q) * HALF_PI * r
        ds = tl.where((rd >= -1.0) & (rd <= 1.0) & (c >= 0.0), dp / (p + COSINE_FLOOR), 0.0)
    else:  # SSL
        xr = tl.abs(r * delta / 1.5)
        x = tl.minimum(tl.maximum(xr, THREE_CLASS_FLOOR), 1.0 - THREE_CLASS_FLOOR)
        t = a * tl.log(x / (1.0 - x))
        sg = tl.sigmoid(-t)
        s = n * tl.log(tl.maximum(sg, THREE_CLASS_FLOOR))
        inside = (xr >= THREE_CLASS_FLOOR) & (xr <= 1.0 - THREE_CLASS_FLOOR) & (sg >= THREE_CLASS_FLOOR)
        ds = tl.where(inside, -n * a * tl.sigmoid(t) / (x * (1.0 - x)) * _sign(delta) * (r / 1.5), 0.0)
    return s, ds

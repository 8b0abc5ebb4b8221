"""Score functions of docs/rounding.md as Triton device functions, and the fast transcendentals they use.

Two classes need only the gap s(d_up) - s(d_down) (only the difference of the two logits enters the
softmax), which has a closed form with one log per method. Three classes need each score. Every
helper returns a value and its derivative with respect to v; the forward kernels ignore the
derivative and the compiler drops it. Masks of the clamps are applied with ``tl.where`` (never by
multiplication) so a clamped branch contributes an exact zero, as ``torch.clamp`` does, even where the
unclamped derivative is infinite.

Compiled for a GPU, logs and cosines are the hardware's approximate instructions (lg2.approx,
cos.approx, sin.approx: one special-function instruction each instead of a 40-90 instruction precise
routine; exp and division are already approximate in Triton). Under the Triton interpreter (which has
no libdevice) they are numpy's. docs/kernels.md states the error budget.
"""
import triton
import triton.language as tl
from triton.language.extra.cuda import libdevice

from . import constants

# Globals a @triton.jit function reads must be tl.constexpr objects (an annotation is not enough: the
# interpreter accepts it, the compiler does not). Products keep the tensor on the left of a constexpr:
# the interpreter mishandles constexpr * tensor inside tl.cos.
ATANH = tl.constexpr(constants.METHOD_IDS["atanh"])
LINEAR = tl.constexpr(constants.METHOD_IDS["linear"])
COSINE = tl.constexpr(constants.METHOD_IDS["cosine"])
SSL = tl.constexpr(constants.METHOD_IDS["ssl"])
EPS = tl.constexpr(constants.EPS)
HALF_PI = tl.constexpr(constants.HALF_PI)
COSINE_FLOOR = tl.constexpr(constants.COSINE_FLOOR)
THREE_CLASS_FLOOR = tl.constexpr(constants.THREE_CLASS_FLOOR)
SSL_THREE_CLASS_SCALE = tl.constexpr(constants.SSL_THREE_CLASS_SCALE)
INTERPRETED = tl.constexpr(bool(triton.knobs.runtime.interpret))


@triton.jit
def fast_log(x):
    if INTERPRETED:
        return tl.log(x)
    else:
        return libdevice.fast_logf(x)


@triton.jit
def fast_cos(x):
    if INTERPRETED:
        return tl.cos(x)
    else:
        return libdevice.fast_cosf(x)


@triton.jit
def fast_div(x, y):
    """x / y to 2 ulp for |y| in [2^-126, 2^126] (div.approx: one reciprocal and a multiply; the default
    division adds a range fix-up). Every denominator here lies in that range or is +inf (giving 0)."""
    if INTERPRETED:
        return x / y
    else:
        return libdevice.fast_dividef(x, y)


@triton.jit
def fast_sigmoid(x):
    return fast_div(1.0, 1.0 + tl.exp(-x))


@triton.jit
def fast_sin(x):
    if INTERPRETED:
        return tl.sin(x)
    else:
        return libdevice.fast_sinf(x)


@triton.jit
def _clamp(x, lo, hi):
    return tl.minimum(tl.maximum(x, lo), hi)


@triton.jit
def _sign(x):
    return tl.where(x > 0, 1.0, tl.where(x < 0, -1.0, 0.0))


@triton.jit
def two_class_gap(dist_down, dist_up, a, METHOD: tl.constexpr):
    """gap = s(d_up) - s(d_down) and d(gap)/dv, from the raw distances v - floor(v) and ceil(v) - v.

    d_down = clamp(dist_down, -1 + EPS, 1 - EPS) moves with +v, d_up likewise with -v (inside the clamp).
    """
    d_dn = _clamp(dist_down, -1.0 + EPS, 1.0 - EPS)
    d_up = _clamp(dist_up, -1.0 + EPS, 1.0 - EPS)
    in_dn = (dist_down >= -1.0 + EPS) & (dist_down <= 1.0 - EPS)
    in_up = (dist_up >= -1.0 + EPS) & (dist_up <= 1.0 - EPS)
    if METHOD == ATANH:  # atanh(d_dn) - atanh(d_up), one log
        gap = 0.5 * fast_log(fast_div((1.0 + d_dn) * (1.0 - d_up), (1.0 - d_dn) * (1.0 + d_up)))
        dgap = (tl.where(in_up, fast_div(1.0, 1.0 - d_up * d_up), 0.0)
                + tl.where(in_dn, fast_div(1.0, 1.0 - d_dn * d_dn), 0.0))
    elif METHOD == LINEAR:  # log(1 - d_up) - log(1 - d_dn)
        gap = fast_log(fast_div(1.0 - d_up, 1.0 - d_dn))
        dgap = tl.where(in_up, fast_div(1.0, 1.0 - d_up), 0.0) + tl.where(in_dn, fast_div(1.0, 1.0 - d_dn), 0.0)
    elif METHOD == COSINE:
        c_up = fast_cos(d_up * HALF_PI)
        c_dn = fast_cos(d_dn * HALF_PI)
        q_up = c_up * c_up * (1.0 - COSINE_FLOOR) + COSINE_FLOOR
        q_dn = c_dn * c_dn * (1.0 - COSINE_FLOOR) + COSINE_FLOOR
        gap = fast_log(fast_div(q_up, q_dn))
        # -ds/dd = (1 - F) (pi/2) sin(pi d) / q, and sin(pi d) = 2 sin(pi d / 2) cos(pi d / 2)
        g_up = fast_div(fast_sin(d_up * HALF_PI) * c_up, q_up)
        g_dn = fast_div(fast_sin(d_dn * HALF_PI) * c_dn, q_dn)
        dgap = (tl.where(in_up, g_up, 0.0) + tl.where(in_dn, g_dn, 0.0)) * ((1.0 - COSINE_FLOOR) * 2.0 * HALF_PI)
    else:  # SSL: with dc_up = 1 - dc_down (the clamps are symmetric), the gap is a * logit(dc_down)
        # distances are >= 0, so clamping the raw ones to [EPS, 1 - EPS] is both clamps at once
        dc_dn = _clamp(dist_down, EPS, 1.0 - EPS)
        dc_up = _clamp(dist_up, EPS, 1.0 - EPS)
        gap = fast_log(fast_div(dc_dn, dc_up)) * a
        w_dn = fast_sigmoid(gap)  # sigma(a logit(dc_down)); sigma(a logit(dc_up)) = 1 - w_dn
        in_dn = (dist_down >= EPS) & (dist_down <= 1.0 - EPS)
        in_up = (dist_up >= EPS) & (dist_up <= 1.0 - EPS)
        dgap = (tl.where(in_up, fast_div(1.0 - w_dn, dc_up * (1.0 - dc_up)), 0.0)
                + tl.where(in_dn, fast_div(w_dn, dc_dn * (1.0 - dc_dn)), 0.0)) * a
    return gap, dgap


@triton.jit
def three_class_score(delta, r, n, a, METHOD: tl.constexpr):
    """s(delta) and ds/ddelta for a signed offset delta = v - class (d delta / dv = 1)."""
    if METHOD == LINEAR:
        x = 1.0 - tl.abs(delta) * r
        xm = tl.maximum(x, THREE_CLASS_FLOOR)
        s = fast_log(xm) * n
        ds = tl.where(x >= THREE_CLASS_FLOOR, fast_div(-_sign(delta) * n * r, xm), 0.0)
    elif METHOD == COSINE:
        rd = delta * r
        q = _clamp(rd, -1.0, 1.0)
        c = fast_cos(q * HALF_PI)
        cm = tl.maximum(c, 0.0)
        log_cm = fast_log(cm)
        p = tl.exp(log_cm * n)  # cm ** n, 0 at cm == 0
        s = fast_log(p + COSINE_FLOOR)
        dp = -tl.exp(log_cm * (n - 1.0)) * fast_sin(q * HALF_PI) * n * HALF_PI * r
        ds = tl.where((rd >= -1.0) & (rd <= 1.0) & (c >= 0.0), fast_div(dp, p + COSINE_FLOOR), 0.0)
    else:  # SSL
        xr = tl.abs(delta * (r / SSL_THREE_CLASS_SCALE))
        x = _clamp(xr, THREE_CLASS_FLOOR, 1.0 - THREE_CLASS_FLOOR)
        t = fast_log(fast_div(x, 1.0 - x)) * a
        sg = fast_sigmoid(-t)
        s = fast_log(tl.maximum(sg, THREE_CLASS_FLOOR)) * n
        inside = (xr >= THREE_CLASS_FLOOR) & (xr <= 1.0 - THREE_CLASS_FLOOR) & (sg >= THREE_CLASS_FLOOR)
        dx = _sign(delta) * (r / SSL_THREE_CLASS_SCALE)
        ds = tl.where(inside, fast_div(-(1.0 - sg), x * (1.0 - x)) * dx * n * a, 0.0)
    return s, ds

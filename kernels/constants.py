"""Every constant of the rounding math, in one place: the Triton kernels read them as ``tl.constexpr(constants.NAME)``,
the op layer (sgaplus/ops/rounding/config.py) re-exports them to the PyTorch path and the reference. docs/rounding.md
says why each exists. Plain Python: importing it imports no Triton."""
import math

METHOD_IDS = {"atanh": 0, "linear": 1, "cosine": 2, "ssl": 3}  # the kernels' METHOD constexpr

EPS = 1e-5  # two-class distances are clamped to [-1 + EPS, 1 - EPS] (ssl: [EPS, 1 - EPS])
COSINE_FLOOR = 1e-7  # added inside the cosine scores' log (two and three classes)
THREE_CLASS_FLOOR = 1e-6  # three-class linear/ssl: lower bound inside the log, ssl's clamp of x
SSL_THREE_CLASS_SCALE = 1.5  # three-class ssl scales the offset as x = |r * delta / 1.5|
HALF_PI = math.pi / 2

# Noise (docs/rounding.md, "Noise"): each element needs one uniform for two classes (a Logistic sample)
# and two for three (the spacings of two sorted uniforms). One Philox call gives four 32-bit words, so
# it serves four two-class elements or two three-class ones. The uniforms lie on grids strictly inside
# (0, 1), every point exact in float32:
#   two classes:   u = (k + 1/2) / 2^23, k = word >> 9 (23 bits)
#   three classes: u_a = (4 k_a + 1) / 2^24, u_b = (4 k_b + 3) / 2^24, k = word >> 10 (22 bits), so
#                  u_a != u_b and all three spacings are >= 2^-24 (never log(0))
TWO_CLASS_UNIFORM_BITS = 23
THREE_CLASS_UNIFORM_BITS = 22
ELEMENTS_PER_PHILOX = {2: 4, 3: 2}

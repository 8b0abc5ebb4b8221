"""RoundingConfig (which SGA+ rounding to compute, validated once) and every constant of the math.

The constants are defined here once: the Triton kernels read them as ``tl.constexpr(config.NAME)``,
the chunked PyTorch path and the reference import them. docs/rounding.md says why each exists.
"""
import math
from dataclasses import dataclass
from typing import Optional

from .._common import check_positive

METHODS = {2: ("atanh", "linear", "cosine", "ssl"), 3: ("linear", "cosine", "ssl")}
METHOD_IDS = {"atanh": 0, "linear": 1, "cosine": 2, "ssl": 3}  # the kernels' METHOD constexpr
DEFAULT_SSL_A = {2: 2.3, 3: 1.4}  # the paper's best settings
DEFAULT_R = 0.98
DEFAULT_N = 1.5

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


@dataclass(frozen=True)
class RoundingConfig:
    """Method and parameters of the op (docs/rounding.md). Parameters a method does not use stay None.

    a: ssl shape (default 2.3 for two classes, 1.4 for three); r: three-class factor in (0, 1]
    (default 0.98); n: three-class power > 0 (default 1.5).
    """
    method: str = "ssl"
    classes: int = 2
    hard: bool = False
    a: Optional[float] = None
    r: Optional[float] = None
    n: Optional[float] = None

    def __post_init__(self):
        if self.classes not in METHODS or isinstance(self.classes, bool):
            raise ValueError(f"classes must be 2 or 3, got {self.classes!r}")
        valid = METHODS[self.classes]
        if self.method not in valid:
            raise ValueError(f"unknown method {self.method!r} for classes={self.classes}; "
                             f"valid methods: {', '.join(valid)}")
        if not isinstance(self.hard, bool):
            raise ValueError(f"hard must be True or False, got {self.hard!r}")
        if self.method == "ssl":
            a = DEFAULT_SSL_A[self.classes] if self.a is None else check_positive("a", self.a)
            object.__setattr__(self, "a", a)
        elif self.a is not None:
            raise ValueError(f"a is the ssl shape parameter; method={self.method!r} does not use it")
        if self.classes == 3:
            r = DEFAULT_R if self.r is None else check_positive("r", self.r)
            if r > 1:
                raise ValueError(f"r must lie in (0, 1], got {r!r}")
            n = DEFAULT_N if self.n is None else check_positive("n", self.n)
            object.__setattr__(self, "r", r)
            object.__setattr__(self, "n", n)
        elif self.r is not None or self.n is not None:
            raise ValueError("r and n are three-class parameters; classes=2 does not use them")

    @property
    def method_id(self):
        return METHOD_IDS[self.method]

    def with_hard(self, hard):
        """The same rounding with straight-through on or off."""
        return RoundingConfig(self.method, self.classes, hard, self.a, self.r, self.n)

"""RoundingConfig (which SGA+ rounding to compute, validated once) and its defaults; the math's constants, defined
once with the kernels (kernels/constants.py), re-exported to the chunked PyTorch path and the reference."""
from dataclasses import dataclass
from typing import Optional

from ...kernels.constants import (  # noqa: F401 (re-exported: the math's constants, defined with the kernels)
    COSINE_FLOOR,
    ELEMENTS_PER_PHILOX,
    EPS,
    HALF_PI,
    METHOD_IDS,
    SSL_THREE_CLASS_SCALE,
    THREE_CLASS_FLOOR,
    THREE_CLASS_UNIFORM_BITS,
    TWO_CLASS_UNIFORM_BITS,
)
from .._common import check_positive

METHODS = {2: ("atanh", "linear", "cosine", "ssl"), 3: ("linear", "cosine", "ssl")}
DEFAULT_SSL_A = {2: 2.3, 3: 1.4}  # the paper's best settings
DEFAULT_R = 0.98
DEFAULT_N = 1.5


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

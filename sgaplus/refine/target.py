"""Refining to a target rate: lambda moves per image, during refinement, toward the rate asked for.

Semi-multi-rate: one model refined with another lambda lands at another rate. A RateTarget turns that
into a controller: at each true-loss check, each image's lambda is multiplied by
exp(gain * (target - bpp) / target) (a dual step on the rate constraint: too few bits raise lambda, too
many lower it), and the latents kept are those of the check with the lowest distortion among those
within `tolerance` of the target; if no check gets there, the one whose rate is closest.
"""
import math
from dataclasses import dataclass
from typing import Sequence, Union

from ..ops._common import check_positive

LAMBDA_RANGE = 1000.0  # lambda stays within [lambda0 / 1000, lambda0 * 1000]


@dataclass(frozen=True)
class RateTarget:
    """The rate each image should reach, in bits per pixel of the entropy models' estimate (the file adds a
    small container overhead: see pipeline.py, which calibrates it); one value, or one per image."""
    bpp: Union[float, Sequence[float]]
    tolerance: float = 0.02
    gain: float = 1.0

    def __post_init__(self):
        values = [self.bpp] if isinstance(self.bpp, (int, float)) else list(self.bpp)
        for value in values:
            check_positive("target bpp", value)
        check_positive("tolerance", self.tolerance)
        check_positive("gain", self.gain)

    def per_image(self, batch):
        values = [self.bpp] * batch if isinstance(self.bpp, (int, float)) else list(self.bpp)
        if len(values) != batch:
            raise ValueError(f"{len(values)} target rates for {batch} images")
        return [ImageTarget(float(v), self.tolerance, self.gain) for v in values]


@dataclass(frozen=True)
class ImageTarget:
    bpp: float
    tolerance: float
    gain: float

    def within(self, bpp):
        return abs(bpp - self.bpp) <= self.tolerance * self.bpp

    def rank(self, bpp, distortion):
        """Sort key of checked latents (lower is better): within tolerance by distortion, else by rate error."""
        return (0, distortion) if self.within(bpp) else (1, abs(bpp - self.bpp))

    def next_lmbda(self, lmbda, bpp, lmbda0):
        step = math.exp(self.gain * max(-1.0, min(1.0, (self.bpp - bpp) / self.bpp)))
        return min(max(lmbda * step, lmbda0 / LAMBDA_RANGE), lmbda0 * LAMBDA_RANGE)
